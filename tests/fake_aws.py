"""A stand-in for the AWS CLI that keeps S3 in a directory (<root>/<bucket>/<key>), for the shell
scripts the platform's containers run (the weights Job, wait-for-weights, the compile-cache restore).
Only the subcommands and flags those use, with the CLI's semantics: `s3 cp -` reads stdin and
`s3 cp s3://… -` writes stdout (exit 1 on a missing key); `s3 rm` of a missing key succeeds, as S3's
DeleteObject does; `s3 ls --recursive` prints `date time size key` and exits 1 when nothing matches,
`--summarize` adds `Total Objects:` / `   Total Size: <bytes>`; `s3 sync s3://… dir` copies every
object under the prefix; `s3api head-object` exits 254 on a missing key."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

FAKE_AWS = textwrap.dedent('''
    import os, sys
    from pathlib import Path
    root = Path(os.environ["FAKE_S3"])
    def path(url):
        return root / url.removeprefix("s3://")
    args = [a for a in sys.argv[1:] if a not in ("--quiet", "--no-progress")]
    if args[:2] == ["s3", "cp"]:
        src, dst = args[2:4]
        if src == "-":
            path(dst).parent.mkdir(parents=True, exist_ok=True)
            path(dst).write_bytes(sys.stdin.buffer.read())
        elif not path(src).is_file():
            print("An error occurred (404) when calling the HeadObject operation", file=sys.stderr)
            sys.exit(1)
        else:
            sys.stdout.buffer.write(path(src).read_bytes())
    elif args[:2] == ["s3", "rm"]:
        target = path(args[-1])
        if "--recursive" in args:
            for f in sorted(target.rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
        elif target.is_file():
            target.unlink()
    elif args[:2] == ["s3", "ls"]:
        files = sorted(f for f in path(args[-1]).rglob("*") if f.is_file()) if path(args[-1]).is_dir() else []
        for f in files:
            print("2026-01-01 00:00:00", f.stat().st_size, f.relative_to(root).as_posix().split("/", 1)[1])
        if "--summarize" in args:
            print(f"\\nTotal Objects: {len(files)}\\n   Total Size: {sum(f.stat().st_size for f in files)}")
        sys.exit(0 if files else 1)
    elif args[:2] == ["s3", "sync"] and args[2].startswith("s3://"):
        src, dst = path(args[2]), Path(args[3])
        for f in (sorted(src.rglob("*")) if src.is_dir() else []):
            if f.is_file():
                (dst / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
                (dst / f.relative_to(src)).write_bytes(f.read_bytes())
    elif args[:2] == ["s3api", "head-object"]:
        sys.exit(0 if (root / args[args.index("--bucket") + 1] / args[args.index("--key") + 1]).is_file() else 254)
    else:
        sys.exit(f"unexpected: {args}")
''')


def install_aws(tmp_path: Path) -> Path:
    """Puts `aws` into tmp_path/bin; returns the directory that holds the buckets."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(f"#!{sys.executable}\n{FAKE_AWS}")
    (bin_dir / "aws").chmod(0o755)
    return tmp_path / "s3"


def run_container(tmp_path: Path, container: dict, **env: str) -> subprocess.CompletedProcess:
    """A container's command and args with its literal env (plus `env`), `aws` the stand-in."""
    values = {e["name"]: e["value"] for e in container["env"] if isinstance(e.get("value"), str)}
    values |= {**env, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "FAKE_S3": str(tmp_path / "s3")}
    return subprocess.run([*container["command"], *container["args"]], env=values, capture_output=True,
                          text=True, timeout=30)
