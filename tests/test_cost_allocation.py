"""Cost allocation (components/cost.py): OpenCost from its vendored chart, restricted, on the
platform's Prometheus and scraped by it, with a least-privilege Pod Identity role; its NetworkPolicies
admit Prometheus, the API server, DNS and the AWS pricing endpoints and nothing else; the tenant
cost label/tag on namespaces, dedicated NodePools and their EC2 instances; the daily cost alert
per tenant at the configured threshold, on metrics that exist."""

from __future__ import annotations

import json

import pytest

from components import names
from components.config import ConfigError, CostConfig
from components.cost import DAILY_COST_ALERT, NAMESPACE_COST, NAMESPACE_COST_EXPR, cost_rules
from components.node_pools import pool_tags
from components.tenancy import FLOWS, network_policy_specs
from components.tenancy_flows import REDIS, Flow
from plan.admission.pod_security import check_pod
from plan.connections import build
from plan.connections.addons import control_plane_cidrs_of
from plan.reachability import Cluster, Policy, egress_allows_ip, namespace_matrix, probes
from tests.conftest import rendered, stack_doc
from tests.promql import metric_names
from tests.test_cost import _config
from tests.test_dashboards import _unknown

RELEASE = "kubernetes:helm.sh/v3:Release"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
# What OpenCost may reach, per destination namespace: DNS and Prometheus. Nothing else, not even
# 443: the API server is the control-plane subnets and its ClusterIP, where no pod has an address
# (while the KUBE_API ipBlock was the VPC, it let OpenCost reach every pod listening on 443).
OPENCOST_ALLOWED_PORTS = {names.NS_SYSTEM: {"53/UDP", "53/TCP"}, names.NS_OBSERVABILITY: {"9090/TCP"}}
NEVER = (names.NS_DATA, names.NS_INFERENCE, names.NS_AGENTS)


def opencost(plan):
    (r,) = [r for r in plan.by_type(RELEASE) if r.inputs["name"] == names.OPENCOST_RELEASE]
    return r


def tenant_cost_rule(plan):
    (r,) = [r for r in plan.by_type(RULE) if r.inputs["metadata"]["name"] == "tenant-cost"]
    return r.inputs["spec"]


def unexpected_reach(rows: list[dict], tenants: list[str]) -> list[str]:
    """The namespace matrix rows from OpenCost's namespace beyond what it may reach."""
    out = []
    for row in rows:
        if row["from"] != names.NS_COST or row["to"] == names.NS_COST:
            continue
        allowed = OPENCOST_ALLOWED_PORTS.get(row["to"], set())
        if row["to"] in NEVER or row["to"] in tenants or not set(row["ports"]) <= allowed:
            out.append(f"{row['to']}: {row['ports']}")
    return out


# ------------------------------------------------------------------------------------ config

def test_alert_thresholds_come_from_config():
    cfg = CostConfig.model_validate({"dailyTenantThresholdUsd": 250, "tenantThresholdsUsd": {"team-b": 40}})
    spec = cost_rules(cfg, ["team-a", "team-b"])
    alerts = {r["labels"]["tenant"]: r for g in spec["groups"] for r in g["rules"] if "alert" in r}
    assert alerts["team-a"]["expr"].endswith("> 250") and alerts["team-b"]["expr"].endswith("> 40")
    assert 'namespace="team-b"' in alerts["team-b"]["expr"] and alerts["team-a"]["for"] == "30m"
    assert {r["alert"] for r in alerts.values()} == {DAILY_COST_ALERT}
    assert CostConfig().daily_tenant_threshold_usd == 100       # the design's "$100 per day"
    # no tenants: the recording rule alone (an empty rule group is no alert)
    assert [g["name"] for g in cost_rules(CostConfig(), [])["groups"]] == ["cost-allocation"]


