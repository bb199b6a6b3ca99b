"""Static NodePools (karpenter.sh/v1 `spec.replicas`, the pools of warm nodes): the rules the API
server would enforce and the one it cannot see. schema.py does not evaluate CEL, so the NodePool
CRD's `x-kubernetes-validations` for static pools are checked here (karpenter-crd 1.14.1,
templates/karpenter.sh_nodepools.yaml):
  * "only 'limits.nodes' is supported on static NodePools";
  * "'weight' is not supported on static NodePools";
  * "Cannot transition NodePool between static (replicas set) and dynamic (replicas unset)
    provisioning modes" (has(self.replicas) == has(oldSelf.replicas)): an update, which an offline
    plan cannot compare with the cluster, so the platform makes static-ness follow from the name
    (components/names.py warm_pool_name; the config refuses other pool names ending so): a
    NodePool is static exactly when its name ends with WARM_POOL_SUFFIX.
And the controller's: Karpenter provisions a static pool only with its StaticCapacity feature gate
(kubernetes-sigs/karpenter pkg/controllers/controllers.go registers the static controllers only
then; the dynamic provisioner skips static pools, pkg/controllers/provisioning/provisioner.go), so
with the gate off the pool stays at 0 nodes without an error. The gate is the controller's
FEATURE_GATES environment variable (karpenter chart 1.14.1 templates/deployment.yaml)."""

from __future__ import annotations

from components.names import WARM_POOL_SUFFIX
from plan.objects import K8sObject

FEATURE_GATES_ENV = "FEATURE_GATES"


def feature_gates(objects: list[K8sObject]) -> dict[str, bool] | None:
    """The Karpenter controller's feature gates, from the Deployment of the `karpenter` release
    (None when no controller is rendered). A gate the variable does not name has its default, off
    for StaticCapacity (chart values.yaml `settings.featureGates.staticCapacity: false`)."""
    for o in objects:
        if o.kind != "Deployment" or o.release != "karpenter":
            continue
        containers = ((((o.manifest.get("spec") or {}).get("template") or {}).get("spec") or {})
                      .get("containers") or [])
        for c in containers:
            for env in c.get("env") or []:
                if env.get("name") == FEATURE_GATES_ENV:
                    pairs = (p.split("=", 1) for p in str(env.get("value", "")).split(",") if "=" in p)
                    return {k.strip(): v.strip().lower() == "true" for k, v in pairs}
        return {}
    return None


def check(objects: list[K8sObject]) -> list[tuple[K8sObject, str]]:
    gates = feature_gates(objects)
    out = []
    for o in objects:
        if (o.group, o.kind) != ("karpenter.sh", "NodePool"):
            continue
        spec = o.manifest.get("spec") or {}
        static = "replicas" in spec
        if static != o.name.endswith(WARM_POOL_SUFFIX):
            out.append((o, f"a NodePool is static (spec.replicas) exactly when its name ends with '{WARM_POOL_SUFFIX}': "
                           "the CRD forbids switching a NodePool between static and dynamic"))
        if not static:
            continue
        if set(spec.get("limits") or {}) - {"nodes"}:
            out.append((o, "only 'limits.nodes' is supported on static NodePools"))
        if "weight" in spec:
            out.append((o, "'weight' is not supported on static NodePools"))
        if gates is None:
            out.append((o, "no Karpenter controller is rendered: nothing provisions the static NodePool's nodes"))
        elif not gates.get("StaticCapacity"):
            out.append((o, "Karpenter's feature gate StaticCapacity is off: the static NodePool never gets a node"))
    return out
