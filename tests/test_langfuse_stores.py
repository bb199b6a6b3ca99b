"""LangFuse's stores on maintained official images (components/langfuse_stores.py): ClickHouse
(`clickhouse/clickhouse-server`, replicated with embedded ClickHouse Keeper) and in-cluster
PostgreSQL (`postgres`), declared by the platform; LangFuse's rendered env points at their Services."""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET

import yaml

from components import langfuse_stores as stores
from components import names
from plan.admission.pod_security import check_pod, pod_templates
from plan.engine import ROOT
from plan.reachability import selector_matches

NS = names.NS_OBSERVABILITY


def pins():
    return yaml.safe_load((ROOT / "platform" / "images.yaml").read_text())


def declared(plan, kind, name):
    found = [o for o in plan.objects if o.kind == kind and o.name == name and o.namespace == NS and not o.release]
    return found[0] if found else None


def statefulsets(plan):
    return [o for o in (declared(plan, "StatefulSet", stores.CLICKHOUSE), declared(plan, "StatefulSet", stores.POSTGRES))
            if o is not None]


def container(sts):
    (c,) = sts.manifest["spec"]["template"]["spec"]["containers"]
    return c


def env_of(c):
    return {e["name"]: e for e in c.get("env") or []}


def langfuse_pods(plan):
    """The LangFuse release's web and worker Deployments as rendered by Helm."""
    out = {o.name: o for o in plan.objects if o.release == "langfuse" and o.kind == "Deployment"}
    assert set(out) == {"langfuse-web", "langfuse-worker"}, sorted(out)
    return out


def service_for(plan, host):
    """The declared Service an in-cluster host name (`svc.ns.svc.cluster.local`) names."""
    m = re.fullmatch(r"([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local", host)
    assert m, host
    svc = declared(plan, "Service", m[1])
    assert svc is not None and m[2] == NS, host
    return svc


def serves(svc, sts, port):
    """The Service selects the StatefulSet's pods and sends `port` to one of their container ports."""
    spec = svc.manifest["spec"]
    assert selector_matches({"matchLabels": spec["selector"]}, sts.manifest["spec"]["template"]["metadata"]["labels"])
    (p,) = [p for p in spec["ports"] if p["port"] == port]
    named = {cp["name"]: cp["containerPort"] for cp in container(sts)["ports"]}
    return named.get(p["targetPort"], p["targetPort"]) in named.values()


# ------------------------------------------------------------------------------------ images

def test_store_images_come_from_images_yaml_and_are_not_bitnami(any_plan):
    plan, stack = any_plan, any_plan.stack
    keys = {stores.CLICKHOUSE: stores.CLICKHOUSE_IMAGE_KEY, stores.POSTGRES: stores.POSTGRES_IMAGE_KEY}
    found = statefulsets(plan)
    assert {s.name for s in found} == ({stores.CLICKHOUSE, stores.POSTGRES} if stack == "dev" else {stores.CLICKHOUSE})
    for sts in found:
        pin = pins()[keys[sts.name]]
        image = container(sts)["image"]
        assert image == f"{pin['registry']}/{pin['repository']}:{pin['tag']}"
        assert "bitnami" not in image and pin["tag"] != "latest" and pin.get("maintained", True) is not False
    assert pins()[stores.CLICKHOUSE_IMAGE_KEY]["repository"] == "clickhouse/clickhouse-server"
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", pins()[stores.CLICKHOUSE_IMAGE_KEY]["tag"]), "a full release version"
    assert pins()[stores.POSTGRES_IMAGE_KEY]["repository"] == "library/postgres"
    assert re.fullmatch(r"17\.\d+-(trixie|bookworm)", pins()[stores.POSTGRES_IMAGE_KEY]["tag"]), \
        "a 17.x minor of the Debian variant (UID 999)"
    # no bitnami image anywhere in the observability namespace any more
    images = [c["image"] for o in plan.objects if o.namespace == NS for _p, _m, spec in pod_templates(o.manifest)
              for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]]
    assert images and not [i for i in images if "bitnami" in i]


