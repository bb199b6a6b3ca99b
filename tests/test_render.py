"""The plan renders every Helm release with the real Helm binary and its vendored chart, and admits
every object, declared or rendered, as the cluster would."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter

import pytest

from plan import cache as plan_cache
from plan import objects as k8s_objects
from plan import render
from plan.admission import schema
from plan.engine import ROOT
from plan.objects import K8sObject
from tests.conftest import STACKS, plan_of


@pytest.fixture(scope="module", params=STACKS)
def planned(request):
    return plan_of(request.param)


@pytest.mark.program
def test_every_release_renders_objects_from_its_vendored_archive(planned):
    specs = render.releases(planned)
    assert specs, "the plan has no Helm releases"
    per_release = Counter(o.release for o in planned.objects if o.release)
    for spec in specs:
        assert spec.chart.is_relative_to(ROOT / "platform" / "charts") and spec.chart.is_file(), spec.chart
        assert per_release[spec.name] > 0, f"release {spec.name} rendered nothing"


@pytest.mark.program
def test_rendered_objects_are_many_and_namespaced_like_helm_installs_them(planned):
    rendered = [o for o in planned.objects if o.release]
    assert len(rendered) > 250   # hundreds: every chart object, not just the release records
    kinds = Counter(o.kind for o in rendered)
    assert kinds["Deployment"] and kinds["CustomResourceDefinition"] and kinds["ServiceAccount"]
    releases = {s.urn: s.namespace for s in render.releases(planned)}
    for o in rendered:
        if o.kind in ("Deployment", "StatefulSet", "DaemonSet", "Service", "ServiceAccount", "ConfigMap"):
            assert o.namespace, o.ref
            assert o.source in releases


@pytest.mark.program
def test_hooks_are_marked(planned):
    hooks = [o for o in planned.objects if o.hook]
    assert hooks, "no chart renders a hook? (kube-prometheus-stack's admission jobs are pre-install hooks)"
    for o in hooks:
        assert o.metadata["annotations"][render.HOOK] == o.hook


@pytest.mark.program
def test_zero_admission_findings(planned):
    found = planned.extras["admission"]
    assert found == [], "\n".join(f"[{f['check']}] {f['object'] or f['source']}: {f['message']}" for f in found)


@pytest.mark.program
def test_cache_key_follows_archive_values_and_kube_version(planned):
    spec = next(s for s in render.releases(planned) if render.reads_api_versions(s.chart, render.archive_digest(s.chart)))
    key = render._key(spec, "1.34.0", ())
    assert key == render._key(spec, "1.34.0", ())
    assert key != render._key(spec, "1.33.0", ())
    assert key != render._key(spec, "1.34.0", ("example.com/v1",))
    other = render.ReleaseSpec(spec.urn, spec.name, spec.namespace, spec.chart, spec.version,
                               json.dumps({"changed": True}), spec.include_crds)
    assert key != render._key(other, "1.34.0", ())


@pytest.mark.program
def test_a_chart_that_cannot_read_the_api_versions_renders_alike_with_any(planned, tmp_path, monkeypatch):
    """Keyed without the API set (plan/render.py reads_api_versions): checked by rendering such a
    chart with Helm under two API sets, and a chart that reads them keys each set apart."""
    specs = render.releases(planned)
    blind = [s for s in specs if not render.reads_api_versions(s.chart, render.archive_digest(s.chart))]
    assert {"prometheus-operator-crds", "aws-load-balancer-controller", "keda"} <= {s.name for s in blind}
    assert any(s.name == "kube-prometheus-stack" for s in specs if s not in blind)   # it reads them
    # keda renders the same twice (the load balancer controller makes new webhook certificates each time)
    spec = next(s for s in blind if s.name == "keda")
    apis = ("gateway.networking.k8s.io/v1", "monitoring.coreos.com/v1/ServiceMonitor")
    assert render._key(spec, "1.34.0", ()) == render._key(spec, "1.34.0", apis)
    # ... unless its values could hand the API versions to its `tpl` (keda's extraObjects)
    reading = render.ReleaseSpec(spec.urn, spec.name, spec.namespace, spec.chart, spec.version, json.dumps(
        {"extraObjects": ["{{ if .Capabilities.APIVersions.Has \"x/v1\" }}kind: X{{ end }}"]}), spec.include_crds)
    assert render._key(reading, "1.34.0", ()) != render._key(reading, "1.34.0", apis)
    monkeypatch.setattr(render, "CACHE_DIR", tmp_path / "a")
    without = render.render_one(spec, "1.34.0", ())
    monkeypatch.setattr(render, "CACHE_DIR", tmp_path / "b")
    assert render.render_one(spec, "1.34.0", apis) == without


def test_subcharts_vendored_as_archives_are_read_too(tmp_path):
    def archive(path, files):
        with tarfile.open(path, "w:gz") as t:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    archive(tmp_path / "sub.tgz", {"sub/templates/pdb.yaml": b"{{ if .Capabilities.APIVersions.Has \"policy/v1\" }}"})
    archive(tmp_path / "parent.tgz", {"parent/templates/cm.yaml": b"kind: ConfigMap",
                                      "parent/charts/sub.tgz": (tmp_path / "sub.tgz").read_bytes()})
    archive(tmp_path / "plain.tgz", {"plain/templates/cm.yaml": b"kind: ConfigMap"})
    assert render.reads_api_versions(tmp_path / "parent.tgz", "p")
    assert not render.reads_api_versions(tmp_path / "plain.tgz", "q")
    reads = [b"{{ $.Capabilities | toYaml }}", b"{{ include \"x\" (dict \"c\" .Capabilities) }}",
             b"{{ toYaml $ | nindent 2 }}", b"{{ .Capabilities.APIVersions.Has \"v1\" }}"]
    blind = [b"{{ .Capabilities.KubeVersion.Minor }}", b"{{ .Capabilities.HelmVersion.Version }}",
             b"{{- with .Values.x }}{{ toYaml . | nindent 2 }}{{ end }}", b"{{ toYaml $.Values.x }}"]
    assert all(render._READS_APIS.search(t) for t in reads)
    assert not [t for t in blind if render._READS_APIS.search(t)]


def test_a_chart_that_does_not_render_is_an_error(tmp_path):
    spec = render.ReleaseSpec("urn:x", "x", "default", tmp_path / "missing.tgz", "1.0.0", "{}", True)
    with pytest.raises(render.RenderError, match="does not exist"):
        render.render_one(spec, "1.34.0", ())
    keda = next(p for p in (ROOT / "platform" / "charts").glob("keda-*.tgz"))
    bad = render.ReleaseSpec("urn:x", "x", "default", keda, "", json.dumps({"image": "not-a-map"}), True)
    with pytest.raises(render.RenderError, match="helm template x"):
        render.render_one(bad, "1.34.0", ())


@pytest.mark.slow
def test_missing_helm_is_a_clear_message_and_writes_nothing(tmp_path):
    env = {**os.environ, "AGENTIC_HELM": str(tmp_path / "no-helm")}
    proc = subprocess.run([sys.executable, "-m", "plan", "dev", "--json", str(tmp_path / "p.json"),
                           "--manifests", str(tmp_path / "m")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 3
    assert "Helm is not installed" in proc.stderr and "make tools/helm/bin/helm" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "m").exists()


def test_failover_backend_is_checked_against_the_pinned_kgateway_crd(kgw_plan):
    """The failover Backend of prod's kgateway variant (`type: PriorityGroups`) is admitted by the Backend CRD the
    kgateway-crds v2.4.3 release installs, not by a schema copied from another version; the same
    CRD rejects a type it does not know."""

    (crd,) = [o for o in kgw_plan.objects if o.kind == "CustomResourceDefinition"
              and o.name == "backends.gateway.kgateway.dev"]
    assert crd.release == "kgateway-crds"
    failover = [o for o in kgw_plan.objects if o.kind == "Backend" and o.manifest["spec"].get("type") == "PriorityGroups"]
    assert failover
    assert schema.check([crd, *failover], "1.34.0") == []
    bad = K8sObject({**failover[0].manifest, "spec": {**failover[0].manifest["spec"], "type": "RoundRobinGroups"}}, "t")
    [(_, message)] = schema.check([crd, bad], "1.34.0")
    assert "RoundRobinGroups" in message


@pytest.fixture
def fresh_helm_version():
    """helm_version's in-process answer forgotten before and after (a fake binary's must not stay)."""
    render.helm_version.cache_clear()
    yield
    render.helm_version.cache_clear()


def test_helm_version_is_asked_once_per_binary(tmp_path, monkeypatch, fresh_helm_version):
    """`helm version` is kept per binary (plan.cache): a repeat asks no process; a new binary (another
    path, or the same path rewritten) is asked afresh."""

    monkeypatch.setattr(plan_cache, "CACHE_ROOT", tmp_path / "cache")
    calls = tmp_path / "calls"

    def fake_helm(name: str, version: str):
        path = tmp_path / name
        path.write_text(f"#!/bin/sh\necho x >> {calls}\necho {version}\n")
        path.chmod(0o755)
        return path

    def asked(path) -> str:
        monkeypatch.setattr(render, "HELM", path)
        render.helm_version.cache_clear()
        return render.helm_version()

    one = fake_helm("helm-a", "v3.17.2+a")
    assert asked(one) == asked(one) == "v3.17.2+a"
    assert calls.read_text().count("x") == 1
    assert asked(fake_helm("helm-b", "v3.18.0+b")) == "v3.18.0+b"
    os.utime(one, ns=(1, 1))   # the same path, another binary (mtime changed)
    assert asked(one) == "v3.17.2+a" and calls.read_text().count("x") == 3


@pytest.mark.program
def test_a_repeat_render_starts_from_the_apis_it_ended_with(prod_plan, tmp_path, monkeypatch):
    """render_all remembers the API set its loop ends with (plan.cache): a repeat plan of the same
    releases renders once, with that set, and gets the same objects as the loop from scratch."""

    monkeypatch.setattr(plan_cache, "CACHE_ROOT", tmp_path)
    declared, passes, real_render = k8s_objects.declared(prod_plan), [], render.render
    monkeypatch.setattr(render, "render", lambda plan, kube, apis: passes.append(apis) or real_render(plan, kube, apis))
    cold = render.render_all(prod_plan, declared, "1.34.0")
    cold_passes = len(passes)
    assert cold_passes >= 2   # the charts' CRDs add APIs that change what other charts render
    warm = render.render_all(prod_plan, declared, "1.34.0")
    assert passes[cold_passes:] == [passes[cold_passes - 1]]
    assert [(o.source, o.manifest) for o in warm] == [(o.source, o.manifest) for o in cold]
