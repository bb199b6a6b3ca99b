"""The rules of a `pulumi destroy`: controllers outlive their objects, buckets, snapshots, the VPC."""

from __future__ import annotations

from typing import Any

from components import names
from plan.objects import EKS_CLUSTER, EKS_CONTROL_PLANE, K8sObject
from plan.rehearsal.facts import ADVISORY, MANDATORY, NODEPOOL_KINDS, hazard
from plan.rehearsal.timing import name
from plan.rehearsal.world import World

# ================================================================================== destroy rules

def kept(w: World) -> set[str]:
    """What `pulumi destroy --exclude-protected` keeps: protected resources and everything they
    depend on (pulumi pkg/cmd/pulumi/operations/destroy.go getProtectedExcludes). Plain `pulumi
    destroy` refuses to start while any resource is protected."""
    g, bits = w.graph, 0
    for r in w.plan.resources:
        if r.protect:
            bits |= g.destroy_anc.get(r.urn, 0) | g.destroy_bit.get(r.urn, 0)
    return {u for u, b in g.destroy_bit.items() if bits & b}


def load_balancer_controller(o: K8sObject) -> str | None:
    """Which controller provisions the load balancer of a Service or Ingress: the AWS Load Balancer
    Controller for `loadBalancerClass: service.k8s.aws/nlb` or the annotation
    aws-load-balancer-type external/nlb-ip (its docs, guide/service/nlb.md), and for Ingresses of
    class alb; otherwise the in-tree cloud provider in the EKS control plane (outlives everything)."""
    spec = o.manifest.get("spec") or {}
    ann = o.metadata.get("annotations") or {}
    if o.kind == "Service" and spec.get("type") == "LoadBalancer":
        if spec.get("loadBalancerClass") == "service.k8s.aws/nlb" or \
                ann.get("service.beta.kubernetes.io/aws-load-balancer-type") in ("external", "nlb-ip"):
            return "aws-load-balancer-controller"
        return "in-tree"
    if o.kind == "Ingress" and (spec.get("ingressClassName") == "alb" or ann.get("kubernetes.io/ingress.class") == "alb"):
        return "aws-load-balancer-controller"
    if o.kind == "TargetGroupBinding":
        return "aws-load-balancer-controller"
    return None


def ebs_claims(w: World, o: K8sObject) -> list[tuple[str, str]]:
    """(storage class, how) of the EBS-backed claims an object makes: a PVC, or a StatefulSet's
    volumeClaimTemplates (those PVCs outlive the StatefulSet: they go with their namespace unless
    persistentVolumeClaimRetentionPolicy.whenDeleted is Delete)."""
    def ebs(sc: str | None) -> bool:
        sc = w.default_storage_class if sc is None else sc
        return bool(sc) and (w.storage_classes.get(sc) or {}).get("provisioner") == "ebs.csi.aws.com"
    if o.kind == "PersistentVolumeClaim":
        sc = (o.manifest.get("spec") or {}).get("storageClassName")
        return [(sc or w.default_storage_class or "", "pvc")] if ebs(sc) else []
    if o.kind == "StatefulSet":
        out = []
        for t in (o.manifest.get("spec") or {}).get("volumeClaimTemplates") or []:
            sc = (t.get("spec") or {}).get("storageClassName")
            if ebs(sc):
                out.append((sc or w.default_storage_class or "", "template"))
        return out
    return []


