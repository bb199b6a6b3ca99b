"""A chart's files: the build's error, the assembled chart, its Chart.yaml and lock metadata, and the
reproducible .tgz it is vendored as (sorted entries, fixed mtime, uid/gid 0, gzip header mtime 0)."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml


class BuildError(Exception):
    pass


@dataclass
class Chart:
    name: str
    version: str
    files: dict[str, tuple[bytes, int]]           # chart-relative path -> (data, mode)
    lock: dict                                     # what the lock records about it
    mtime: int = 0


def load_yaml(data: bytes, what: str):
    try:
        return yaml.safe_load(data.decode("utf-8")) if data else None
    except yaml.YAMLError as e:
        raise BuildError(f"{what}: {e}") from None


def chart_metadata(files: dict[str, tuple[bytes, int]], what: str) -> tuple[dict, list[dict]]:
    if "Chart.yaml" not in files:
        raise BuildError(f"{what}: no Chart.yaml")
    meta = load_yaml(files["Chart.yaml"][0], f"{what}/Chart.yaml") or {}
    deps = meta.get("dependencies") or []
    if not deps and "requirements.yaml" in files:  # apiVersion v1 charts
        deps = (load_yaml(files["requirements.yaml"][0], f"{what}/requirements.yaml") or {}).get("dependencies") or []
    return meta, deps


def locked_versions(files: dict[str, tuple[bytes, int]], what: str) -> dict[str, str]:
    """{dependency name: version} of the chart's Chart.lock (requirements.lock for apiVersion v1): what
    `helm dependency build` puts into charts/."""
    for name in ("Chart.lock", "requirements.lock"):
        if name in files:
            doc = load_yaml(files[name][0], f"{what}/{name}") or {}
            return {d["name"]: str(d["version"]) for d in doc.get("dependencies") or []}
    return {}


def read_archive(data: bytes, where: str) -> tuple[str, dict[str, tuple[bytes, int]]]:
    files, top = {}, None
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        for m in tf.getmembers():
            if not m.isfile():
                continue
            head, _, rest = m.name.lstrip("./").partition("/")
            top = top or head
            if head != top:
                raise BuildError(f"{where}: more than one top-level directory")
            files[rest] = (tf.extractfile(m).read(), m.mode & 0o777)
    return top, files


def archive_bytes(chart: Chart) -> bytes:
    """The chart as a reproducible .tgz: sorted regular-file entries under <name>/, mtime = the chart
    commit's time, uid/gid 0, no user/group names, modes 0644/0755, gzip header without name or mtime."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for p in sorted(chart.files):
            data, mode = chart.files[p]
            ti = tarfile.TarInfo(f"{chart.name}/{p}")
            ti.size, ti.mode, ti.mtime = len(data), 0o755 if mode & 0o111 else 0o644, chart.mtime
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.type = tarfile.REGTYPE
            tf.addfile(ti, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def write_archive(chart: Chart, dest: Path) -> str:
    blob = archive_bytes(chart)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(dest)
    return hashlib.sha256(blob).hexdigest()
