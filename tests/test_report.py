"""The plan's files come out in one order whatever order the program registered its resources in
(it differs from run to run: resources made in callbacks), so two plans of one commit diff clean."""

from __future__ import annotations

import base64
import copy
import json
import random

import yaml

from plan.report import to_json, write_manifests
from plan.wire import SECRET_TEXT


def _shuffled(plan):
    other = copy.copy(plan)
    other.resources, other.objects = list(plan.resources), list(plan.objects)
    random.Random(7).shuffle(other.resources)
    random.Random(7).shuffle(other.objects)
    return other


def test_plan_json_and_the_manifest_index_do_not_depend_on_registration_order(prod_plan, tmp_path):
    other = _shuffled(prod_plan)
    assert [r.urn for r in other.resources] != [r.urn for r in prod_plan.resources]
    assert json.dumps(to_json(other)["resources"]) == json.dumps(to_json(prod_plan)["resources"])
    write_manifests(prod_plan, tmp_path / "a")
    write_manifests(other, tmp_path / "b")
    assert (tmp_path / "a" / "index.json").read_text() == (tmp_path / "b" / "index.json").read_text()


def test_no_secret_value_is_written_in_the_manifests(prod_plan, tmp_path):
    """The load balancer controller's chart makes its webhook's TLS key at render time: the manifest
    of its Secret keeps the keys, not the key material; nothing written holds a private key."""
    files = write_manifests(prod_plan, tmp_path)
    tls = tmp_path / "kube-system" / "Secret-aws-load-balancer-tls.yaml"
    assert tls in files
    (rendered,) = [o for o in prod_plan.objects if o.kind == "Secret" and o.name == "aws-load-balancer-tls"]
    assert "tls.key" in rendered.manifest["data"] and rendered.manifest["data"]["tls.key"] != SECRET_TEXT
    assert yaml.safe_load(tls.read_text())["data"] == {k: SECRET_TEXT for k in rendered.manifest["data"]}
    private_key = base64.b64encode(b"-----BEGIN RSA PRIVATE KEY-----").decode()[:32]
    assert not [f for f in files if private_key in f.read_text() or "PRIVATE KEY-----" in f.read_text()]