def controllers_outlive(w: World, keep: set[str]) -> list[dict[str, Any]]:
    """Every controller outlives the objects whose cloud resources it cleans up (the objects depend
    on it, so `pulumi destroy` deletes them first, while it runs):
    - Karpenter after its NodePools and EC2NodeClasses: deleting them terminates the instances it
      launched (NodeClaim finalizers; kubernetes-sigs/karpenter pkg/controllers/node/termination:
      awaitDrain -> awaitVolumeDetachment -> awaitInstanceTermination). Without it the instances
      run on, their ENIs keep the subnets, and the VPC cannot be deleted;
    - the AWS Load Balancer Controller after every LoadBalancer Service, Ingress or Gateway it
      reconciles: its finalizer deletes the NLB/ALB and the security groups it created in the VPC;
    - the EBS CSI driver after PVCs, StatefulSets with volumeClaimTemplates and the namespaces that
      hold their claims: it detaches and deletes the volumes (kubelet unmounts through its node
      plugin; pods stuck terminating hold the namespace, Karpenter waits for VolumeAttachments)."""
    g, out = w.graph, []
    gateway_classes = {o.name: o for o in w.plan.objects if o.kind == "GatewayClass"}
    roles = {str(r.inputs.get("name")): r.urn for r in w.plan.by_type("aws:iam/role:Role") if r.inputs.get("name")}

    def check(owner: str, controller_key: str, what: str, obj: K8sObject, why: str) -> None:
        ctrls = w.controllers.get(controller_key) or []
        if owner in keep or not g.by_urn.get(owner):
            return
        if not ctrls:
            out.append(hazard("controller-outlives", MANDATORY, f"{obj.ref} ({what}) needs {controller_key}, which the "
                              f"plan does not install: nothing cleans up after it on destroy ({why})", [owner], [obj.ref]))
            return
        w.required |= {(c, owner) for c in ctrls if c != owner}
        missing = [c for c in ctrls if c != owner and not g.destroyed_before(owner, c)]
        if missing and len(missing) == len([c for c in ctrls if c != owner]):
            out.append(hazard("controller-outlives", MANDATORY,
                              f"{name(g, owner)} ({what} {obj.ref}) does not depend on {', '.join(name(g, c) for c in missing)}: "
                              f"`pulumi destroy` may remove the controller first and {why}; add the dependency",
                              [owner, *missing], [obj.ref]))

    for o in w.plan.objects:
        if (o.group, o.kind) in NODEPOOL_KINDS and not o.controller:
            check(o.source, "karpenter", o.kind, o, "its instances keep running, their ENIs block the VPC's deletion")
            # the node role too: Karpenter removes it from the instance profiles it made when the
            # EC2NodeClass goes; before that IAM refuses to delete it (DeleteConflict)
            role = roles.get(str((o.manifest.get("spec") or {}).get("role", "")))
            if o.kind == "EC2NodeClass" and role and o.source not in keep and not g.destroyed_before(o.source, role):
                out.append(hazard("controller-outlives", MANDATORY,
                                  f"{name(g, o.source)} (EC2NodeClass {o.ref}) does not depend on its node role "
                                  f"{name(g, role)}: `pulumi destroy` may delete the role while Karpenter's instance "
                                  "profiles still hold it (IAM DeleteConflict) and its nodes still run as it",
                                  [o.source, role], [o.ref]))
        lbc = load_balancer_controller(o)
        if lbc == "aws-load-balancer-controller":
            check(o.source, lbc, f"{o.kind} for a load balancer", o,
                  "the load balancer and its security groups stay in the VPC and block its deletion")
        if o.group == "gateway.networking.k8s.io" and o.kind == "Gateway":
            cls = (o.manifest.get("spec") or {}).get("gatewayClassName", "")
            gc = gateway_classes.get(cls)
            if gc is not None and str((gc.manifest.get("spec") or {}).get("controllerName", "")).startswith("gateway.k8s.aws/"):
                check(o.source, "aws-load-balancer-controller", "Gateway", o,
                      "the load balancer and its security groups stay in the VPC and block its deletion")
        for sc, how in ebs_claims(w, o):
            reclaim = (w.storage_classes.get(sc) or {}).get("reclaimPolicy", "Delete")
            why = ("pods using the volumes cannot unmount (no CSI node plugin) and hold the namespace, "
                   + ("and the volumes are never deleted" if reclaim == "Delete" else "the volumes stay (Retain)"))
            if how == "pvc":
                check(o.source, "ebs-csi", "PersistentVolumeClaim", o, why)
                continue
            ns_owner = w.namespace_owner.get(o.namespace or "")
            if ns_owner:
                check(ns_owner, "ebs-csi", f"namespace {o.namespace} holding claims of", o, why)
            elif reclaim == "Delete" and o.source not in keep:
                out.append(hazard("controller-outlives", ADVISORY,
                                  f"{o.ref}: its volumeClaimTemplates' PVCs outlive the StatefulSet and the plan does not "
                                  f"delete namespace {o.namespace}: `pulumi destroy` leaves their EBS volumes",
                                  [o.source], [o.ref]))
            pol = ((o.manifest.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted")
            if pol == "Delete":
                check(o.source, "ebs-csi", "StatefulSet deleting its claims", o, why)
    return dedupe(out)


def buckets(w: World, keep: set[str]) -> list[dict[str, Any]]:
    """S3 refuses to delete a bucket that holds objects or versions (BucketNotEmpty); the AWS
    provider empties it first only with `forceDestroy`. Protected or retained buckets are kept."""
    out = []
    for r in [*w.plan.by_type("aws:s3/bucket:Bucket"), *w.plan.by_type("aws:s3/bucketV2:BucketV2")]:
        if r.urn in keep or (r.options or {}).get("retainOnDelete"):
            continue
        if not r.inputs.get("forceDestroy"):
            out.append(hazard("bucket-not-empty", MANDATORY, f"{name(w.graph, r.urn)}: not protected and no forceDestroy: "
                              "`pulumi destroy` fails with BucketNotEmpty once anything was written to it", [r.urn]))
    return out


def random_values(w: World, r: Any) -> list[str]:
    """The values of the random:* resources `r` depends on (per incarnation of the stack)."""
    monitor = getattr(w.plan, "monitor", None)
    states = getattr(monitor, "resources", {}) or {}
    out = []
    for d in r.dependencies:
        if d.split("::")[-2].rsplit("$", 1)[-1].startswith("random:"):
            reg = states.get(d)
            state = getattr(reg, "state", None) or {}
            out += [str(state[k]) for k in ("hex", "result", "b64Url", "dec", "id") if state.get(k)]
            if not state:
                out.append("")   # a random dependency whose value the plan does not know
    return out


def snapshots(w: World) -> list[dict[str, Any]]:
    """RDS and ElastiCache final snapshots: RDS requires a FinalSnapshotIdentifier unless
    skipFinalSnapshot (the delete fails otherwise), and a name that exists already fails the
    delete (DBSnapshotAlreadyExists / SnapshotAlreadyExistsFault): the second destroy of a
    recreated stack, unless the name carries a value new with every incarnation (a random:*
    resource in state)."""
    out = []
    for r in [*w.plan.by_type("aws:rds/instance:Instance"), *w.plan.by_type("aws:rds/cluster:Cluster"),
              *w.plan.by_type("aws:elasticache/replicationGroup:ReplicationGroup")]:
        i = r.inputs
        ident = i.get("finalSnapshotIdentifier")
        if r.type.startswith("aws:rds/"):
            if i.get("skipFinalSnapshot"):
                continue
            if not ident:
                out.append(hazard("snapshot-name", MANDATORY, f"{name(w.graph, r.urn)}: skipFinalSnapshot is false and "
                                  "no finalSnapshotIdentifier: the delete fails", [r.urn]))
                continue
        elif not ident:
            continue
        values = random_values(w, r)
        if not any(v == "" or (len(v) >= 4 and v in str(ident)) for v in values):
            out.append(hazard("snapshot-name", MANDATORY,
                              f"{name(w.graph, r.urn)}: final snapshot '{ident}' derives from names only: the destroy of "
                              "the next incarnation of this stack fails because the snapshot exists; add a random "
                              "part kept in state (random.RandomId)", [r.urn]))
    return out


def deletion_protection(w: World, keep: set[str]) -> list[dict[str, Any]]:
    """A resource with the service's deletion protection on but not Pulumi `protect`: `pulumi
    destroy` deletes everything that depends on it and then fails on it (EKS: "Cannot delete
    because cluster has deletion protection enabled"; RDS InvalidParameterCombination). The failure
    is the guard the stack asked for, so advisory; but it comes late: with `protect` too, the
    destroy refuses before deleting anything, and --exclude-protected keeps it."""
    out = []
    for r in w.plan.resources:
        if r.urn in keep:
            continue
        if r.type in (EKS_CLUSTER, EKS_CONTROL_PLANE, "aws:rds/instance:Instance",
                      "aws:rds/cluster:Cluster") and r.inputs.get("deletionProtection"):
            out.append(hazard("deletion-protection", ADVISORY,
                              f"{name(w.graph, r.urn)}: deletionProtection is on but the resource is not protected: "
                              "`pulumi destroy` removes everything that depends on it, then fails on it; protect it too "
                              "(ResourceOptions.protect), so the destroy stops before deleting anything", [r.urn]))
    return out


def vpc_leftovers(w: World, keep: set[str]) -> list[dict[str, Any]]:
    """Nothing the destroy leaves behind blocks deleting the VPC: objects whose cloud resources sit
    in its subnets (load balancers' ENIs and security groups, instances Karpenter launched) must be
    deleted, not kept by `helm.sh/resource-policy: keep` (helm pkg/action/uninstall.go), retained by
    retainOnDelete, or orphaned by `pulumi.com/deletionPropagationPolicy: orphan`
    (pulumi-kubernetes provider/pkg/metadata/overrides.go; the default is Foreground)."""
    out = []
    vpcs = [r.urn for r in w.plan.by_type("aws:ec2/vpc:Vpc") if r.urn not in keep]
    if not vpcs:
        return out
    for o in w.plan.objects:
        lb = load_balancer_controller(o)
        if not (lb or (o.group, o.kind) in NODEPOOL_KINDS):
            continue
        owner = w.graph.by_urn.get(o.source)
        ann = o.metadata.get("annotations") or {}
        why = None
        if o.release and ann.get(names.HELM_RESOURCE_POLICY) == names.HELM_KEEP:
            why = "helm.sh/resource-policy: keep leaves it on uninstall"
        elif owner is not None and o.source not in keep and (owner.options or {}).get("retainOnDelete"):
            why = "its resource has retainOnDelete"
        elif str(ann.get("pulumi.com/deletionPropagationPolicy", "")).lower() == "orphan":
            why = "pulumi.com/deletionPropagationPolicy: orphan leaves what it owns"
        if why:
            what = "its load balancer's ENIs and security groups" if lb else "the instances Karpenter launched"
            out.append(hazard("vpc-blocked", MANDATORY, f"{o.ref}: {why}; {what} stay in the VPC and its deletion fails "
                              "(DependencyViolation)", [o.source, *vpcs], [o.ref]))
    return out


def dedupe(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for h in items:
        key = (h["class"], h["message"])
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out
