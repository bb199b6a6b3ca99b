"""The plan's files come out in one order whatever order the program registered its resources in
(it differs from run to run: resources made in callbacks), so two plans of one commit diff clean."""

from __future__ import annotations

import copy
import json
import random

from plan.report import to_json, write_manifests


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
