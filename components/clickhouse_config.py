"""ClickHouse for LangFuse on the official image: its names, ports and users, and the XML it is
configured with (config.d / users.d), one replica or a replicated cluster with ClickHouse Keeper.
Used by components/langfuse_stores.py, which declares the StatefulSet."""

from __future__ import annotations

from components import names
from components.k8s import resources

NS = names.NS_OBSERVABILITY

# ------------------------------------------------------------------ ClickHouse
# Not the bitnami subcharts' names (langfuse-clickhouse, langfuse-clickhouse-headless,
# langfuse-postgresql, ...): on a stack that ran them, these are created while the release still
# holds those, and the old claims (data-langfuse-clickhouse-shard0-N, data-langfuse-postgresql-0)
# are not taken over by the new StatefulSets.
CLICKHOUSE = "langfuse-clickhouse-server"       # StatefulSet, client Service, ConfigMap
CLICKHOUSE_HEADLESS = f"{CLICKHOUSE}-headless"  # the StatefulSet's governing Service (pod DNS names)
CLICKHOUSE_IMAGE_KEY = "langfuse-clickhouse"    # platform/images.yaml
CLICKHOUSE_UID = 101                            # the image's `clickhouse` user and group
CLICKHOUSE_HTTP_PORT = 8123                     # LangFuse: CLICKHOUSE_URL (langfuse 1.5.41 clickhouse.httpPort)
CLICKHOUSE_NATIVE_PORT = 9000                   # LangFuse: CLICKHOUSE_MIGRATION_URL (clickhouse.nativePort)
CLICKHOUSE_INTERSERVER_PORT = 9009              # replicas fetch parts from each other
KEEPER_PORT = 9181                              # ClickHouse Keeper's client port (ZooKeeper protocol)
KEEPER_RAFT_PORT = 9234                         # Keeper's Raft port between the replicas
CLICKHOUSE_USER = "default"                     # langfuse 1.5.41 clickhouse.auth.username default
# The cluster LangFuse's clustered migrations run ON CLUSTER (its default CLICKHOUSE_CLUSTER_NAME,
# packages/shared/clickhouse/scripts/up.sh: x-cluster-name=${CLICKHOUSE_CLUSTER_NAME:-default}).
CLICKHOUSE_CLUSTER = "default"
CLICKHOUSE_PASSWORD_ENV = "CLICKHOUSE_ADMIN_PASSWORD"   # read by the config (from_env), not the entrypoint
CLICKHOUSE_DATA = "/var/lib/clickhouse"
CLICKHOUSE_STORAGE_GIB = 20
CLICKHOUSE_RESOURCES = resources("500m", "2Gi", cpu_limit="2", memory_limit="4Gi")


def clickhouse_pod(ordinal: int) -> str:
    """The in-cluster DNS name of a ClickHouse replica (StatefulSet pod through the headless Service)."""
    return f"{CLICKHOUSE}-{ordinal}.{CLICKHOUSE_HEADLESS}.{NS}.svc.cluster.local"



# ------------------------------------------------------------------ ClickHouse configuration

def _server_xml(replicated: bool) -> str:
    """config.d: the ports LangFuse uses on every address, console logging; the MySQL/PostgreSQL wire
    protocols of the default config.xml off; the interserver port only where replicas need it."""
    interserver = "" if replicated else '  <interserver_http_port remove="remove"/>\n'
    return (
        "<clickhouse>\n"
        "  <listen_host>0.0.0.0</listen_host>\n"
        f"  <http_port>{CLICKHOUSE_HTTP_PORT}</http_port>\n"
        f"  <tcp_port>{CLICKHOUSE_NATIVE_PORT}</tcp_port>\n"
        '  <mysql_port remove="remove"/>\n'
        '  <postgresql_port remove="remove"/>\n'
        f"{interserver}"
        "  <logger>\n"
        "    <level>information</level>\n"
        "    <console>1</console>\n"
        '    <log remove="remove"/>\n'
        '    <errorlog remove="remove"/>\n'
        "  </logger>\n"
        "</clickhouse>\n")