def test_a_threshold_for_an_unknown_tenant_names_its_key():
    with pytest.raises(ConfigError) as e:
        _config("dev", cost={"tenantThresholdsUsd": {"nobody": 10}})
    assert any("cost.tenantThresholdsUsd.nobody" in line and "not a tenant" in line for line in e.value.lines())
    with pytest.raises(ConfigError) as e:
        _config("dev", cost={"dailyTenantThresholdUsd": 0})
    assert any("cost.dailyTenantThresholdUsd" in line for line in e.value.lines())


def test_one_opencost_replica_and_why(prod_plan):
    """Each replica is a target of the chart's ServiceMonitor (one endpoint over the Service's pods)
    exporting the same cost series: more would be summed once per replica. So the count is no
    setting: a stack file that still sets the old cost.exporterReplicas gets the unknown-key error."""
    with pytest.raises(ConfigError) as e:
        _config("dev", cost={"exporterReplicas": 1})
    assert any("cost.exporterReplicas" in line and "unknown key" in line for line in e.value.lines())
    (deployment,) = [o for o in prod_plan.objects if o.kind == "Deployment" and o.release == "opencost"]
    assert deployment.manifest["spec"]["replicas"] == 1
    (monitor,) = [o for o in prod_plan.objects if o.kind == "ServiceMonitor" and o.release == "opencost"]
    (service,) = [o for o in prod_plan.objects if o.kind == "Service" and o.release == "opencost"]
    assert [ep["port"] for ep in monitor.manifest["spec"]["endpoints"]] == ["http"]
    assert monitor.manifest["spec"]["selector"]["matchLabels"].items() <= service.manifest["metadata"]["labels"].items()


def test_rules_use_metrics_that_exist():
    """Every metric of the recording rule and the alerts is an OpenCost metric (platform/metrics.yaml,
    checked against opencost pkg/costmodel/metrics.go) or the recording rule itself."""
    names_ = metric_names(NAMESPACE_COST_EXPR)
    assert names_ == {"container_cpu_allocation", "container_memory_allocation_bytes", "container_gpu_allocation",
                      "node_cpu_hourly_cost", "node_ram_hourly_cost", "node_gpu_hourly_cost"}
    exprs = [r["expr"] for g in cost_rules(CostConfig(), ["t"])["groups"] for r in g["rules"]]
    for expr in exprs:
        assert not _unknown(metric_names(expr)), expr
    assert _unknown({"container_gpu_allocation_total"})    # the check is not vacuous


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_alert_per_tenant_at_the_stacks_threshold(stack, request):
    plan = request.getfixturevalue(f"{stack}_plan")
    spec = tenant_cost_rule(plan)
    cost = stack_doc(stack)["config"].get("agentic-platform:cost") or {}
    threshold = cost.get("dailyTenantThresholdUsd", 100)
    overrides = cost.get("tenantThresholdsUsd", {})
    tenants = [t["name"] for t in stack_doc(stack)["config"]["agentic-platform:tenants"]]
    alerts = {r["labels"]["tenant"]: r["expr"] for g in spec["groups"] for r in g["rules"] if "alert" in r}
    assert sorted(alerts) == sorted(tenants)
    for t, expr in alerts.items():
        assert expr.endswith(f"> {overrides.get(t, threshold):g}")
    records = [r for g in spec["groups"] for r in g["rules"] if r.get("record") == NAMESPACE_COST]
    assert len(records) == 1
    # the plan's summary lists OpenCost and every tenant's threshold
    lines = plan.extras["_summary"]["Cost allocation"]
    assert lines[0].startswith("OpenCost: opencost 2.5.17, ghcr.io/opencost/opencost:1.120.1")
    for t in tenants:
        assert f"TenantDailyCostHigh {t}: 24 h cost above ${overrides.get(t, threshold):g} for" in "\n".join(lines)


