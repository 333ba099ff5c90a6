"""The run directory of one experiment: config.json, metrics.jsonl, tensorboard/.

With several processes, process 0 alone writes (`distributed.is_writer`); every process calls the same writers,
which wait for all of them before and after the write (`distributed.barrier`), so every process sees the same files
at the same point of the job: a file one checks for cannot appear until every process has checked.

A workdir is a local path or any URI `etils.epath` reads (`gs://bucket/run`, `s3://...`): the library reads and writes
its run directories through this module's helpers (`path`, `exists`, `read_text`, the writers below). On an object
store an object appears whole when uploaded (so writes are atomic without a rename) and an appended file (metrics,
TensorBoard events, JSONL outputs) is rewritten whole at most every `OBJECT_FLUSH_SECONDS` and at close, as object
stores have no append. Orbax writes checkpoints to such a URI itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

import jax
import ml_collections
import numpy as np
from etils import epath

from rlaif_jax import distributed

if TYPE_CHECKING:
    from typing import Self

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"

Scalar = float | int | np.ndarray | np.generic | jax.Array


def path(name: str | os.PathLike, *parts: str) -> epath.Path:
    """`name` (joined with `parts`) as an `epath.Path`: a local path or a `gs://` / `s3://` URI, with one
    pathlib-like API for both."""
    return epath.Path(name).joinpath(*parts)


def is_local(name: str | os.PathLike) -> bool:
    """Whether `name` is a path on this machine's file system (not a `scheme://` URI)."""
    return "://" not in os.fspath(name)


def absolute(name: str | os.PathLike) -> str:
    """`name` made absolute if local; a URI as it is (`os.path.abspath` would turn `gs://b` into `CWD/gs:/b`)."""
    return os.path.abspath(name) if is_local(name) else os.fspath(name)


def exists(name: str | os.PathLike) -> bool:
    """Whether a file or directory `name` exists (local or URI)."""
    return path(name).exists()


def read_text(name: str | os.PathLike) -> str:
    """The UTF-8 text of file `name` (local or URI)."""
    return path(name).read_text(encoding="utf-8")


def makedirs(name: str | os.PathLike) -> None:
    """Creates directory `name` and its parents if missing (a no-op on object stores, which have no directories)."""
    path(name).mkdir(parents=True, exist_ok=True)


def config_to_json(config: ml_collections.ConfigDict) -> str:
    """Returns the resolved `config` as JSON text: sorted keys, indent 2, final newline.

    Tuples become lists, numpy scalars/arrays become python numbers/lists and dtypes
    their names; any other non-JSON value raises a TypeError naming its dotted key.
    """
    return json.dumps(_jsonable(config.to_dict(), "config"), sort_keys=True, indent=2) + "\n"


