"""A workdir on an object store (`gs://`): every run-directory file goes through `etils.epath`. Here `gs://` is an
in-memory fsspec filesystem registered under the protocol epath's fsspec backend asks for, so the library's code
paths are the ones a real bucket takes (epath -> fsspec), without a network. Orbax writes checkpoints to a URI
itself (through tensorstore's own GCS driver), which this cannot stand in for: no test here trains."""

import json
import os
import uuid

import fsspec
import jax
import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from rlaif_jax import config_defaults, models, pipelines, rerun_guard
from rlaif_jax import workdir as wd
from rlaif_jax.models.byte_tokenizer import byte_tokenizer


class _FakeBucket(MemoryFileSystem):
    """`gs://bucket/key` -> `bucket/key` in a store of its own (not `memory://`'s)."""

    protocol = ("gs", "gcs")
    store: dict = {}
    pseudo_dirs: list = [""]
    root_marker = ""

    @classmethod
    def _strip_protocol(cls, path):
        path = str(path)
        for prefix in ("gs://", "gcs://"):
            if path.startswith(prefix):
                path = path[len(prefix) :]
        return path.rstrip("/")


@pytest.fixture
def bucket(monkeypatch, tmp_path):
    """A fresh `gs://` prefix of the fake bucket; the test runs in an empty local directory, which must stay empty
    (a URI mistaken for a local path would create `gs:/...` there)."""
    for protocol in ("gs", "gcs"):
        fsspec.register_implementation(protocol, _FakeBucket, clobber=True)
    monkeypatch.chdir(tmp_path)
    yield f"gs://bucket/{uuid.uuid4().hex}"
    assert list(tmp_path.iterdir()) == []


def _objects(prefix: str) -> set[str]:
    start = prefix[len("gs://") :] + "/"
    return {key[len(start) :] for key in _FakeBucket.store if key.startswith(start)}


def _text(uri: str) -> str:
    return wd.path(uri).read_text()


def test_run_directory_files_on_a_gs_uri(bucket, monkeypatch):
    config = config_defaults.load_config_file("generate", "tiny")
    assert wd.write_config(config, bucket) == f"{bucket}/config.json"
    assert json.loads(_text(f"{bucket}/config.json"))["seed"] == config.seed
    config.batch_size += 1  # an extending key? No: results-changing -> the guard refuses, nothing written
    with pytest.raises(rerun_guard.ConfigChangedError, match="batch_size"):
        wd.write_config(config, bucket)
    wd.write_config(config, bucket, guard=False)  # the old config kept beside it, as locally
    assert {"config.json", "config.json.prev-1"} <= _objects(bucket)

    monkeypatch.setattr(wd, "OBJECT_FLUSH_SECONDS", 0.0)  # upload at every flush
    with wd.MetricsWriter(bucket) as writer:  # TensorBoard too: its event file goes through epath
        for step in (1, 2, 3):
            writer.write(step, {"loss": 1.0 / step})
        assert [r["step"] for r in wd.read_metrics(bucket)] == [1, 2, 3]  # flushed at each write, not only at close
    with wd.MetricsWriter(bucket, resume_step=2) as writer:  # a resumed run drops the lines after its checkpoint
        writer.write(3, {"loss": 0.25})
    assert [(r["step"], r["loss"]) for r in wd.read_metrics(bucket)] == [(1, 1.0), (2, 0.5), (3, 0.25)]
    events = [name for name in _objects(bucket) if name.startswith("tensorboard/events.out.tfevents.")]
    assert events and all(b"loss" in wd.path(bucket, name).read_bytes() for name in events)

    assert wd.cached_json(f"{bucket}/eval.json", lambda: {"score": 1}) == {"score": 1}
    assert wd.cached_json(f"{bucket}/eval.json", lambda: pytest.fail("recomputed")) == {"score": 1}
    with wd.open_append(f"{bucket}/rows.jsonl") as out:
        out.write('{"row": 0}\n')
        out.flush()
        assert _text(f"{bucket}/rows.jsonl") == '{"row": 0}\n'  # what was flushed is there before close
    monkeypatch.setattr(wd, "OBJECT_FLUSH_SECONDS", 3600.0)  # now at most one upload an hour, and at close
    with wd.open_append(f"{bucket}/rows.jsonl") as out:  # appending again keeps what was there
        out.write('{"row": 1}\n')
        out.flush()  # the first flush of a writer uploads ...
        out.write('{"row": 2}\n')
        out.flush()  # ... a second one within the interval does not
        assert _text(f"{bucket}/rows.jsonl").splitlines() == ['{"row": 0}', '{"row": 1}']
    assert _text(f"{bucket}/rows.jsonl").splitlines() == ['{"row": 0}', '{"row": 1}', '{"row": 2}']
    assert wd.absolute(bucket) == bucket  # never CWD/gs:/...
    with pytest.raises(ValueError, match="object store"):
        rerun_guard.replace_workdir(bucket)


def test_generate_job_writes_and_resumes_in_a_gs_workdir(bucket):
    config = config_defaults.load_config_file("generate", "tiny")
    config.sampling.max_new_tokens = 4
    path = pipelines.run(config, bucket)
    assert path == f"{bucket}/generations.jsonl"
    rows = [json.loads(line) for line in _text(path).splitlines()]
    assert [row["prompt_index"] for row in rows] == [0, 1, 2]
    assert {"config.json", "generations.jsonl", "metrics.jsonl"} <= _objects(bucket)
    pipelines.run(config, bucket)  # everything answered: nothing appended
    assert _text(path).splitlines() == [json.dumps(row, ensure_ascii=False) for row in rows]


def test_save_hf_to_gs_and_load_it_back(bucket, make_tiny_lm, record_diff, monkeypatch, tmp_path_factory):
    cache_home = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    lm = make_tiny_lm(seed=1)
    lm = lm.replace(tokenizer=byte_tokenizer())
    models.save_hf(lm, f"{bucket}/hf_model")
    assert {"config.json", "model.safetensors"} <= {name.split("/")[-1] for name in _objects(f"{bucket}/hf_model")}
    loaded = models.load(f"{bucket}/hf_model")
    tokens = np.asarray([[5, 17, 99, 3]], np.int32)
    want = lm.module.apply({"params": lm.params}, tokens)
    got = loaded.module.apply({"params": loaded.params}, tokens)
    assert loaded.tokenizer is not None
    wd.path(bucket, "hf_model", "stale.safetensors").write_bytes(b"old")  # a file the next load must drop ...
    local = models.loading._resolve(f"{bucket}/hf_model")
    assert os.path.exists(os.path.join(local, "stale.safetensors")) and str(cache_home) in local
    wd.path(bucket, "hf_model", "stale.safetensors").unlink()
    assert not os.path.exists(os.path.join(models.loading._resolve(f"{bucket}/hf_model"), "stale.safetensors"))
    diff = record_diff("logits |loaded from gs:// - saved|", float(jax.numpy.abs(got - want).max()), 1e-6)
    assert diff <= 1e-6


def test_a_failing_writer_leaves_the_old_object(bucket):
    wd.write_text_atomic(f"{bucket}/table.md", "old\n")

    def fail_midway(f):
        f.write(b"half of the new")
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        wd.write_atomic(f"{bucket}/table.md", fail_midway)
    assert _text(f"{bucket}/table.md") == "old\n"


def test_loading_a_missing_remote_model_names_it(bucket):
    with pytest.raises(FileNotFoundError, match=f"no model at '{bucket}/hf_model'"):
        models.load(f"{bucket}/hf_model")
