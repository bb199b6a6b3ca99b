"""The plan's memo (plan/cache.py): a stored result is reused only for exactly the input, code and
library versions that produced it; anything else is computed afresh. And its users: a manifest's
YAML (plan/report.py) and an object's schema verdict (plan/admission/schema.py)."""

from __future__ import annotations

import types
from pathlib import PurePosixPath

import pytest
import yaml

from plan import cache as plan_cache
from plan.admission import schema
from plan.cache import Memo
from plan.objects import K8sObject
from plan.report import DUMPER, to_yaml

KUBE = "1.34.0"


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setattr(plan_cache, "CACHE_ROOT", tmp_path)
    return tmp_path


def module(tmp_path, name: str, source: str) -> types.ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    mod = types.ModuleType(name)
    mod.__file__ = str(path)
    return mod


def test_a_hit_is_read_and_a_miss_computed_and_stored(tmp_path):
    memo, calls = Memo("t", code=()), []

    def compute() -> str:
        calls.append(1)
        return "result"

    assert memo.text({"a": 1}, compute) == "result" and memo.text({"a": 1}, compute) == "result"
    assert len(calls) == 1
    (entry,) = (tmp_path / "t").iterdir()
    entry.write_text("stored")
    assert memo.text({"a": 1}, compute) == "stored"


def test_the_key_tells_apart_what_json_would_not():
    memo = Memo("t", code=())
    keys = {memo.key(v) for v in ({"a": 1}, {"a": "1"}, {"a": 1.0}, {"a": True}, {1: 1}, {"1": 1}, {"a": 1, "b": 2},
                                  {"b": 2, "a": 1})}
    assert len(keys) == 8   # order matters too: a manifest's YAML keeps its keys' order


def test_equal_values_have_one_key_however_they_share_objects():
    shared = {"name": "x"}
    separate = [{"name": "x"}, {"name": "".join(["x"])}]
    assert plan_cache.digest([shared, shared]) == plan_cache.digest(separate)
    assert plan_cache.digest((1, [2.5, None])) != plan_cache.digest([1, [2.5, None]])   # a tuple is not a list


def test_a_value_marshal_cannot_write_is_keyed_by_its_repr():
    assert plan_cache.digest(("builtin", PurePosixPath("/a"))) != plan_cache.digest(("builtin", PurePosixPath("/b")))
    assert plan_cache.digest(("builtin", PurePosixPath("/a"))) == plan_cache.digest(("builtin", PurePosixPath("/a")))


def test_new_code_or_a_new_library_version_starts_afresh(tmp_path):
    one, other = module(tmp_path, "one", "X = 1\n"), module(tmp_path, "other", "X = 2\n")
    assert Memo("t", code=(one,)).key("in") != Memo("t", code=(other,)).key("in")
    assert Memo("t", code=(one,), versions=("1.0",)).key("in") != Memo("t", code=(one,), versions=("1.1",)).key("in")
    assert Memo("t", code=(one,)).key("in") == Memo("t", code=(one,)).key("in")


def test_an_unwritable_cache_still_computes(tmp_path, monkeypatch):
    (tmp_path / "blocked").write_text("a file where the directory would be")
    monkeypatch.setattr(plan_cache, "CACHE_ROOT", tmp_path / "blocked")
    assert Memo("t", code=()).text("in", lambda: "computed") == "computed"


def test_a_manifest_yaml_is_what_pyyaml_writes_for_that_manifest():
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"port": "80", "n": 80}}
    assert to_yaml(doc) == yaml.dump(doc, Dumper=DUMPER, sort_keys=False)
    assert to_yaml(doc) == yaml.dump(doc, Dumper=DUMPER, sort_keys=False)   # from the cache now
    changed = {**doc, "data": {"port": 80, "n": 80}}
    assert to_yaml(changed) == yaml.dump(changed, Dumper=DUMPER, sort_keys=False) != to_yaml(doc)


def _crd(minimum: int) -> K8sObject:
    schema_ = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "replicas": {"type": "integer", "minimum": minimum}}}}}
    return K8sObject({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                      "metadata": {"name": "widgets.example.com"},
                      "spec": {"group": "example.com", "scope": "Namespaced",
                               "names": {"kind": "Widget", "plural": "widgets"},
                               "versions": [{"name": "v1", "served": True, "storage": True,
                                             "schema": {"openAPIV3Schema": schema_}}]}}, "urn:crd")


def test_a_schema_verdict_follows_the_crd_it_was_judged_against():
    widget = K8sObject({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "x"},
                        "spec": {"replicas": 2}}, "urn:w")
    assert schema.check([_crd(1), widget], KUBE) == []
    [(_, problem)] = schema.check([_crd(3), widget], KUBE)   # same object, stricter CRD: judged again
    assert "spec.replicas" in problem and "minimum of 3" in problem
    assert schema.check([_crd(1), widget], KUBE) == []
    widget.manifest["spec"]["replicas"] = 0                   # same CRD, another object
    assert schema.check([_crd(1), widget], KUBE)


def test_a_builtin_verdict_follows_the_object():
    pod = K8sObject({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "x"},
                     "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}, "urn:p")
    assert schema.check([pod], KUBE) == []
    pod.manifest["spec"]["containers"][0]["imagePullPolcy"] = "Always"   # a typo: strict validation rejects it
    [(_, problem)] = schema.check([pod], KUBE)
    assert "imagePullPolcy" in problem
