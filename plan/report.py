"""What the offline plan writes: the summary, the JSON document and the manifests."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

from plan.cache import Memo
from plan.engine import Plan, Resource
from plan.objects import K8sObject
from plan.wire import SECRET_TEXT

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)   # libyaml when present: 10x faster
# A manifest's YAML depends only on the manifest: most of them (every chart's CRDs) are the same
# from one plan to the next, and PyYAML's representer is pure Python even over libyaml.
_YAML = Memo("manifests", code=(sys.modules[__name__],), versions=(yaml.__version__, DUMPER.__name__))
MOCK_NOTE = ("ids, ARNs, endpoints, kubeconfig and generated values are placeholders from the mock "
             "engine (prefix 'mock-', account 123456789012)")


def layer_of(plan: Plan, res: Resource, by_urn: dict[str, Resource] | None = None) -> str:
    """The layer component (a child of AgenticPlatform) a resource belongs to."""
    by_urn = by_urn if by_urn is not None else {r.urn: r for r in plan.resources}
    node = res
    while node.parent and node.parent in by_urn:
        parent = by_urn[node.parent]
        if parent.type == "agentic:index:AgenticPlatform":
            return node.type.split(":")[1] if node.type.startswith("agentic:") else node.type
        node = parent
    return "(root)"


def to_json(plan: Plan) -> dict[str, Any]:
    doc = {
        "project": plan.project,
        "stack": plan.stack,
        "resources": [{"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent, "custom": r.custom,
                       "protect": r.protect, "dependencies": r.dependencies, "options": r.options,
                       "inputs": r.inputs}
                      for r in sorted(plan.resources, key=lambda r: r.urn)],   # (registration order varies run to run)
        "outputs": plan.outputs,
        "policies": plan.policies,
        "mocked": MOCK_NOTE,
    }
    doc.update({k: v for k, v in plan.extras.items() if not k.startswith("_")})
    return doc


def to_yaml(doc: dict[str, Any]) -> str:
    """A manifest as YAML, keys in their order (apiVersion, kind, metadata first, as people write them)."""
    return _YAML.text(doc, lambda: yaml.dump(doc, Dumper=DUMPER, sort_keys=False))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def object_path(obj: K8sObject) -> Path:
    """<namespace or _cluster>/<Kind>-<name>.yaml"""
    return Path(_safe(obj.namespace or "_cluster")) / f"{obj.kind}-{_safe(obj.name)}.yaml"


def without_secret_values(manifest: dict[str, Any]) -> dict[str, Any]:
    """A Secret as the manifests show it: its keys, each value "[secret]". Declared Secrets reach the
    plan redacted already (plan/wire.py); a chart's own (the load balancer controller's webhook TLS
    key, made by `genSignedCert` at every render) would otherwise be written out in clear."""
    if manifest.get("kind") != "Secret":
        return manifest
    return {**manifest, **{field: {k: SECRET_TEXT for k in manifest[field]}
                           for field in ("data", "stringData") if isinstance(manifest.get(field), dict)}}


def write_manifests(plan: Plan, out_dir: Path) -> list[Path]:
    """One file per Kubernetes object, declared or rendered by a Helm release
    (DIR/<namespace or _cluster>/<Kind>-<name>.yaml, a Secret's values "[secret]"), one per Helm
    release (DIR/_helm/<release>.yaml)
    and DIR/index.json listing every object with its file, source and hook."""
    written: list[Path] = []
    index = []
    for r in plan.resources:
        if r.type == HELM_RELEASE:
            i = r.inputs
            doc = {"release": i.get("name", r.name), "chart": i.get("chart"), "version": i.get("version"),
                   "upstream": i.get("description"), "namespace": i.get("namespace"), "values": i.get("values", {})}
            path = out_dir / "_helm" / f"{_safe(doc['release'])}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(to_yaml(doc))
            written.append(path)
    seen: set[Path] = set()
    made: set[Path] = set()
    for obj in plan.objects:
        rel = object_path(obj)
        if rel in seen:   # two objects of one name and kind: admission reports the conflict
            rel = rel.with_name(f"{rel.stem}.{len(seen)}.yaml")
        seen.add(rel)
        path = out_dir / rel
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_text(to_yaml(without_secret_values(obj.manifest)))
        written.append(path)
        index.append({"file": str(rel), "apiVersion": obj.api_version, "kind": obj.kind, "namespace": obj.namespace,
                      "name": obj.name, "source": obj.source, "release": obj.release, "hook": obj.hook})
    index.sort(key=lambda e: e["file"])   # stable across runs: objects come in registration order
    (out_dir / "index.json").write_text(json.dumps(index, indent=1))
    return written


def object_lines(plan: Plan, by_urn: dict[str, Resource]) -> list[str]:
    """Kubernetes objects per layer, and per source: the program itself or a Helm release."""
    rendered = [o for o in plan.objects if o.release]
    lines = [f"\n  Kubernetes objects: {len(plan.objects)} ({len(plan.objects) - len(rendered)} declared, "
             f"{len(rendered)} rendered by {len({o.release for o in rendered})} Helm releases, "
             f"{sum(1 for o in rendered if o.hook)} of them hooks)"]
    per_layer: dict[str, Counter] = defaultdict(Counter)
    for o in plan.objects:
        layer = layer_of(plan, by_urn[o.source], by_urn) if o.source in by_urn else "(root)"
        per_layer[layer][o.release or o.controller or "declared"] += 1
    for layer in sorted(per_layer):
        counts = per_layer[layer]
        lines.append(f"    {layer} ({sum(counts.values())}): " + ", ".join(f"{src} {n}" for src, n in sorted(counts.items())))
    return lines


def summary(plan: Plan) -> str:
    lines = [f"Offline plan of {plan.project}/{plan.stack}: {len(plan.resources)} resources "
             f"({sum(r.custom for r in plan.resources)} custom, {sum(not r.custom for r in plan.resources)} components)"]
    by_layer: dict[str, Counter] = defaultdict(Counter)
    by_urn = {r.urn: r for r in plan.resources}
    for r in plan.resources:
        if r.custom:
            by_layer[layer_of(plan, r, by_urn)][r.type] += 1
    for layer in sorted(by_layer):
        counts = by_layer[layer]
        lines.append(f"\n  {layer} ({sum(counts.values())})")
        for typ, n in sorted(counts.items()):
            lines.append(f"    {n:4d}  {typ}")
    lines.extend(object_lines(plan, by_urn))
    protected = [r for r in plan.resources if r.protect]
    lines.append(f"\n  protected from destroy: {len(protected)}")
    lines.append("\nOutputs:")
    for k, v in plan.outputs.items():
        text = json.dumps(v) if not isinstance(v, str) else v
        lines.append(f"  {k}: {text if len(text) < 100 else text[:97] + '...'}")
    for title, lines_ in plan.extras.get("_summary", {}).items():
        lines.append(f"\n{title}:")
        lines.extend(f"  {x}" for x in lines_)
    lines.append(f"\nPolicies: {len(plan.policies)} finding(s)")
    for f in plan.policies:
        where = f.get("object") or f.get("urn")   # a rendered object's name; else the resource's URN
        lines.append(f"  [{f['level']}] {f['policy']}: {f['message']}" + (f"  ({where})" if where else ""))
    lines.append(f"\nNote: {MOCK_NOTE}.")
    return "\n".join(lines)