# ------------------------------------------------------------------------------------ Pod Security

def test_stores_pass_pod_security_restricted_and_a_root_variant_does_not(any_plan):
    for sts in statefulsets(any_plan):
        tpl = sts.manifest["spec"]["template"]
        assert check_pod(tpl.get("metadata") or {}, tpl["spec"], "restricted") == [], sts.name
        uid = stores.CLICKHOUSE_UID if sts.name == stores.CLICKHOUSE else stores.POSTGRES_UID
        assert tpl["spec"]["securityContext"]["runAsUser"] == uid == tpl["spec"]["securityContext"]["fsGroup"]
        root = copy.deepcopy(tpl["spec"])
        root["securityContext"]["runAsUser"] = 0
        assert check_pod(tpl.get("metadata") or {}, root, "restricted"), f"{sts.name} as root was admitted"
        escalating = copy.deepcopy(tpl["spec"])
        escalating["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
        assert check_pod(tpl.get("metadata") or {}, escalating, "restricted")


def test_stores_have_resources_probes_and_writable_mounts(any_plan):
    for sts in statefulsets(any_plan):
        c, spec = container(sts), sts.manifest["spec"]
        assert c["resources"]["requests"] and c["resources"]["limits"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(c)
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
        (claim,) = spec["volumeClaimTemplates"]
        assert claim["spec"]["storageClassName"] == names.STORAGE_CLASS_DATA
        assert mounts["/tmp"] in volumes and "emptyDir" in volumes[mounts["/tmp"]]
        if sts.name == stores.CLICKHOUSE:
            assert mounts["/var/lib/clickhouse"] == claim["metadata"]["name"]
            assert "emptyDir" in volumes[mounts["/var/log/clickhouse-server"]]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert c[probe]["httpGet"] == {"path": "/ping", "port": "http"}
            assert {p["name"]: p["containerPort"] for p in c["ports"]}["http"] == 8123
        else:
            assert mounts[stores.POSTGRES_DATA] == claim["metadata"]["name"]
            assert "emptyDir" in volumes[mounts["/var/run/postgresql"]]
            assert env_of(c)["PGDATA"]["value"].startswith(stores.POSTGRES_DATA + "/")
            assert c["readinessProbe"]["exec"]["command"][0] == "pg_isready"


def test_clickhouse_entrypoint_runs_as_non_root_without_writing_config(any_plan):
    """docker/server/entrypoint.sh: CLICKHOUSE_USER/CLICKHOUSE_PASSWORD would make it write
    users.d/default-user.xml (a read-only ConfigMap mount here), and with neither set it does too
    unless CLICKHOUSE_SKIP_USER_SETUP=1; CLICKHOUSE_DO_NOT_CHOWN=1 (it is not root anyway)."""
    env = env_of(container(declared(any_plan, "StatefulSet", stores.CLICKHOUSE)))
    assert env["CLICKHOUSE_SKIP_USER_SETUP"]["value"] == "1" and env["CLICKHOUSE_DO_NOT_CHOWN"]["value"] == "1"
    assert not {"CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_DB",
                "CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT"} & set(env)
    ref = env[stores.CLICKHOUSE_PASSWORD_ENV]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "langfuse-credentials", "key": "clickhouse-password"}


# ------------------------------------------------------------------------------------ LangFuse -> stores

def test_langfuse_env_points_at_the_declared_services(any_plan):
    plan, stack = any_plan, any_plan.stack
    ch = declared(plan, "StatefulSet", stores.CLICKHOUSE)
    ch_env = env_of(container(ch))
    for name, deploy in langfuse_pods(plan).items():
        (c,) = [c for c in deploy.manifest["spec"]["template"]["spec"]["containers"]]
        env = env_of(c)
        url = re.fullmatch(r"http://([^:]+):(\d+)", env["CLICKHOUSE_URL"]["value"])
        migration = re.fullmatch(r"clickhouse://([^:]+):(\d+)", env["CLICKHOUSE_MIGRATION_URL"]["value"])
        assert url and migration, name
        assert url[1] == migration[1] == stores.CLICKHOUSE_HOST
        svc = service_for(plan, url[1])
        assert serves(svc, ch, int(url[2])) and int(url[2]) == 8123
        assert serves(svc, ch, int(migration[2])) and int(migration[2]) == 9000
        assert env["CLICKHOUSE_USER"]["value"] == stores.CLICKHOUSE_USER
        assert env["CLICKHOUSE_PASSWORD"]["valueFrom"] == ch_env[stores.CLICKHOUSE_PASSWORD_ENV]["valueFrom"]
        if stack == "dev":   # one replica: LangFuse's unclustered migrations
            assert env["CLICKHOUSE_CLUSTER_ENABLED"]["value"] == "false"
            pg = declared(plan, "StatefulSet", stores.POSTGRES)
            assert env["DATABASE_HOST"]["value"] == stores.POSTGRES_HOST
            assert serves(service_for(plan, env["DATABASE_HOST"]["value"]), pg, int(env["DATABASE_PORT"]["value"]))
            pg_env = env_of(container(pg))
            assert env["DATABASE_USERNAME"]["value"] == pg_env["POSTGRES_USER"]["value"]
            assert env["DATABASE_NAME"]["value"] == pg_env["POSTGRES_DB"]["value"]
            assert env["DATABASE_PASSWORD"]["valueFrom"] == pg_env["POSTGRES_PASSWORD"]["valueFrom"]
        else:                # replicated: clustered migrations ON CLUSTER <the declared cluster>
            assert env.get("CLICKHOUSE_CLUSTER_ENABLED", {"value": "true"})["value"] == "true"
            assert env["CLICKHOUSE_CLUSTER_NAME"]["value"] == stores.CLICKHOUSE_CLUSTER
            assert env["DATABASE_HOST"]["value"].endswith(".rds.amazonaws.com")
            assert declared(plan, "StatefulSet", stores.POSTGRES) is None


def test_langfuse_reaches_its_stores(any_plan):
    """Same namespace (FLOWS' SELF flow): the connections are derived from the env and allowed."""
    conns = any_plan.extras["reachability"]["connections"]

    def to(dst, port):
        return [c for c in conns if c["from"].startswith(f"{NS}/Deployment/langfuse-")
                and c["to"] == f"{NS}/StatefulSet/{dst}" and c["port"] == port]
    assert to(stores.CLICKHOUSE, 8123) and to(stores.CLICKHOUSE, 9000)
    if any_plan.stack == "dev":
        assert to(stores.POSTGRES, 5432)
    assert any_plan.extras["reachability"]["denied"] == []


def test_the_release_waits_for_its_stores(any_plan):
    plan = any_plan
    (lf,) = [r for r in plan.by_type("kubernetes:helm.sh/v3:Release") if r.inputs.get("name") == "langfuse"]
    sts = [r for r in plan.by_type("kubernetes:apps/v1:StatefulSet") if r.inputs["metadata"]["namespace"] == NS
           and r.inputs["metadata"]["name"] in (stores.CLICKHOUSE, stores.POSTGRES)]
    assert sts and all(r.urn in lf.dependencies for r in sts)


# ------------------------------------------------------------------------------------ Keeper, no ZooKeeper

def config_docs(plan):
    cm = declared(plan, "ConfigMap", stores.CLICKHOUSE)
    return {k: ET.fromstring(v) for k, v in cm.manifest["data"].items()}   # well-formed XML, or this raises


def test_replicated_clickhouse_uses_embedded_keeper_not_zookeeper(dev_plan, prod_plan):
    plan = prod_plan
    sts = declared(plan, "StatefulSet", stores.CLICKHOUSE)
    replicas = sts.manifest["spec"]["replicas"]
    assert replicas == 3 and sts.manifest["spec"]["podManagementPolicy"] == "Parallel"
    cluster = config_docs(plan)["cluster.xml"]
    pods = [stores.clickhouse_pod(i) for i in range(replicas)]
    raft = cluster.findall("./keeper_server/raft_configuration/server")
    assert [(s.findtext("id"), s.findtext("hostname"), s.findtext("port")) for s in raft] == \
        [(str(i + 1), p, str(stores.KEEPER_RAFT_PORT)) for i, p in enumerate(pods)]
    assert cluster.find("./keeper_server/server_id").get("from_env") == "KEEPER_SERVER_ID"
    assert "KEEPER_SERVER_ID=$$(( ${HOSTNAME##*-} + 1 ))" in " ".join(container(sts)["args"])
    assert [(n.findtext("host"), n.findtext("port")) for n in cluster.findall("./zookeeper/node")] == \
        [(p, str(stores.KEEPER_PORT)) for p in pods]
    (shard,) = cluster.findall(f"./remote_servers/{stores.CLICKHOUSE_CLUSTER}/shard")
    assert [r.findtext("host") for r in shard.findall("replica")] == pods
    assert cluster.find("./macros/replica").get("from_env") == "CLICKHOUSE_REPLICA"
    # the pods' DNS names exist before they are Ready (the Raft quorum comes first)
    headless = declared(plan, "Service", stores.CLICKHOUSE_HEADLESS)
    assert headless.manifest["spec"]["clusterIP"] == "None" and headless.manifest["spec"]["publishNotReadyAddresses"]
    assert sts.manifest["spec"]["serviceName"] == stores.CLICKHOUSE_HEADLESS
    assert {p["port"] for p in headless.manifest["spec"]["ports"]} >= {stores.KEEPER_PORT, stores.KEEPER_RAFT_PORT,
                                                                        stores.CLICKHOUSE_INTERSERVER_PORT}
    assert declared(plan, "PodDisruptionBudget", stores.CLICKHOUSE).manifest["spec"]["maxUnavailable"] == 1
    # no ZooKeeper, no bitnami store: the LangFuse release renders no StatefulSet at all
    for p in (dev_plan, prod_plan):
        objs = p.objects
        assert not [o.ref for o in objs if "zookeeper" in o.name]
        assert not [o.ref for o in objs if o.release == "langfuse" and o.kind in ("StatefulSet", "ConfigMap")]


def test_single_clickhouse_has_no_keeper(dev_plan):
    plan = dev_plan
    docs = config_docs(plan)
    assert set(docs) == {"server.xml", "default-user.xml"}
    sts = declared(plan, "StatefulSet", stores.CLICKHOUSE)
    assert sts.manifest["spec"]["replicas"] == 1 and "command" not in container(sts)
    assert {p["name"] for p in container(sts)["ports"]} == {"http", "native"}


def test_clickhouse_config_listens_where_langfuse_connects_and_the_user_has_the_secret_password(any_plan):
    docs = config_docs(any_plan)
    server = docs["server.xml"]
    assert server.findtext("http_port") == "8123" and server.findtext("tcp_port") == "9000"
    assert server.findtext("listen_host") == "0.0.0.0"
    user = docs["default-user.xml"].find(f"./users/{stores.CLICKHOUSE_USER}")
    assert user.get("replace") and user.find("password").get("from_env") == stores.CLICKHOUSE_PASSWORD_ENV
    # the pods mount exactly the files of the ConfigMap (config.d and users.d)
    vols = {v["name"]: v for v in declared(any_plan, "StatefulSet", stores.CLICKHOUSE)
            .manifest["spec"]["template"]["spec"]["volumes"] if "configMap" in v}
    mounted = {i["key"] for v in vols.values() for i in v["configMap"]["items"]}
    assert mounted == set(docs)


def test_config_change_rolls_the_pods():
    one, three = stores.clickhouse_config(1), stores.clickhouse_config(3)
    kw = {"secret": "s", "password_key": "k", "storage_class": "c", "protect_data": False}
    a = stores.clickhouse_statefulset_spec(1, config=one, **kw)["template"]["metadata"]["annotations"]
    b = stores.clickhouse_statefulset_spec(3, config=three, **kw)["template"]["metadata"]["annotations"]
    assert a["checksum/config"] != b["checksum/config"]
