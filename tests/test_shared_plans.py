"""tests/shared_plans.py and the conftest rules that feed it: under `pytest -n N` the tests on a
shared plan reach one worker as one unit (xdist's LoadScopeScheduling with our scopes), the rest one
by one; a missing or broken list means no grouping; the run's temporary directory is removed at the
end; a test that reads a shared plan through its module's helpers is on a shared plan too."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace

from tests import conftest, shared_plans


class Config:
    """What the scheduler and controller_file read of pytest's config."""

    def __init__(self, workers: int = 2):
        self.option = SimpleNamespace(tx=[f"{workers}*popen"], loadscopereorder=True, dist="load")
        self.cleanups: list = []

    def getvalue(self, name: str):
        return getattr(self.option, name)

    def add_cleanup(self, fn) -> None:
        self.cleanups.append(fn)


class Worker:
    """A worker as the scheduler drives it: the test indexes it is sent."""

    def __init__(self, name: str):
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent += indexes

    def shutdown(self) -> None:
        self.shutting_down = True


TESTS = [f"tests/test_{m}.py::test_{i}" for m in ("a", "b") for i in range(4)]
SHARED = [TESTS[0], TESTS[2], TESTS[5], TESTS[7]]


def schedule(config: Config, write: list[str] | str | None) -> list[list[str]]:
    """The tests each of two workers is sent first, after the workers listed `write`."""
    path = Path(shared_plans.controller_file(config))
    if isinstance(write, list):
        config.workerinput = {shared_plans.WORKER_INPUT_KEY: str(path)}
        shared_plans.write_from_worker(config, write)
    elif isinstance(write, str):
        path.write_text(write)
    sched = shared_plans.Scheduling(config)
    workers = [Worker("gw0"), Worker("gw1")]
    for w in workers:
        sched.add_node(w)
        sched.add_node_collection(w, TESTS)
    sched.schedule()
    return [[TESTS[i] for i in w.sent] for w in workers]


def test_the_tests_on_a_shared_plan_go_to_one_worker_as_one_unit():
    sent = schedule(Config(), SHARED)
    holder = next(s for s in sent if SHARED[0] in s)
    assert set(SHARED) <= set(holder)                       # all of them, to the same worker
    other = next(s for s in sent if s is not holder)
    assert other and not set(SHARED) & set(other)          # the rest balance onto the other one


def test_without_a_list_every_test_is_its_own_unit():
    for write in (None, "not json"):
        sent = schedule(Config(), write)
        assert all(len(s) <= 2 for s in sent)   # xdist sends two single-test units to start with


def test_the_workers_list_is_written_where_the_controller_said_and_removed_with_the_run():
    config = Config()
    path = Path(shared_plans.controller_file(config))
    assert shared_plans.controller_file(config) == str(path)   # one file per run
    config.workerinput = {shared_plans.WORKER_INPUT_KEY: str(path)}
    shared_plans.write_from_worker(config, SHARED)
    assert path.read_text().count("::") == len(SHARED)
    for cleanup in config.cleanups:
        cleanup()
    assert not path.parent.exists()


def test_a_worker_without_the_key_writes_nothing(tmp_path):
    config = SimpleNamespace(workerinput={})
    shared_plans.write_from_worker(config, SHARED)   # no file named: nothing to do, no error
    assert not list(tmp_path.iterdir())


def test_a_helper_that_reads_a_shared_plan_puts_its_callers_on_it(tmp_path, monkeypatch):
    (tmp_path / "fake_flows_module.py").write_text('''
from functools import cache


def plan_of(stack):
    return {"connections": []}


@cache
def derivation(stack):
    return plan_of(stack)


def conns(stack):
    return derivation(stack)["connections"]


def unrelated(stack):
    return stack.reachability()
''')
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fake_flows_module")
    helpers = conftest._shared_plan_helpers(module)
    assert helpers == {"plan_of", "derivation", "conns"}
    assert conftest._calls_any("    assert conns('dev')", helpers)
    assert not conftest._calls_any("    x.conns('dev'); reconns(1)", helpers)
