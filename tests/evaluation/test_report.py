"""write_report: JSON / Markdown / PNG files in the run directory, parseable and exact."""

import json

import numpy as np
import pytest

from rlaif_jax.evaluation.report import interval_plot, markdown_table, write_report


def test_markdown_table_exact():
    rows = [{"policy": "a|b", "win_rate": 0.71234, "n": 3}, {"policy": "c", "ci": None, "n": 4}]
    assert markdown_table(rows) == (
        "| policy | win_rate | n | ci |\n|---|---|---|---|\n| a\\|b | 0.7123 | 3 |  |\n| c |  | 4 |  |\n"
    )


def test_write_report_files(tmp_path):
    results = {"win_rate": np.float32(0.75), "wins": np.int64(3), "lc": float("nan"), "per_example": np.arange(3)}
    table = [{"comparison": "A vs B", "win_rate": 0.75}]
    plot = interval_plot(["raw", "lc"], [0.75, 0.6], [0.6, None], [0.9, None], ylabel="win rate")
    paths = write_report(str(tmp_path), "wr", results, table, plots={"ci": plot})
    assert paths == {
        "json": str(tmp_path / "wr.json"),
        "markdown": str(tmp_path / "wr.md"),
        "plot:ci": str(tmp_path / "wr_ci.png"),
    }
    content = json.loads((tmp_path / "wr.json").read_text())
    assert content == {
        "name": "wr",
        "results": {"win_rate": 0.75, "wins": 3, "lc": None, "per_example": [0, 1, 2]},
        "table": [{"comparison": "A vs B", "win_rate": 0.75}],
    }
    assert (tmp_path / "wr.md").read_text() == (
        "# wr\n\n| comparison | win_rate |\n|---|---|\n| A vs B | 0.7500 |\n"
        "\n## Results\n\n| key | value |\n|---|---|\n| win_rate | 0.7500 |\n| wins | 3 |\n| lc |  |\n"
    )
    from PIL import Image

    with Image.open(tmp_path / "wr_ci.png") as image:
        assert image.format == "PNG" and image.size == (600, 400)


def test_bad_names_and_values(tmp_path):
    with pytest.raises(ValueError, match="report/plot name 'a b'"):
        write_report(str(tmp_path), "a b", {}, [])
    with pytest.raises(TypeError, match=r"results.x = .* cannot be written as JSON"):
        write_report(str(tmp_path), "ok", {"x": object()}, [])
