"""Rules across sections: each a function decorated `@cross_check`, paths absolute (`models[0].gpus`).
They run, in this order, once every section is valid."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from components.config.base import Problem, duplicates, quantity_value
from components.config.stack import PlatformConfig
from components.names import (
    RESERVED_NAMESPACES,
    WARM_POOL_SUFFIX,
    cluster_name_problems,
    compile_cache_root,
    model_namespace,
    weights_prefix,
)
from domain.instances import instance_facts
from domain.sizing import (
    architecture,
    candidate_types,
    ephemeral_gib,
    max_replica_demand,
    pool_types,
    precision,
    tensor_parallel_problem,
    tightest_fit,
    weights_gb,
)

CrossCheck = Callable[[PlatformConfig], Iterable[Problem]]
CROSS_CHECKS: list[CrossCheck] = []


def cross_check(fn: CrossCheck) -> CrossCheck:
    """Register a rule that spans sections; it runs only when every section is valid."""
    CROSS_CHECKS.append(fn)
    return fn


@cross_check
def _unique_names(cfg: PlatformConfig) -> Iterator[Problem]:
    yield from duplicates("gpuPools", [p.name for p in cfg.gpu_pools])
    yield from duplicates("tenants", [t.name for t in cfg.tenants])
    yield from duplicates("models", [m.name for m in cfg.models])
    for i, p in enumerate(cfg.gpu_pools):
        if p.name == cfg.cpu_pool.name:
            yield f"gpuPools[{i}].name", f"'{p.name}' is the CPU pool's name"
    # `<pool>-warm` names the static NodePools only (gpuPools[].warmNodes): a NodePool can never
    # switch between static and dynamic (the NodePool CRD's rule has(self.replicas) ==
    # has(oldSelf.replicas)), so whether one is static must follow from its name.
    for path, name in [*((f"gpuPools[{i}].name", p.name) for i, p in enumerate(cfg.gpu_pools)),
                       ("cpuPool.name", cfg.cpu_pool.name)]:
        if name.endswith(WARM_POOL_SUFFIX):
            yield path, f"'{name}' ends with '{WARM_POOL_SUFFIX}', kept for the pools of warm nodes (warmNodes)"
    for i, t in enumerate(cfg.tenants):
        if t.name in RESERVED_NAMESPACES or t.name.startswith("kube-"):
            yield f"tenants[{i}].name", (f"'{t.name}' is reserved (platform and Kubernetes namespaces: "
                                         f"{', '.join(RESERVED_NAMESPACES)}, kube-*)")


@cross_check  # models of one Hugging Face id and cache s3 share one prefix of the models bucket
def _shared_weights_prefix(cfg: PlatformConfig) -> Iterator[Problem]:
    first: dict[str, tuple[int, str | None]] = {}
    for i, m in enumerate(cfg.models):
        if m.cache != "s3":
            continue
        j, revision = first.setdefault(m.model, (i, m.revision))
        # each weights Job would empty the prefix the other filled (components/model_weights.py)
        if revision != m.revision:
            yield f"models[{i}].revision", (f"'{m.revision or 'main'}': models[{j}] copies {m.model} at "
                                            f"'{revision or 'main'}' into the same s3 prefix; use one revision")


@cross_check  # a model's compile caches and another's weights must not share objects of the models bucket
def _weights_apart_from_compile_caches(cfg: PlatformConfig) -> Iterator[Problem]:
    """The weights Job empties its prefix on a revision change and may write and delete all of it,
    and the servers load every object under it (`aws s3 sync`/runai streamer of the prefix), so a
    compile cache under a weights prefix -- or weights under a cache root -- breaks both. A Hugging
    Face id without an organisation (`gpt2`) equals a model name easily."""
    roots = {compile_cache_root(m.name): j for j, m in enumerate(cfg.models)
             if m.compile_cache_in_s3}
    for i, m in enumerate(cfg.models):
        if m.cache != "s3":
            continue
        prefix = weights_prefix(m.model) + "/"
        for root, j in roots.items():
            if root.startswith(prefix) or prefix.startswith(root):
                yield f"models[{i}].model", (f"'{m.model}': its weights prefix {prefix} overlaps the compile cache "
                                             f"{root} of models[{j}] ('{cfg.models[j].name}'); name the model "
                                             "differently or use an org/name id")


@cross_check  # cluster: also when the `cluster` key is absent (its defaults need a deployer and a way in)
def _cluster_access(cfg: PlatformConfig) -> Iterator[Problem]:
    for path, message in cfg.cluster.access_problems():
        yield f"cluster.{path}", message


@cross_check
def _references(cfg: PlatformConfig) -> Iterator[Problem]:
    pools = {p.name for p in cfg.gpu_pools}
    tenants = {t.name for t in cfg.tenants}
    for i, t in enumerate(cfg.tenants):
        for j, p in enumerate(t.gpu_pools or []):
            if p not in pools:
                yield f"tenants[{i}].gpuPools[{j}]", f"'{p}' is not a gpuPools name ({', '.join(sorted(pools)) or 'none'})"
        if t.isolation == "node" and not (t.gpu_pools or cfg.gpu_pools):
            yield f"tenants[{i}].isolation", "node isolation needs a GPU pool to copy its dedicated pool from"
    for i, m in enumerate(cfg.models):
        if m.pool not in pools:
            yield f"models[{i}].pool", f"'{m.pool}' is not a gpuPools name ({', '.join(sorted(pools)) or 'none'})"
        if m.tenant is not None and m.tenant not in tenants:
            yield f"models[{i}].tenant", f"'{m.tenant}' is not a tenants name"


@cross_check
def _gateway_routes(cfg: PlatformConfig) -> Iterator[Problem]:
    """Route entries, canaries and fallbacks name models of the catalog."""
    if cfg.gateway is None:
        return
    models = {m.name for m in cfg.models}
    known = ", ".join(sorted(models)) or "none"
    for i, r in enumerate(cfg.gateway.routes):
        if r.model not in models:
            yield f"gateway.routes[{i}].model", f"'{r.model}' is not a models name ({known})"
        if r.canary is not None and r.canary.model not in models:
            yield f"gateway.routes[{i}].canary.model", f"'{r.canary.model}' is not a models name ({known})"
        if r.fallback is not None and r.fallback not in models:
            yield f"gateway.routes[{i}].fallback", f"'{r.fallback}' is not a models name ({known})"


@cross_check
def _pooled_routes(cfg: PlatformConfig) -> Iterator[Problem]:
    """With `inferenceRouting: agentgateway` a vLLM model's canary and fallback are applied by agentgateway
    (components/agentgateway.py): both must be pooled (vLLM), and a fallback shares the primary's
    namespace (an AgentgatewayBackend's custom provider `backendRef` "may target only a namespace-local
    Service or InferencePool", agentgateway-crds v1.4.1). A TGI model's route stays on kgateway, which must
    not reach a vLLM model around agentgateway (its budgets and salt)."""
    if cfg.gateway is None or cfg.gateway.inference_routing != "agentgateway":
        return
    models = {m.name: m for m in cfg.models}
    for i, r in enumerate(cfg.gateway.routes):
        primary = models.get(r.model)
        if primary is None:
            continue
        for key, other in (("canary.model", r.canary.model if r.canary else None), ("fallback", r.fallback)):
            target = models.get(other) if other else None
            if target is None or target.engine == primary.engine == "tgi":
                continue
            if target.engine != primary.engine:
                yield f"gateway.routes[{i}].{key}", (
                    f"'{target.name}' is {target.engine} and '{primary.name}' {primary.engine}: with inferenceRouting: "
                    "agentgateway vLLM models are served by agentgateway and TGI models by kgateway, so a route "
                    "cannot mix them")
            elif key == "fallback" and model_namespace(target) != model_namespace(primary):
                yield f"gateway.routes[{i}].fallback", (
                    f"'{target.name}' runs in {model_namespace(target)}, '{primary.name}' in "
                    f"{model_namespace(primary)}: an agentgateway fallback must share the primary's namespace")


MAX_CONDITIONAL_LIMITS = 16   # AgentgatewayPolicy traffic.rateLimit.conditional maxItems (agentgateway-crds v1.4.1)


@cross_check
def _gateway_tenants(cfg: PlatformConfig) -> Iterator[Problem]:
    """Tenant budgets name tenants; `promptCache.tgiSharing: forbid` leaves no TGI model shared (TGI has
    no prefix-cache salting, so a TGI model two tenants call shares its cache between them)."""
    if cfg.gateway is None:
        return
    tenants = {t.name for t in cfg.tenants}
    for tenant in cfg.gateway.tenant_budgets:
        if tenant not in tenants:
            yield f"gateway.tenantBudgets.{tenant}", f"'{tenant}' is not a tenants name ({', '.join(sorted(tenants)) or 'none'})"
    if cfg.gateway.inference_routing == "agentgateway":
        # Each budgeted tenant is one `rateLimit.conditional` entry of every pool route's policy (its own
        # bucket; the platform limit is the last entry): agentgateway-crds v1.4.1 caps `conditional` at
        # maxItems 16. Tenants sharing an entry would share one bucket, so more cannot be expressed.
        budgeted = sorted(t for t in tenants if (b := cfg.gateway.budget(t)).tokens_per_minute or b.requests_per_minute)
        if len(budgeted) > MAX_CONDITIONAL_LIMITS - 1:
            key = "gateway.defaultTenantBudget" if any(t not in cfg.gateway.tenant_budgets for t in budgeted) \
                else "gateway.tenantBudgets"
            yield key, (f"{len(budgeted)} tenants with a budget; agentgateway's conditional rate limits hold at most "
                        f"{MAX_CONDITIONAL_LIMITS - 1} (one entry each, plus the platform limit): give the others no "
                        "budget (defaultTenantBudget: {}) or fewer tenants a budget of their own")
    if cfg.gateway.prompt_cache.tenant_salt and not tenants:
        yield "gateway.promptCache.tenantSalt", "there are no tenants to salt by"
    if cfg.gateway.prompt_cache.tgi_sharing == "forbid":
        for i, m in enumerate(cfg.models):
            if m.engine == "tgi" and m.tenant is None:
                yield f"models[{i}].tenant", (f"'{m.name}' is a TGI model (no prefix-cache salting) and "
                                              "gateway.promptCache.tgiSharing is forbid: give it a tenant")


@cross_check  # compute: tenant-dedicated NodePools
def _compute_refs(cfg: PlatformConfig) -> Iterator[Problem]:
    for message in cluster_name_problems(cfg.cluster_name):
        yield "cluster.name", message
    for i, t in enumerate(cfg.tenants):
        # A dedicated pool is GPU-limited by the tenant's quota; 0 would be a pool that never launches.
        if t.isolation == "node" and t.quota.gpu < 1:
            yield f"tenants[{i}].quota.gpu", "node isolation needs a GPU quota of at least 1 (it is the dedicated pool's GPU limit)"


def _memory_fit(key: str, m, pool) -> Iterator[Problem]:
    """Weights plus one maxModelLen sequence of KV cache on the smallest-memory GPU it could land on
    (domain/sizing.py `fit`); tensor parallel across the model's heads."""
    arch = architecture(m)
    if arch is None:
        yield f"{key}.architecture", (f"no shape for {m.model} in platform/model-facts.yaml: set layers, attentionHeads, "
                                      "kvHeads, headDim from its config.json")
        return
    if (tp := tensor_parallel_problem(arch, m.gpus)) is not None:
        yield f"{key}.gpus", f"{m.model}: {tp}"
        return
    if arch.max_positions and m.max_model_len > arch.max_positions:
        yield f"{key}.maxModelLen", (f"{m.max_model_len} is longer than {m.model}'s max_position_embeddings "
                                     f"({arch.max_positions}); vLLM refuses it")
    f = tightest_fit(m, pool)
    if f is None:
        return
    if f.kv_free_gib <= 0:
        yield f"{key}.gpus", (f"{m.model} ({weights_gb(m):.0f} GB in {precision(m)}) does not fit {m.gpus} x {f.gpu}: "
                              f"per GPU gpuMemoryUtilization x memory = {f.budget_gib:.1f} GiB, weights "
                              f"{f.weights_gib:.1f} GiB + runtime {f.overhead_gib:g} GiB leave no KV cache")
    elif f.sequences < 1:
        yield f"{key}.maxModelLen", (f"{m.max_model_len} tokens need {f.sequence_gib:.2f} GiB of KV cache per GPU; "
                                     f"{m.gpus} x {f.gpu} leave {f.kv_free_gib:.2f} GiB after the weights "
                                     f"({f.weights_gib:.1f} GiB) and runtime ({f.overhead_gib:g} GiB): lower "
                                     "maxModelLen, raise gpus or gpuMemoryUtilization")


@cross_check  # models: a replica fits one node, its weights fit its GPUs, replicas fit the quota
def _model_fit(cfg: PlatformConfig) -> Iterator[Problem]:
    pools = {p.name: p for p in cfg.gpu_pools}
    tenants = {t.name: t for t in cfg.tenants}
    for i, m in enumerate(cfg.models):
        pool = pools.get(m.pool)
        if pool is None:
            continue  # _references reports it
        key = f"models[{i}]"
        tenant = tenants.get(m.tenant) if m.tenant else None
        if tenant and tenant.gpu_pools is not None and m.pool not in tenant.gpu_pools:
            yield f"{key}.pool", f"tenant '{m.tenant}' may only use {', '.join(tenant.gpu_pools) or 'no'} GPU pools"
        types = pool_types(m, pool)
        if not types:
            models = sorted({f.gpu_model for t in pool.instance_types if (f := instance_facts(t)) and f.gpu_model})
            yield f"{key}.gpuModel", f"'{m.gpu_model}' is not a GPU of pool '{m.pool}' ({', '.join(models)})"
            continue
        most = max(f.gpus for f in types)
        if m.gpus > most:
            yield f"{key}.gpus", (f"{m.gpus} GPUs do not fit one node of pool '{m.pool}': its largest "
                                  f"{m.gpu_model or ''} instance type has {most}".replace("  ", " "))
            continue
        yield from _memory_fit(key, m, pool)
        if m.cache == "nodeLocal":
            store = min(f.instance_store_gib for f in candidate_types(m, pool))
            if ephemeral_gib(m) > store * 0.9:  # GB vs GiB and the node's own use of the disk
                yield f"{key}.cacheSizeGiB", (f"{m.cache_size_gib} GiB (plus scratch) does not fit the "
                                              f"{store} GB instance store of the smallest node of pool '{m.pool}'")

    # maxReplicas x gpus of every model in a namespace must fit its ResourceQuota.
    used: dict[str, list[int]] = {}
    for i, m in enumerate(cfg.models):
        used.setdefault(m.tenant or "ai-inference", []).append(i)
    for ns, idx in used.items():
        quota, where = ((tenants[ns].quota.gpu, f"tenants[{list(tenants).index(ns)}].quota.gpu") if ns in tenants
                        else (cfg.platform_quotas.ai_inference.gpu, "platformQuotas.ai-inference.gpu"))
        demand = max_replica_demand([cfg.models[i] for i in idx], pools)
        total = demand.gpus
        if total > quota:
            for i in idx:
                m = cfg.models[i]
                yield f"models[{i}].maxReplicas", (
                    f"{m.max_replicas} x {m.gpus} GPUs: the models of namespace {ns} need {total} GPUs at "
                    f"maxReplicas, more than its quota {where} = {quota}")
        # Their CPU and memory requests too: the quota rejects pods past requests.cpu/requests.memory.
        q = tenants[ns].quota if ns in tenants else cfg.platform_quotas.ai_inference
        cpu, mem = demand.cpu, demand.memory_gib
        for what, need, have, unit in (("cpu", cpu, quantity_value(q.cpu), ""),
                                       ("memory", mem, quantity_value(q.memory) / 2**30, "Gi")):
            if need > have:
                yield f"models[{idx[-1]}].maxReplicas", (
                    f"the models of namespace {ns} request {need:g}{unit} {what} at maxReplicas, more than its "
                    f"quota {where.rsplit('.', 1)[0]}.{what} = {q.cpu if what == 'cpu' else q.memory}")


@cross_check  # tenancy: GPU quotas must be payable by the pools, IAM roles map to one tenant
def _tenant_gpu_budget(cfg: PlatformConfig) -> Iterator[Problem]:
    # Namespace-isolated tenants share the GPU pools they may use, so the quotas that may land on a
    # pool must fit its gpuLimit. A node-isolated tenant runs on its own pool (limit = its quota).
    for pool in cfg.gpu_pools:
        total, users = 0, []
        for i, t in enumerate(cfg.tenants):
            if t.isolation != "namespace" or t.quota.gpu == 0 or (t.gpu_pools is not None and pool.name not in t.gpu_pools):
                continue
            total += t.quota.gpu
            users.append(t.name)
            if total > pool.gpu_limit:
                yield f"tenants[{i}].quota.gpu", (f"tenants that may use GPU pool '{pool.name}' ({', '.join(users)}) "
                                                  f"have GPU quotas summing to {total}, over its gpuLimit {pool.gpu_limit}")
                break
    for i, t in enumerate(cfg.tenants):
        if t.quota.gpu > 0 and not cfg.gpu_pools:
            yield f"tenants[{i}].quota.gpu", "a GPU quota needs a GPU pool (gpuPools is empty)"
    seen = {a.arn: "cluster.admins" for a in cfg.cluster.admins}
    if cfg.cluster.deployer is not None:
        seen[cfg.cluster.deployer.arn] = "cluster.deployer (its cluster-admin entry from pulumi-eks)"
    for i, t in enumerate(cfg.tenants):
        for j, r in enumerate(t.iam_roles):
            if r.arn in seen:
                yield f"tenants[{i}].iamRoles[{j}].arn", f"already mapped by {seen[r.arn]}; an IAM role has one access entry"
            seen[r.arn] = f"tenants[{i}]"


@cross_check  # agents: models from the catalog, tools from the declared tool servers
def _agent_refs(cfg: PlatformConfig) -> Iterator[Problem]:
    models = {m.name for m in cfg.models}
    servers = {t.name for t in cfg.agent_runtime.tool_servers}
    yield from duplicates("agents", [a.name for a in cfg.agents])
    for i, a in enumerate(cfg.agents):
        if a.model not in models:
            yield f"agents[{i}].model", f"'{a.model}' is not a models name ({', '.join(sorted(models)) or 'none'})"
        for j, t in enumerate(a.tools):
            if t.server not in servers:
                yield (f"agents[{i}].tools[{j}].server",
                       f"'{t.server}' is not an agentRuntime.toolServers name ({', '.join(sorted(servers)) or 'none'})")


@cross_check
def _cost_thresholds(cfg: PlatformConfig) -> Iterator[Problem]:
    """A per-tenant cost threshold names a tenant."""
    tenants = {t.name for t in cfg.tenants}
    for tenant in cfg.cost.tenant_thresholds_usd:
        if tenant not in tenants:
            yield f"cost.tenantThresholdsUsd.{tenant}", f"'{tenant}' is not a tenant ({', '.join(sorted(tenants)) or 'none'})"
