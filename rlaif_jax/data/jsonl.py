"""Reading JSONL files whose every error names the file and line."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from etils import epath


def read_jsonl(path: str, required_fields: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows of a JSONL file, each a dict with at least `required_fields` as non-empty strings.

    Raises FileNotFoundError naming the path, or ValueError naming `path:line` and the field at fault.
    """
    if not epath.Path(path).is_file():  # a local path or a gs:// / s3:// URI
        raise FileNotFoundError(f"data file not found: {path}")
    rows = []
    with epath.Path(path).open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}:{line_number}: malformed JSON ({error.msg} at column {error.colno})"
                ) from error
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{line_number}: expected a JSON object, got {type(row).__name__}")
            for field in required_fields:
                if field not in row:
                    raise ValueError(f"{path}:{line_number}: missing column {field!r} (has {sorted(row)})")
                if not isinstance(row[field], str) or not row[field].strip():
                    raise ValueError(f"{path}:{line_number}: column {field!r} is empty or not a string")
            row["_source"] = f"{path}:{line_number}"
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def write_jsonl(rows: Sequence[dict[str, Any]], path: str) -> None:
    """Writes `rows` to `path` (local or a URI) atomically (`workdir.write_text_atomic`)."""
    from rlaif_jax.workdir import write_text_atomic

    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
