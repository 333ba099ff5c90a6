"""Every notebook in colabs/ runs top to bottom (code cells in order, few steps) and prints its table (the last
Markdown table it prints: the quickstart's method table, the RLAIF chain report's win-rate table)."""

import contextlib
import io
import json
import os

import pytest

COLABS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "colabs")
NOTEBOOKS = sorted(name for name in os.listdir(COLABS) if name.endswith(".ipynb"))


def test_there_is_a_notebook():
    assert NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_smoke_mode(name, tmp_path, monkeypatch):
    with open(os.path.join(COLABS, name), encoding="utf-8") as f:
        notebook = json.load(f)
    assert notebook["nbformat"] == 4
    cells = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert all(not source.lstrip().startswith(("!", "%")) for source in cells), "shell magics do not run here"
    monkeypatch.setenv("RLAIF_COLAB_SMOKE", "1")
    monkeypatch.setenv("RLAIF_COLAB_WORKDIR", str(tmp_path))
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for index, source in enumerate(cells):
            exec(compile(source, f"{name}[cell {index}]", "exec"), namespace)
    lines = printed.getvalue().strip().splitlines()
    header = [i for i, line in enumerate(lines[:-1]) if line.startswith("|") and lines[i + 1].startswith("|---")]
    assert header, f"{name} printed no table"
    table = lines[header[-1] :]
    table = table[: next((i for i, line in enumerate(table) if not line.startswith("|")), len(table))]
    assert len(table) >= 3 and all(line.endswith("|") for line in table), table
    assert not any("n/a" in line for line in table), table  # every figure of the table was measured