def _users_xml() -> str:
    """users.d: the `default` user LangFuse connects as, replaced as a whole (the image's has no
    password), its password from the environment (the LangFuse Secret's clickhouse-password)."""
    return (
        "<clickhouse>\n"
        "  <users>\n"
        f'    <{CLICKHOUSE_USER} replace="replace">\n'
        f'      <password from_env="{CLICKHOUSE_PASSWORD_ENV}"/>\n'
        "      <networks><ip>::/0</ip></networks>\n"
        "      <profile>default</profile>\n"
        "      <quota>default</quota>\n"
        "      <access_management>0</access_management>\n"
        f"    </{CLICKHOUSE_USER}>\n"
        "  </users>\n"
        "</clickhouse>\n")


def _cluster_xml(replicas: int) -> str:
    """config.d for replicas > 1: the cluster LangFuse runs its migrations ON (one shard, every
    replica), the macros its Replicated* tables use, and ClickHouse Keeper embedded in every replica
    (one Raft member each, server_id = ordinal + 1 from the start command) as their coordination
    service: no ZooKeeper."""
    pods = [clickhouse_pod(i) for i in range(replicas)]
    password = f'<password from_env="{CLICKHOUSE_PASSWORD_ENV}"/>'
    remote = "".join(
        f"        <replica><host>{p}</host><port>{CLICKHOUSE_NATIVE_PORT}</port>"
        f"<user>{CLICKHOUSE_USER}</user>{password}</replica>\n" for p in pods)
    nodes = "".join(f"    <node><host>{p}</host><port>{KEEPER_PORT}</port></node>\n" for p in pods)
    raft = "".join(f"      <server><id>{i + 1}</id><hostname>{p}</hostname><port>{KEEPER_RAFT_PORT}</port></server>\n"
                   for i, p in enumerate(pods))
    return (
        "<clickhouse>\n"
        "  <macros>\n"
        "    <shard>1</shard>\n"
        '    <replica from_env="CLICKHOUSE_REPLICA"/>\n'
        "  </macros>\n"
        '  <interserver_http_host from_env="CLICKHOUSE_INTERSERVER_HOST"/>\n'
        f"  <interserver_http_port>{CLICKHOUSE_INTERSERVER_PORT}</interserver_http_port>\n"
        f"  <interserver_http_credentials><user>interserver</user>{password}</interserver_http_credentials>\n"
        '  <remote_servers replace="replace">\n'
        f"    <{CLICKHOUSE_CLUSTER}>\n"
        "      <shard>\n"
        "        <internal_replication>true</internal_replication>\n"
        f"{remote}"
        "      </shard>\n"
        f"    </{CLICKHOUSE_CLUSTER}>\n"
        "  </remote_servers>\n"
        '  <zookeeper replace="replace">\n'
        f"{nodes}"
        "  </zookeeper>\n"
        "  <keeper_server>\n"
        f"    <tcp_port>{KEEPER_PORT}</tcp_port>\n"
        '    <server_id from_env="KEEPER_SERVER_ID"/>\n'
        f"    <log_storage_path>{CLICKHOUSE_DATA}/coordination/log</log_storage_path>\n"
        f"    <snapshot_storage_path>{CLICKHOUSE_DATA}/coordination/snapshots</snapshot_storage_path>\n"
        "    <coordination_settings>\n"
        "      <operation_timeout_ms>10000</operation_timeout_ms>\n"
        "      <session_timeout_ms>30000</session_timeout_ms>\n"
        "      <raft_logs_level>warning</raft_logs_level>\n"
        "    </coordination_settings>\n"
        "    <raft_configuration>\n"
        f"{raft}"
        "    </raft_configuration>\n"
        "  </keeper_server>\n"
        "</clickhouse>\n")


CONFIG_FILES = ("server.xml", "cluster.xml")   # -> /etc/clickhouse-server/config.d
USERS_FILES = ("default-user.xml",)            # -> /etc/clickhouse-server/users.d


def clickhouse_config(replicas: int) -> dict[str, str]:
    """The ConfigMap's data: file name -> XML."""
    data = {"server.xml": _server_xml(replicas > 1), "default-user.xml": _users_xml()}
    if replicas > 1:
        data["cluster.xml"] = _cluster_xml(replicas)
    return data
