"""Under `pytest -n N`: every test on a shared plan runs on one xdist worker, so each shared plan
(dev, prod, the variants, the examples: 2-5 s of CPU each) is built once per run instead of once
per worker; the other tests (unit, layer, one-off stacks, subprocesses) balance across the
workers around that one unit of work.

pytest-xdist's own `--dist loadgroup` cannot do it here: it tags a grouped test by appending
"@group" to `item._nodeid`, which pytest 9.2's structured node ids no longer read, so the
`xdist_group` marks are silently ignored (pytest-dev/pytest-xdist#1386, open; the fix, #1388, is
unmerged). Instead each worker writes the node ids of its tests on a shared plan to a file the
controller named (`pytest_configure_node`), and the controller's scheduler (`Scheduling`, xdist's
LoadScopeScheduling with that file as its scopes) sends them as one unit. A missing file means no
grouping, never a failed run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from xdist.scheduler import LoadScopeScheduling

GROUP = "shared-plans"
WORKER_INPUT_KEY = "shared_plans_file"


def controller_file(config) -> str:
    """The file the workers write to (one per run, made by the controller on first use, in a
    directory removed when the run ends)."""
    path = getattr(config, "_shared_plans_file", None)
    if path is None:
        directory = tempfile.mkdtemp(prefix="pytest-shared-plans-")
        config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
        path = str(Path(directory) / "nodeids.json")
        config._shared_plans_file = path
    return path


def write_from_worker(config, nodeids: list[str]) -> None:
    """On a worker: record the tests on a shared plan (each worker collects the same tests; the
    write is atomic, so the controller reads one whole list)."""
    workerinput = getattr(config, "workerinput", None)
    if not workerinput or WORKER_INPUT_KEY not in workerinput:
        return
    path = Path(workerinput[WORKER_INPUT_KEY])
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(nodeids))
    tmp.replace(path)


class Scheduling(LoadScopeScheduling):
    """One scope for the tests on a shared plan, one per test for the rest. xdist orders the scopes
    by size (`--loadscope-reorder`, the default), so the shared plans' unit goes out first."""

    def __init__(self, config, log=None):
        super().__init__(config, log)
        self._path = Path(controller_file(config))
        self._shared: frozenset[str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self._shared is None:   # read once, after every worker has collected (schedule())
            try:
                self._shared = frozenset(json.loads(self._path.read_text()))
            except (OSError, ValueError):
                self._shared = frozenset()
        return GROUP if nodeid in self._shared else nodeid
