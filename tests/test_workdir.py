import glob
import json
import os

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from rlaif_jax import workdir as wd


def _config(lr=1e-3):
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict({"name": "tiny", "shape": (2, 3)})
    config.lr = lr
    config.steps = 10
    return config


def test_config_round_trip(tmp_path):
    path = wd.write_config(_config(), str(tmp_path / "run"))
    assert path == str(tmp_path / "run" / "config.json")
    with open(path) as f:
        text = f.read()
    assert json.loads(text) == {
        "lr": 1e-3,
        "model": {"name": "tiny", "shape": [2, 3]},
        "steps": 10,
    }
    assert text.index('"lr"') < text.index('"model"') < text.index('"steps"')
    assert ml_collections.ConfigDict(json.loads(text)).model.shape == [2, 3]


def test_changed_config_keeps_previous_when_unguarded(tmp_path):
    wd.write_config(_config(1e-3), str(tmp_path))
    wd.write_config(_config(1e-3), str(tmp_path))
    assert not glob.glob(str(tmp_path / "config.json.prev-*"))
    wd.write_config(_config(2e-3), str(tmp_path), guard=False)
    wd.write_config(_config(3e-3), str(tmp_path), guard=False)
    lrs = {
        name: json.loads((tmp_path / name).read_text())["lr"]
        for name in ("config.json", "config.json.prev-1", "config.json.prev-2")
    }
    assert lrs == {
        "config.json": 3e-3,
        "config.json.prev-1": 1e-3,
        "config.json.prev-2": 2e-3,
    }


def test_config_non_json_value_names_key(tmp_path):
    config = _config()
    config.model.init = object()
    with pytest.raises(TypeError, match=r"config\.model\.init"):
        wd.write_config(config, str(tmp_path))


def test_metrics_lines_with_step(tmp_path):
    with wd.MetricsWriter(str(tmp_path), tensorboard=False) as writer:
        writer.write(1, {"loss": jnp.float32(0.5), "n": np.int64(3), "lr": 0.1})
        # Flushed per line: readable before close.
        assert wd.read_metrics(str(tmp_path)) == [{"step": 1, "loss": 0.5, "n": 3, "lr": 0.1}]
        writer.write(jnp.int32(2), {"loss": jnp.array(0.25)})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [next(iter(json.loads(line))) for line in lines] == ["step", "step"]
    assert wd.read_metrics(str(tmp_path))[1] == {"step": 2, "loss": 0.25}


def test_resume_drops_later_steps(tmp_path):
    with wd.MetricsWriter(str(tmp_path), tensorboard=False) as writer:
        for step in range(1, 6):
            writer.write(step, {"loss": float(step)})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "lo')  # crashed mid-line
    with wd.MetricsWriter(str(tmp_path), tensorboard=False, resume_step=3) as writer:
        writer.write(4, {"loss": 40.0})
    assert [(r["step"], r["loss"]) for r in wd.read_metrics(str(tmp_path))] == [
        (1, 1.0),
        (2, 2.0),
        (3, 3.0),
        (4, 40.0),
    ]
    assert sorted(os.listdir(tmp_path)) == ["metrics.jsonl"]


def test_non_scalar_metric_names_key(tmp_path):
    with wd.MetricsWriter(str(tmp_path), tensorboard=False) as writer:
        with pytest.raises(ValueError, match=r"'logits'.*\(2, 3\)"):
            writer.write(1, {"loss": 1.0, "logits": jnp.zeros((2, 3))})
        with pytest.raises(ValueError, match="step"):
            writer.write(1.5, {"loss": 1.0})
    assert wd.read_metrics(str(tmp_path)) == []


def test_bad_json_line_names_file_and_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2"):
        wd.read_metrics(str(tmp_path))


def test_tensorboard_event_file(tmp_path):
    with wd.MetricsWriter(str(tmp_path)) as writer:
        writer.write(1, {"loss": 1.0})
    events = glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents.*"))
    assert events and os.path.getsize(events[0]) > 0


_WRITER = """
from __future__ import annotations
import contextlib, os, sys, tempfile
_UMASK = 0o022
{source}
path = sys.argv[1]
rows = open(path).read().splitlines(keepends=True) if os.path.exists(path) else []
for i in range(len(rows), len(rows) + 100000):
    rows.append('{{"row": %d, "pad": "%s"}}\\n' % (i, "x" * 200))
    text = "".join(rows)
    _write_atomic_here(path, lambda f: f.write(text.encode("utf-8")))
    print(i, flush=True)
"""


def test_kill_9_during_atomic_rewrites_never_loses_a_written_row(tmp_path):
    """20 writer processes killed with SIGKILL at random moments while they rewrite a growing JSONL file through
    `write_text_atomic` (as the torn-line repair does): every row confirmed written before a kill is still there,
    and the file always parses."""
    import inspect
    import json
    import signal
    import subprocess
    import sys
    import time

    from rlaif_jax import workdir

    helpers = (workdir.is_local, workdir._replacing, workdir._write_atomic_here)  # noqa: SLF001  (what process 0 runs)
    script = _WRITER.format(source="\n".join(inspect.getsource(helper) for helper in helpers))
    path = tmp_path / "rows.jsonl"
    rng = np.random.default_rng(0)
    confirmed = -1
    for _ in range(20):
        process = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
        first = process.stdout.readline()
        assert first, "the writer did not start"
        time.sleep(float(rng.uniform(0.0, 0.2)))
        process.send_signal(signal.SIGKILL)
        printed = [int(line) for line in [first, *process.communicate()[0].splitlines()] if line.strip()]
        assert process.returncode == -signal.SIGKILL
        confirmed = max(confirmed, printed[-1])
        rows = [json.loads(line) for line in path.read_text().splitlines()]  # parses: never a torn file
        assert [row["row"] for row in rows] == list(range(len(rows)))  # every row, in order
        assert len(rows) > confirmed  # nothing confirmed before the kill is lost


def test_write_atomic_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = str(tmp_path / "ref.npz")
    wd.write_atomic(path, lambda f: np.savez(f, x=np.arange(3)))
    with np.load(path) as saved:
        np.testing.assert_array_equal(saved["x"], np.arange(3))

    def fails_midway(f):
        f.write(b"PK partial")
        raise OSError("disk full (injected)")

    with pytest.raises(OSError, match="disk full"):
        wd.write_atomic(path, fails_midway)
    with np.load(path) as saved:  # the old file, whole
        np.testing.assert_array_equal(saved["x"], np.arange(3))
    assert os.listdir(tmp_path) == ["ref.npz"]  # no temp file left behind


def test_atomic_outputs_get_the_mode_open_would_give(tmp_path):
    path = str(tmp_path / "weights.bin")
    wd.write_atomic(path, lambda f: f.write(b"x"))
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # mkstemp alone would leave 0600


def test_open_append_appends_in_process_zero_and_drops_elsewhere(tmp_path, monkeypatch):
    from rlaif_jax import distributed

    path = str(tmp_path / "rows.jsonl")
    with wd.open_append(path) as out:
        out.write("a\n")
    with wd.open_append(path) as out:
        out.write("b\n")
    assert (tmp_path / "rows.jsonl").read_text() == "a\nb\n"
    monkeypatch.setattr(distributed, "is_writer", lambda: False)  # another process of a multi-process job
    with wd.open_append(path) as out:
        out.write("c\n")
    assert (tmp_path / "rows.jsonl").read_text() == "a\nb\n"
