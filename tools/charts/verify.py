#!/usr/bin/env python3
"""Check the vendored chart archives with the real Helm binary.

    python tools/charts/verify.py [--helm PATH] [--kube-version 1.34.0] [--releases DIR ...] [CHART ...]

For every archive of platform/charts/lock.yaml (or the keys given):
  * `helm show chart` reports the locked name and version;
  * `helm template test ARCHIVE --namespace x --kube-version V --include-crds` renders with the chart's
    default values (plus, for the few charts that refuse to render without them, the values they
    require -- REQUIRED below);
  * the archive is unpacked and `helm dependency list` is run on the chart and on every subchart inside
    it (nested archives unpacked too): every dependency must be "ok" (an archive in charts/) or
    "unpacked" (a directory in charts/, as the upstream tree ships it) -- never "missing",
    "wrong version" or "mispackaged".
With --releases DIR (e.g. out/manifests-dev), every Helm release record DIR/_helm/<release>.yaml that
`make plan` wrote is rendered with its vendored archive, namespace and values, and with --api-versions
for every CRD the vendored charts and the plan's manifests define. Exit 1 when anything fails.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS_DIR = ROOT / "platform" / "charts"
LOCK = CHARTS_DIR / "lock.yaml"

# Values without which the upstream chart fails on purpose (`required`/`fail`): not a packaging defect.
REQUIRED = {
    "karpenter": ["settings.clusterName=verify"],
    "aws-load-balancer-controller": ["clusterName=verify"],
    "opentelemetry-collector": ["mode=deployment", "image.repository=otel/opentelemetry-collector-k8s"],
    "langfuse": ["langfuse.salt.value=verify", "langfuse.nextauth.secret.value=verify",
                 "postgresql.auth.password=verify", "clickhouse.auth.password=verify",
                 "redis.auth.password=verify", "s3.auth.rootPassword=verify"],
}


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def dependency_problems(helm: str, chart_dir: Path, env: dict, where: str) -> list[str]:
    """`helm dependency list` of chart_dir and, recursively, of every subchart in its charts/."""
    problems = []
    done = run([helm, "dependency", "list", str(chart_dir)], env)
    if done.returncode:
        return [f"{where}: helm dependency list failed: {done.stderr.strip()}"]
    for line in done.stdout.splitlines()[1:]:
        cols = [c.strip() for c in line.split("\t")]
        if len(cols) >= 4 and cols[0] and cols[-1] not in ("ok", "unpacked"):
            problems.append(f"{where}: dependency {cols[0]} {cols[1]} is {cols[-1]}")
    charts = chart_dir / "charts"
    if charts.is_dir():
        for sub in sorted(charts.iterdir()):
            if sub.name.startswith((".", "_")):
                continue
            if sub.suffix == ".tgz":
                target = sub.with_suffix(".unpacked")
                target.mkdir()
                with tarfile.open(sub) as tf:
                    tf.extractall(target, filter="data")
                (inner,) = [p for p in target.iterdir() if p.is_dir()]
                problems += dependency_problems(helm, inner, env, f"{where}/charts/{sub.name}")
            elif (sub / "Chart.yaml").is_file():
                problems += dependency_problems(helm, sub, env, f"{where}/charts/{sub.name}")
    return problems


def check_archive(helm: str, key: str, entry: dict, kube: str, env: dict) -> tuple[str, list[str], list[dict]]:
    archive = CHARTS_DIR / entry["archive"]
    problems: list[str] = []
    shown = run([helm, "show", "chart", str(archive)], env)
    meta = yaml.safe_load(shown.stdout) if shown.returncode == 0 else None
    if not meta or meta.get("name") != entry["name"] or str(meta.get("version")) != str(entry["version"]):
        problems.append(f"helm show chart: {shown.stderr.strip() or (meta or {}).get('version')}")
    cmd = [helm, "template", "test", str(archive), "--namespace", "x", "--kube-version", kube, "--include-crds"]
    for s in REQUIRED.get(key, []):
        cmd += ["--set", s]
    tpl = run(cmd, env)
    crds = []
    kinds = 0
    if tpl.returncode:
        problems.append(f"helm template (default values): {tpl.stderr.strip()}")
    else:
        for doc in yaml.load_all(tpl.stdout, Loader=_Loader):
            if isinstance(doc, dict) and doc.get("kind"):
                kinds += 1
                if doc["kind"] == "CustomResourceDefinition":
                    crds.append(doc)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
        problems += dependency_problems(helm, Path(tmp) / entry["name"], env, entry["archive"])
    summary = f"show chart {entry['name']} {entry['version']}; template {kinds} objects"
    if REQUIRED.get(key):
        summary += f" (with {', '.join(s.split('=')[0] for s in REQUIRED[key])})"
    return summary, problems, crds


def api_versions(crds: list[dict]) -> list[str]:
    out = set()
    for c in crds:
        spec = c.get("spec") or {}
        for v in spec.get("versions") or []:
            if v.get("served", True):
                out.add(f"{spec.get('group')}/{v['name']}")
                out.add(f"{spec.get('group')}/{v['name']}/{(spec.get('names') or {}).get('kind')}")
    return sorted(out)


def release_archive(record: dict, pins: dict, lock: dict) -> str | None:
    chart = str(record.get("chart") or "")
    if chart.endswith(".tgz"):
        path = Path(chart) if Path(chart).is_absolute() else ROOT / chart
        return str(path) if path.is_file() else None
    for key, pin in pins.items():
        if pin.get("chart") == chart and pin.get("repo") == record.get("repository") \
                and str(pin.get("version")) == str(record.get("version")):
            entry = lock.get(key)
            return str(CHARTS_DIR / entry["archive"]) if entry else None
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--helm", default=str(ROOT / "tools" / "helm" / "bin" / "helm"))
    ap.add_argument("--kube-version", default="1.34.0")
    ap.add_argument("--releases", type=Path, nargs="*", default=[], metavar="DIR")
    ap.add_argument("charts", nargs="*", metavar="CHART")
    args = ap.parse_args(argv)
    lock = (yaml.safe_load(LOCK.read_text()) or {}).get("charts") or {}
    pins = yaml.safe_load((ROOT / "platform" / "charts.yaml").read_text())
    keys = args.charts or list(lock)
    failed = False
    with tempfile.TemporaryDirectory() as helm_home:
        env = {**os.environ, "HELM_CACHE_HOME": helm_home, "HELM_CONFIG_HOME": helm_home,
               "HELM_DATA_HOME": helm_home}
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            results = list(pool.map(lambda k: check_archive(args.helm, k, lock[k], args.kube_version, env), keys))
        all_crds = []
        for key, (summary, problems, crds) in zip(keys, results, strict=True):
            all_crds += crds
            print(f"{key}: {'FAIL' if problems else 'ok'}: {summary}")
            for p in problems:
                print(f"    {p}")
            failed |= bool(problems)
        for key in pins:
            if key not in lock:
                print(f"{key}: not vendored (no lock entry)")

        for rdir in args.releases:
            for f in sorted((rdir).glob("*.yaml")):
                try:
                    doc = yaml.load(f.read_text(), Loader=_Loader)
                except yaml.YAMLError:
                    continue
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    all_crds.append(doc)
        apis = api_versions(all_crds)
        for rdir in args.releases:
            for f in sorted((rdir / "_helm").glob("*.yaml")):
                rec = yaml.safe_load(f.read_text())
                archive = release_archive(rec, pins, lock)
                label = f"{rdir.name}/{rec['release']} ({rec['chart']} {rec['version']})"
                if archive is None:
                    print(f"{label}: NOT RENDERED: no vendored archive")
                    failed = True
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    values = Path(tmp) / "values.json"
                    values.write_text(json.dumps(rec.get("values") or {}))
                    cmd = [args.helm, "template", rec["release"], archive, "--namespace", rec["namespace"],
                           "--kube-version", args.kube_version, "--values", str(values), "--include-crds"]
                    for a in apis:
                        cmd += ["--api-versions", a]
                    done = run(cmd, env)
                if done.returncode:
                    print(f"{label}: FAIL: {done.stderr.strip()}")
                    failed = True
                else:
                    n = sum(1 for d in yaml.load_all(done.stdout, Loader=_Loader) if isinstance(d, dict) and d.get("kind"))
                    print(f"{label}: ok: {n} objects from {Path(archive).name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