# ------------------------------------------------------------------------------------ the release

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_opencost_release_runs_restricted_on_the_platform_prometheus(stack, request):
    plan = request.getfixturevalue(f"{stack}_plan")
    r = opencost(plan)
    values = r.inputs["values"]
    assert r.inputs["namespace"] == names.NS_COST
    oc = values["opencost"]
    assert oc["prometheus"]["external"] == {"enabled": True, "url": names.PROMETHEUS_URL}
    assert oc["ui"]["enabled"] is False and oc["mcp"]["enabled"] is False
    objects = rendered(plan, names.OPENCOST_RELEASE)
    (deploy,) = [o for o in objects if o["kind"] == "Deployment"]
    tpl = deploy["spec"]["template"]
    (container,) = tpl["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PROMETHEUS_SERVER_ENDPOINT"] == names.PROMETHEUS_URL
    assert container["image"].startswith("ghcr.io/opencost/opencost:1.120.1@sha256:")
    assert {p["containerPort"] for p in container["ports"]} == {names.PORT_OPENCOST}
    assert check_pod(tpl["metadata"], tpl["spec"], "restricted") == []
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/configs", "/tmp"} <= mounts    # read-only root: OpenCost's pricing cache goes here
    # Prometheus scrapes it: the chart's ServiceMonitor on its Service's `http` port (9003)
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    # honorLabels: OpenCost's own `namespace`/`node` labels (the container's) survive the scrape;
    # without it Prometheus renames them exported_* and every per-tenant query groups by "opencost".
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    scrapes = [c for c in plan.extras["reachability"]["connections"]
               if c["to"] == f"{names.NS_COST}/Deployment/opencost" and "ServiceMonitor" in c["why"]]
    assert scrapes and all(c["allowed"] and c["port"] == names.PORT_OPENCOST for c in scrapes)


def test_opencost_role_grants_only_spot_price_history(prod_plan):
    (assoc,) = [a for a in prod_plan.by_type(ASSOCIATION) if a.inputs["namespace"] == names.NS_COST]
    assert assoc.inputs["serviceAccount"] == opencost(prod_plan).inputs["values"]["serviceAccount"]["name"]
    assert assoc.urn in opencost(prod_plan).dependencies
    (policy,) = [p for p in prod_plan.by_type(ROLE_POLICY) if "cost-opencost" in p.urn]
    doc = json.loads(policy.inputs["policy"])
    assert doc["Statement"] == [{"Effect": "Allow", "Action": ["ec2:DescribeSpotPriceHistory"], "Resource": "*"}]


# ------------------------------------------------------------------------------------ reachability

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_opencost_reaches_prometheus_api_dns_and_aws_pricing_only(stack, request):
    plan = request.getfixturevalue(f"{stack}_plan")
    reach = plan.extras["reachability"]
    mine = [c for c in reach["connections"] if c["from"].startswith(f"{names.NS_COST}/")]
    assert mine and all(c["allowed"] for c in mine)
    tos = {c.get("to_peer", c["to"]).split(" (")[0] for c in mine}
    assert {"kube-apiserver", "internet", "EKS Pod Identity agent"} <= tos
    assert any("AWS price list" in c["why"] and c["port"] == 443 for c in mine)
    assert any(c["to"].startswith(f"{names.NS_OBSERVABILITY}/StatefulSet/prometheus") and c["port"] == 9090
               for c in mine)
    tenants = [t["name"] for t in stack_doc(stack)["config"]["agentic-platform:tenants"]]
    assert unexpected_reach(reach["namespaces"], tenants) == []
    # outside the cluster: HTTPS to public addresses (the price list, EC2), nothing else
    specs = [r.inputs["spec"] for r in plan.by_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
             if r.inputs["metadata"]["namespace"] == names.NS_COST]
    assert egress_allows_ip(specs, "52.94.236.248", 443)          # an AWS public address
    assert not egress_allows_ip(specs, "52.94.236.248", 80)
    assert not egress_allows_ip(specs, "10.0.200.5", 5432)         # RDS in the VPC
    assert not egress_allows_ip(specs, "10.0.200.5", 6379)         # ElastiCache


