"""Results of pure functions of the plan, kept across runs under `.cache/<name>/` (override the root
with $AGENTIC_CACHE): a repeat plan reads what an unchanged input gave last time instead of
computing it again. One code path: a miss computes exactly what a cold plan computes and stores it.

A key is the SHA-256 of everything the result depends on: the input itself (its `marshal` bytes,
which tell 1 from "1", 1.0 and True -- JSON would not -- at a third of `repr`'s cost; `repr` for a
value marshal cannot write), the versions of the libraries that compute it, and
the source of the modules that hold the computation (`Memo(code=...)`), so editing the code or
upgrading a library starts afresh. Entries are written atomically (a parallel test worker reads
a whole entry or none); a corrupt or missing entry is a miss."""

from __future__ import annotations

import hashlib
import marshal
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
CACHE_ROOT = Path(os.environ.get("AGENTIC_CACHE", ROOT / ".cache"))


@cache
def source_digest(module: ModuleType) -> str:
    """SHA-256 of a module's source file."""
    return hashlib.sha256(Path(module.__file__ or "").read_bytes()).hexdigest()


def digest(value: object) -> str:
    """SHA-256 of a value made of dicts, lists, tuples, strings, numbers, booleans and None. Marshal
    format 2 writes no back-references (format 3 marks objects seen twice, so equal values could
    differ by how they share objects): equal values give equal bytes, different ones different bytes
    (a dict's order counts, as in `repr`)."""
    try:
        data = marshal.dumps(value, 2)
    except ValueError:   # a type marshal does not write (a Path, a subclass of str): its repr
        data = repr(value).encode()
    return hashlib.sha256(data).hexdigest()


class Memo:
    """A pure function's text results, stored per input under CACHE_ROOT/`name`."""

    def __init__(self, name: str, *, code: tuple[ModuleType, ...], versions: tuple[str, ...] = ()):
        self.name = name
        self.code = code
        self.versions = versions

    @property
    def directory(self) -> Path:
        return CACHE_ROOT / self.name   # read at use: tests point CACHE_ROOT elsewhere

    def key(self, value: object) -> str:
        return digest((self.versions, [source_digest(m) for m in self.code], value))

    def get(self, key: str) -> str | None:
        try:
            return (self.directory / key).read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def put(self, key: str, text: str) -> None:
        path = self.directory / key
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{key}.{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.replace(path)
        except OSError:
            pass   # a read-only checkout still plans, just without the cache

    def text(self, value: object, compute: Callable[[], str], key: str | None = None) -> str:
        """`compute()`'s result for `value` (its key, when the caller already has it)."""
        key = key or self.key(value)
        found = self.get(key)
        if found is None:
            found = compute()
            self.put(key, found)
        return found
