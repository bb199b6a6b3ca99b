"""The weights Job's marker names what was copied (components/model_weights.py): the scripts of the
Job and of the servers' wait run here, with `aws` a stand-in that keeps the bucket in a directory
(tests/fake_aws.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from components.config import NAMESPACE, ConfigError, ModelConfig, validate
from components.model_engine import engine_container
from components.model_weights import LEGACY_MARKER, WEIGHTS_COMPLETE, WEIGHTS_OF, wait_for_weights, weights_id, weights_pod_spec
from tests.conftest import stack_doc
from tests.fake_aws import install_aws, run_container

PREFIX = "org/m"


def model(**kw) -> ModelConfig:
    return ModelConfig.model_validate({"name": "m", "engine": "vllm", "model": PREFIX, "image": "vllm/vllm-openai:v0.12.0",
                                       "parametersB": 1, "pool": "p", "cache": "s3", **kw})


def _bucket(tmp_path: Path) -> Path:
    return install_aws(tmp_path) / "bucket" / PREFIX


def _run(tmp_path: Path, container: dict) -> subprocess.CompletedProcess:
    return run_container(tmp_path, container, BUCKET="bucket", WORK=str(tmp_path))


def _job(m: ModelConfig) -> dict:
    return weights_pod_spec(m, "bucket", PREFIX, "sa", None, None)


def _list(tmp_path: Path, m: ModelConfig) -> subprocess.CompletedProcess:
    (lister,) = [c for c in _job(m)["initContainers"] if c["name"] == "list"]
    return _run(tmp_path, lister)


def _fill(prefix: Path, marker: str | None) -> None:
    prefix.mkdir(parents=True)
    (prefix / "model.safetensors").write_text("old weights")
    if marker is not None:
        (prefix / WEIGHTS_COMPLETE).write_text(marker + "\n")


def test_the_marker_names_the_model_revision_and_patterns():
    assert weights_id(model()).startswith(f"{PREFIX}@main ")
    assert weights_id(model(revision="abc123")).startswith(f"{PREFIX}@abc123 ")
    assert weights_id(model()) != weights_id(model(revision="abc123"))
    assert weights_id(model()) == weights_id(model(name="other"))       # the copy, not the server


def test_a_server_does_not_start_on_another_copys_marker(tmp_path):
    """What made a rerun unsafe: the wait took any marker (HeadObject) for the copy it waits for."""
    prefix = _bucket(tmp_path)
    new = model(revision="abc123")
    _fill(prefix, weights_id(model()))                                 # the previous revision's copy
    wait = wait_for_weights(new, "bucket", PREFIX, None, str(tmp_path), give_up_s=0)
    gave_up = _run(tmp_path, wait)
    assert gave_up.returncode == 1 and weights_id(new) in gave_up.stderr
    (prefix / WEIGHTS_COMPLETE).write_text(weights_id(new) + "\n")
    assert _run(tmp_path, wait).returncode == 0


def test_a_rerun_deletes_the_marker_before_it_copies(tmp_path):
    prefix = _bucket(tmp_path)
    m = model()
    _fill(prefix, weights_id(m))
    done = _list(tmp_path, m)
    assert done.returncode == 0, done.stderr
    assert not (prefix / WEIGHTS_COMPLETE).exists()                    # no server starts meanwhile
    assert (prefix / WEIGHTS_OF).read_text().strip() == weights_id(m)
    # the same copy: what is there is trusted (the download skips files of the right size)
    assert f"{PREFIX}/model.safetensors" in (tmp_path / "in-s3.txt").read_text()


def test_a_copy_of_another_revision_empties_the_prefix_first(tmp_path):
    """Same-named files of another revision may differ at the same size (--size-only would keep
    them), and shards it no longer has would stay behind."""
    prefix = _bucket(tmp_path)
    new = model(revision="abc123")
    _fill(prefix, weights_id(model()))
    assert _list(tmp_path, new).returncode == 0
    assert not (prefix / "model.safetensors").exists()
    assert "model.safetensors" not in (tmp_path / "in-s3.txt").read_text()
    assert (prefix / WEIGHTS_OF).read_text().strip() == weights_id(new)


def test_a_retried_pod_trusts_the_files_its_copy_wrote(tmp_path):
    """A pod of the same copy that failed after `.weights-of` (the marker already deleted) does not
    start the whole download again."""
    prefix = _bucket(tmp_path)
    m = model(revision="abc123")
    _fill(prefix, None)
    (prefix / WEIGHTS_OF).write_text(weights_id(m) + "\n")
    assert _list(tmp_path, m).returncode == 0
    assert (prefix / "model.safetensors").exists()


def test_a_marker_from_before_it_named_the_copy(tmp_path):
    """Stacks created before the marker named its copy (README upgrade note): `done` was written by
    a copy of the main branch with the same patterns; kept for an unpinned model only."""
    prefix = _bucket(tmp_path)
    _fill(prefix, LEGACY_MARKER)
    assert _list(tmp_path, model()).returncode == 0
    assert (prefix / "model.safetensors").exists()
    (prefix / WEIGHTS_COMPLETE).write_text(LEGACY_MARKER + "\n")
    assert _list(tmp_path, model(revision="abc123")).returncode == 0
    assert not (prefix / "model.safetensors").exists()


def test_the_upload_writes_the_copys_id_last():
    upload = _job(model())["containers"][0]["args"][0]
    assert upload.index("aws s3 sync") < upload.index(f'echo "$WEIGHTS_ID" | aws s3 cp - "s3://$BUCKET/$PREFIX/{WEIGHTS_COMPLETE}"')



def test_the_revision_reaches_what_downloads_the_weights():
    def args(**kw) -> list[str]:
        return engine_container(model(**kw), "src", None, None)[1]
    assert args(cache="pvc", revision="abc123")[-2:] == ["--revision", "abc123"]
    assert "--revision" not in args(revision="abc123")          # s3: the Job fetched that revision
    assert "--revision" not in args(cache="pvc")
    tgi = args(engine="tgi", cache="pvc", image="ghcr.io/huggingface/text-generation-inference:3.3.4", revision="v2")
    assert tgi[tgi.index("--revision") + 1] == "v2"


def test_models_sharing_a_prefix_must_copy_one_revision():
    """Two weights Jobs of one Hugging Face id at two revisions would each empty the other's copy."""
    doc = stack_doc("prod")["config"]
    models = doc["agentic-platform:models"]
    (i, s3), *_ = [(i, m) for i, m in enumerate(models) if m.get("cache") == "s3"]
    models.append({**s3, "name": "second-copy", "revision": "abc123"})
    raw = {k.split(":", 1)[1]: (v if isinstance(v, str) else json.dumps(v)) for k, v in doc.items()
           if k.startswith(NAMESPACE + ":")}
    with pytest.raises(ConfigError) as err:
        validate(raw, "prod")
    assert [p for p, _ in err.value.problems if p.endswith(".revision")] == [f"models[{len(models) - 1}].revision"]