def test_a_wider_opencost_policy_is_caught(prod_plan):
    """The check above fails when OpenCost could reach something else: a flow to the data layer's
    Redis added to the design, the generated policies evaluated on the plan's pods."""
    tenants = [t["name"] for t in stack_doc("prod")["config"]["agentic-platform:tenants"]]
    d = build(prod_plan)
    extra = Flow(names.NS_COST, names.NS_DATA, REDIS, "not in the design")
    vpc = "10.0.0.0/16"
    managed = sorted(d.cluster.namespaces)
    api = control_plane_cidrs_of(prod_plan)
    wide = network_policy_specs([names.NS_COST, names.NS_DATA], [], vpc, api_cidrs=api, flows=(*FLOWS, extra))
    narrow = network_policy_specs([names.NS_COST, names.NS_DATA], [], vpc, api_cidrs=api, flows=FLOWS)
    assert wide[names.NS_COST] != narrow[names.NS_COST]

    def rows(specs):
        keep = [p for p in d.cluster.policies if p.namespace not in (names.NS_COST, names.NS_DATA)]
        policies = keep + [Policy(ns, n, s) for ns in specs for n, s in specs[ns].items()]
        c = Cluster(d.cluster.pods, policies, d.cluster.namespaces, list(d.cluster.services.values()),
                    pod_ips=d.cluster.pod_ips)
        return namespace_matrix(c, c.pods + probes(managed))

    assert unexpected_reach(rows(narrow), tenants) == []
    assert unexpected_reach(rows(wide), tenants) == [f"{names.NS_DATA}: ['6379/TCP']"]


# ------------------------------------------------------------------------------------ tenant label / tag

def test_tenant_pool_instances_carry_the_cost_allocation_tag(prod_plan):
    isolated = [t["name"] for t in stack_doc("prod")["config"]["agentic-platform:tenants"] if t.get("isolation") == "node"]
    assert isolated
    classes = {c.inputs["metadata"]["name"]: c.inputs for c in prod_plan.by_type(NODECLASS)}
    pools = {p.inputs["metadata"]["name"]: p.inputs for p in prod_plan.by_type(NODEPOOL)}
    for t in isolated:
        pool = names.tenant_pool_name(t)
        assert classes[pool]["spec"]["tags"][names.COST_ALLOCATION_TAG] == t
        assert classes[pool]["metadata"]["labels"][names.TENANT_LABEL] == t
        assert pools[pool]["metadata"]["labels"][names.TENANT_LABEL] == t
        assert pools[pool]["spec"]["template"]["spec"]["nodeClassRef"]["name"] == pool   # its own class
        assert pools[pool]["spec"]["template"]["metadata"]["labels"][names.TENANT_LABEL] == t
    # shared pools' instances carry no tenant tag: their cost is split by allocation
    for name, c in classes.items():
        if name not in {names.tenant_pool_name(t) for t in isolated}:
            assert names.COST_ALLOCATION_TAG not in c["spec"]["tags"], name


def test_pool_tags_keep_the_stack_tags_and_add_the_tenant():
    tags = {"managed-by": "pulumi"}
    assert pool_tags(tags, {names.TENANT_LABEL: "t1", "x": "y"}) == {"managed-by": "pulumi", names.COST_ALLOCATION_TAG: "t1"}
    assert pool_tags(tags, {"x": "y"}) == tags


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_tenant_namespace_carries_the_tenant_label(stack, request):
    plan = request.getfixturevalue(f"{stack}_plan")
    tenants = [t["name"] for t in stack_doc(stack)["config"]["agentic-platform:tenants"]]
    ns = {n.inputs["metadata"]["name"]: n.inputs["metadata"]["labels"] for n in plan.by_type("kubernetes:core/v1:Namespace")}
    assert tenants and all(ns[t][names.TENANT_LABEL] == t for t in tenants)
    assert names.TENANT_LABEL not in ns[names.NS_COST]
