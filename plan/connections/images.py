"""Connections a program makes that no object spells out: endpoints compiled into the image, keyed
by its repository (the tag does not change them within a pinned version). Each entry cites the
upstream code at the pinned version; the derivation records them like any address of an env var,
so the NetworkPolicy evaluator judges them (a policy that drops them is a denied connection)."""

from __future__ import annotations

from plan.admission.pod_security import pod_templates
from plan.connections.addresses import pods_by_source
from plan.connections.derivation import Derivation

# image repository (without tag/digest) -> (host, port, why)
BUILT_IN_ENDPOINTS: dict[str, tuple[tuple[str, int, str], ...]] = {
    # opencost 1.120.1 pkg/cloud/aws: the on-demand price list is an unauthenticated GET of
    # https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/AmazonEC2/current/<region>/index.json
    # (provider.go getRegionPricing, pricelistapi.go getListPriceURL; China regions use
    # pricing.cn-north-1.amazonaws.com.cn); spot prices come from EC2 DescribeSpotPriceHistory in the
    # node's region (spotpricehistory.go, the AWS SDK's regional endpoint ec2.<region>.amazonaws.com).
    "ghcr.io/opencost/opencost": (
        ("pricing.us-east-1.amazonaws.com", 443, "AWS price list (OpenCost on-demand pricing)"),
        ("ec2.amazonaws.com", 443, "EC2 DescribeSpotPriceHistory (OpenCost spot pricing)"),
    ),
}


def repository(image: str) -> str:
    """`registry/repo` of an image reference, without tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def built_in_endpoints(d: Derivation) -> None:
    """Every pod running an image of BUILT_IN_ENDPOINTS -> its endpoints."""
    by_source = pods_by_source(d)
    for o in d.objects:
        srcs = by_source.get(id(o), [])
        if not srcs:
            continue
        for _path, _meta, spec in pod_templates(o.manifest):
            for c in spec.get("containers") or []:
                for host, port, why in BUILT_IN_ENDPOINTS.get(repository(str(c.get("image", ""))), ()):
                    d.to_address(srcs, host, port, f"{o.kind}/{o.name} image {c.get('name')}: {why}")
