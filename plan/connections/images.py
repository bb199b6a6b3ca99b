"""Connections a program makes that no object spells out: endpoints compiled into the image, keyed
by its repository (the tag does not change them within a pinned version). Each entry cites the
upstream code at the pinned version; the derivation records them like any address of an env var,
so the NetworkPolicy evaluator judges them (a policy that drops them is a denied connection)."""

from __future__ import annotations

from plan.admission.pod_security import pod_templates
from plan.connections.addresses import pods_by_source
from plan.connections.derivation import Derivation

# image repository (without tag/digest) -> (host, port, why); a host is a template of the stack's
# region: `{region}`, `{pricing_region}` (us-east-1; cn-north-1 in the China partition) and
# `{suffix}` (amazonaws.com; amazonaws.com.cn in China).
BUILT_IN_ENDPOINTS: dict[str, tuple[tuple[str, int, str], ...]] = {
    # opencost 1.120.1 pkg/cloud/aws: the on-demand price list is an unauthenticated GET of
    # https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/<region>/index.json
    # (provider.go getRegionPricing, pricelistapi.go getListPriceURL; China regions use
    # pricing.cn-north-1.amazonaws.com.cn); spot prices come from EC2 DescribeSpotPriceHistory
    # (spotpricehistory.go: AWSSpotPriceHistoryFetcher.getEC2Client copies the SDK config with
    # `config.Region = region`, the region of the node it prices, one client per region), so the
    # AWS SDK for Go v2 resolves the regional endpoint ec2.<region>.amazonaws.com: the cluster's
    # region, as every node is in it. Not the global-looking ec2.amazonaws.com.
    "ghcr.io/opencost/opencost": (
        ("pricing.{pricing_region}.{suffix}", 443, "AWS price list (OpenCost on-demand pricing)"),
        ("ec2.{region}.{suffix}", 443, "EC2 DescribeSpotPriceHistory in the cluster's region (OpenCost spot pricing)"),
    ),
}


def endpoint_host(template: str, region: str) -> str:
    """A BUILT_IN_ENDPOINTS host for the stack's region (AWS partitions: aws, aws-cn)."""
    china = region.startswith("cn-")
    return template.format(region=region, pricing_region="cn-north-1" if china else "us-east-1",
                           suffix="amazonaws.com.cn" if china else "amazonaws.com")


def repository(image: str) -> str:
    """`registry/repo` of an image reference, without tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def built_in_endpoints(d: Derivation, region: str) -> None:
    """Every pod running an image of BUILT_IN_ENDPOINTS -> its endpoints in the stack's `region`."""
    by_source = pods_by_source(d)
    for o in d.objects:
        srcs = by_source.get(id(o), [])
        if not srcs:
            continue
        for _path, _meta, spec in pod_templates(o.manifest):
            for c in spec.get("containers") or []:
                for host, port, why in BUILT_IN_ENDPOINTS.get(repository(str(c.get("image", ""))), ()):
                    name = endpoint_host(host, region)
                    d.to_address(srcs, name, port, f"{o.kind}/{o.name} image {c.get('name')}: {why} ({name})")