def _jsonable(value: Any, key: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    raise TypeError(f"{key} = {value!r} ({type(value).__name__}) cannot be written as JSON")


def write_config(config: ml_collections.ConfigDict, workdir: str, *, guard: bool = True) -> str:
    """Writes `workdir/config.json` (creating `workdir`) and returns its path.

    With `guard` (every job), a `config.json` already there is the config of an earlier run in this workdir: if the
    new config changes a results-changing key, `rerun_guard.ConfigChangedError` lists every such key and nothing
    is written. A config that differs only in keys that extend the run (`rerun_guard.EXTENDING_KEYS`), or any
    change with `guard=False`, keeps the old file as `config.json.prev-N` (N one past the highest existing N)
    before the new one is written, so no config a run was started with is ever lost.
    """
    from rlaif_jax import rerun_guard

    config_path = os.path.join(workdir, CONFIG_FILE)
    text = config_to_json(config)
    if exists(config_path):
        if read_text(config_path) == text:
            return config_path
        if guard:
            rerun_guard.check_workdir(json.loads(text), workdir)
        with one_writer(config_path + ".prev") as writing:
            if writing:
                path(config_path).rename(f"{config_path}.prev-{_next_prev_index(workdir)}")
    makedirs(workdir)
    write_text_atomic(config_path, text)
    return config_path


def _next_prev_index(workdir: str) -> int:
    prefix = CONFIG_FILE + ".prev-"
    taken = [
        int(name[len(prefix) :])
        for name in (entry.name for entry in path(workdir).iterdir())
        if name.startswith(prefix) and name[len(prefix) :].isdigit()
    ]
    return max(taken, default=0) + 1


_UMASK = os.umask(0o022)  # read the process umask (os.umask sets and returns it) ...
os.umask(_UMASK)  # ... and put it back


@contextlib.contextmanager
def one_writer(path: str):
    """Every process enters it together. Yields whether this process writes `path` (process 0), between two
    barriers every process joins: no process still deciding from the old file when it changes, none reading
    before it is written."""
    distributed.barrier(f"before writing {path}")
    yield distributed.is_writer()
    distributed.barrier(f"after writing {path}")


@contextlib.contextmanager
def _replacing(path: str):
    """Yields (fd, name) of a uniquely named temp file beside `path`; renames it over `path` when the block ends,
    deletes it if the block raised."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=os.path.basename(path) + ".tmp-")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; an output gets the mode open() would give it
        yield fd, tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomic(path: str, write_to: Callable[[BinaryIO], Any]) -> None:
    """Writes a file with `write_to(binary_file)` so that a reader (or a run killed mid-write) sees the old `path`
    or the new one, never a part: a uniquely named temp file in the same directory, fsync, then rename over `path`
    (on an object store: the bytes are built in memory, then uploaded as one object). Every output of the library
    (text, JSONL, .npz, .png, .safetensors) is written through it; with several processes every one calls it and
    process 0 writes (`write_to` runs there only)."""
    with one_writer(path) as writing:
        if writing:
            _write_atomic_here(path, write_to)


def _write_atomic_here(path: str, write_to: Callable[[BinaryIO], Any]) -> None:
    """`write_atomic` in this process alone (no barriers): for a writer already inside `_one_writer`."""
    if not is_local(path):  # an object store publishes an object whole; a writer that fails uploads nothing
        buffer = io.BytesIO()
        write_to(buffer)
        _epath(path).write_bytes(buffer.getvalue())
        return
    with _replacing(path) as (fd, _), os.fdopen(fd, "wb") as f:
        write_to(f)
        f.flush()
        os.fsync(f.fileno())


def write_path_atomic(path: str, write_to_path: Callable[[str], Any]) -> None:
    """`write_atomic` for writers that take a file name (safetensors' `save_file`): `write_to_path(temp_name)`
    writes the whole temp file, which is then fsynced and renamed over `path`."""
    with one_writer(path) as writing:
        if not writing:
            return
        if not is_local(path):  # the writer needs a local file: write one, then upload it
            with tempfile.TemporaryDirectory() as local_dir:
                local = os.path.join(local_dir, os.path.basename(path))
                write_to_path(local)
                upload(local, path)
            return
        with _replacing(path) as (fd, tmp):
            os.close(fd)
            write_to_path(tmp)
            sync_fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(sync_fd)
            finally:
                os.close(sync_fd)


def write_text_atomic(path: str, text: str) -> None:
    """Writes UTF-8 `text` to `path` atomically (`write_atomic`)."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """Reads `workdir/metrics.jsonl` back as one dict per line, in file order.

    An unterminated last line (a writer caught mid-line) is skipped if it is not
    JSON; any other bad line raises a ValueError naming the file and line number.
    """
    return _parse_metrics(os.path.join(workdir, METRICS_FILE))


def _parse_metrics(path: str) -> list[dict[str, Any]]:
    lines = read_text(path).split("\n")
    # split() leaves "" after a trailing newline, else the unterminated last line.
    last = len(lines)
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if lineno == last:
                break
            raise ValueError(f"{path}:{lineno}: not a JSON line ({e}): {line[:200]!r}") from e
        if not isinstance(record, dict) or "step" not in record:
            raise ValueError(f"{path}:{lineno}: expected a JSON object with a 'step' key")
        records.append(record)
    return records


def truncate_metrics(workdir: str, step: int) -> None:
    """Atomically rewrites `workdir/metrics.jsonl` keeping lines with step <= `step`.

    A missing file is left missing.
    """
    path = os.path.join(workdir, METRICS_FILE)
    if not exists(path):
        return
    kept = [r for r in _parse_metrics(path) if r["step"] <= step]
    text = "".join(json.dumps(r) + "\n" for r in kept)
    _write_atomic_here(path, lambda f: f.write(text.encode("utf-8")))


def _to_scalar(key: str, value: Scalar) -> int | float:
    array = np.asarray(value)
    if array.shape != ():
        raise ValueError(f"metric {key!r} must be a scalar, got shape {array.shape}")
    if array.dtype.kind in "biu":
        return int(array)
    if array.dtype.kind == "f":
        return float(array)
    raise ValueError(f"metric {key!r} must be a real number, got dtype {array.dtype}")


def _to_step(step: int | np.integer | np.ndarray | jax.Array) -> int:
    array = np.asarray(step)
    if array.shape != () or array.dtype.kind not in "iu":
        raise ValueError(f"step must be an integer scalar, got {array.dtype} of shape {array.shape}")
    return int(array)


class MetricsWriter:
    """Appends scalar metrics to `workdir/metrics.jsonl` and `workdir/tensorboard/`.

    Use as a context manager or call `close()`. With `resume_step=k` the lines a
    crashed run wrote after step k are dropped first (and hidden in TensorBoard), so
    a rerun from the checkpoint at step k does not duplicate steps. With several
    processes only process 0 writes; the others check their metrics the same way.
    """

    def __init__(self, workdir: str, *, tensorboard: bool = True, resume_step: int | None = None):
        """Opens both writers, creating `workdir`; `resume_step` truncates as above."""
        makedirs(workdir)
        self.path = os.path.join(workdir, METRICS_FILE)
        self._closed = False
        self._file = self._tb = None
        with one_writer(self.path) as writing:
            if not writing:
                return
            if resume_step is not None:
                truncate_metrics(workdir, resume_step)
            self._file = open_append(self.path)
        if tensorboard:
            from tensorboardX import SummaryWriter

            if not is_local(workdir):
                _route_tensorboard_through_epath(workdir)
            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(logdir=os.path.join(workdir, TENSORBOARD_DIR), purge_step=purge)

    def write(self, step: int, metrics: Mapping[str, Scalar]) -> None:
        """Writes `{"step": step, **metrics}` as a flushed JSON line and to TensorBoard.

        Each metric must be a python number or an array of shape (); anything else
        raises a ValueError naming the key and its shape.
        """
        if self._closed:
            raise ValueError(f"{self.path}: write() after close()")
        if "step" in metrics:
            raise ValueError(f"{self.path}: 'step' is reserved; pass it as the step argument")
        record: dict[str, int | float] = {"step": _to_step(step)}
        record.update((str(k), _to_scalar(str(k), v)) for k, v in metrics.items())
        if self._file is None:  # not the writing process
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step":
                    self._tb.add_scalar(key, value, global_step=record["step"])

    def close(self) -> None:
        """Flushes and closes both writers; calling it again is a no-op."""
        self._closed = True
        if self._file is not None:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_json(workdir: str, name: str, value: Any) -> str:
    """Writes `value` as `workdir/name` (indented JSON, atomically); returns the path."""
    makedirs(workdir)
    path = os.path.join(workdir, name)
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")
    return path


def cached_json(path: str, compute: Callable[[], Any]) -> Any:
    """The JSON value at `path` if the file exists, else `compute()`, written there first (so a re-run reuses it)."""
    if exists(path):
        return json.loads(read_text(path))
    value = compute()
    write_json(os.path.dirname(path), os.path.basename(path), value)
    return value


OBJECT_FLUSH_SECONDS = 10.0  # an appended object is re-uploaded whole at most this often (and at close)


def open_append(name: str) -> TextIO | _RewrittenObject:
    """A UTF-8 text file opened for appending at `name`. Locally the file itself (created if missing), every `flush`
    on disk; on an object store (no append there) the old content is read and the whole object re-uploaded at a
    `flush` at most every `OBJECT_FLUSH_SECONDS` (each upload is the whole object: uploading at every step would
    cost quadratic bytes and meet the stores' per-object write-rate limits) and at `close`. With several processes
    only process 0 appends (every process computes the same rows); the others get a sink that drops what they
    write."""
    if not distributed.is_writer():
        return io.StringIO()  # written to, never read: the rows are process 0's to write
    if is_local(name):
        return open(name, "a", encoding="utf-8")  # noqa: SIM115
    return _RewrittenObject(name, path(name).read_bytes() if exists(name) else b"")


class _RewrittenObject:
    """A file appended to on an object store: its bytes in memory (`initial` first), the object rewritten whole at a
    flush at most every `OBJECT_FLUSH_SECONDS`, and at close. Takes text (UTF-8, `open_append`) or bytes
    (TensorBoard events). No `fileno`: tensorboardX fsyncs whatever has one."""

    def __init__(self, name: str, initial: bytes = b""):
        self.name = name
        self._data = bytearray(initial)
        self._closed = False
        self._uploaded_at = -float("inf")

    def write(self, data: str | bytes) -> int:
        self._data += data.encode("utf-8") if isinstance(data, str) else data
        return len(data)

    def flush(self, *, force: bool = False) -> None:
        if not self._closed and (force or time.monotonic() - self._uploaded_at >= OBJECT_FLUSH_SECONDS):
            _epath(self.name).write_bytes(bytes(self._data))
            self._uploaded_at = time.monotonic()

    def close(self) -> None:
        if not self._closed:
            self.flush(force=True)
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _EpathEventWriters:
    """tensorboardX's writer factory for a URI scheme (its `register_writer_factory` protocol)."""

    def open(self, name: str) -> _RewrittenObject:
        return _RewrittenObject(name)

    def directory_check(self, name: str) -> None:
        makedirs(name)


def _route_tensorboard_through_epath(workdir: str) -> None:
    """Makes tensorboardX write event files under `workdir`'s URI scheme through epath, like every other file of
    the run (tensorboardX's own `gs` writer needs google-cloud-storage; this one goes wherever epath goes). The
    registration is tensorboardX's process-wide table: it stays for the rest of the process."""
    from tensorboardX import record_writer

    record_writer.register_writer_factory(os.fspath(workdir).split("://", 1)[0], _EpathEventWriters())


def upload(local_file: str, name: str) -> None:
    """Copies the finished local file `local_file` to `name` (a URI or a local path), streaming, in this process
    alone (no barriers: for a writer already inside `one_writer`)."""
    with open(local_file, "rb") as source, _epath(name).open("wb") as target:
        shutil.copyfileobj(source, target, 1 << 24)


def _epath(name: str) -> epath.Path:
    """`path(name)`, its parent directory created first (needed on local disks; free on object stores)."""
    target = path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target
