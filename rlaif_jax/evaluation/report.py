"""Evaluation reports in the run directory: NAME.json (results + table), NAME.md (Markdown tables), NAME_*.png.

Plots are drawn on a bare matplotlib Figure with the Agg canvas (no pyplot, no global backend switch), and
matplotlib is imported only when a report has plots, so importing this module stays cheap.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rlaif_jax.workdir import makedirs, write_atomic, write_json, write_text_atomic

PlotFn = Callable[[Any], None]  # draws on a matplotlib Axes
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def jsonable(value: Any, key: str = "results") -> Any:
    """`value` with numpy scalars/arrays as python numbers/lists and NaN / inf as None (strict JSON);
    raises TypeError naming the dotted `key` of anything else that JSON cannot hold."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{key}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{key} = {value!r} ({type(value).__name__}) cannot be written as JSON")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A GitHub Markdown table of `rows` (columns: the union of their keys in first-seen order; floats to 4
    decimals, missing cells empty)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    if not columns:
        return ""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(
    workdir: str,
    name: str,
    results: Mapping[str, Any],
    table: Sequence[Mapping[str, Any]],
    plots: Mapping[str, PlotFn] | None = None,
) -> dict[str, str]:
    """Writes WORKDIR/NAME.json ({"name", "results", "table"}), WORKDIR/NAME.md (the table, then the scalar
    results as a key/value table) and one WORKDIR/NAME_PLOT.png per `plots` entry, drawn by `fn(ax)`.

    Returns {'json': path, 'markdown': path, 'plot:PLOT': path, ...}. Names may hold letters, digits, '_', '-', '.'.
    """
    for label in [name, *(plots or {})]:
        if not _NAME.match(label):
            raise ValueError(f"report/plot name {label!r} must match {_NAME.pattern}")
    rows = jsonable(list(table), "table")
    if not all(isinstance(row, dict) for row in rows):
        raise TypeError("table must be a list of dicts (one per row)")
    content = {"name": name, "results": jsonable(dict(results)), "table": rows}
    makedirs(workdir)
    paths = {"json": os.path.join(workdir, f"{name}.json"), "markdown": os.path.join(workdir, f"{name}.md")}
    write_json(workdir, f"{name}.json", content)  # NaN / inf already None: strict JSON
    scalars = [
        {"key": key, "value": value}
        for key, value in content["results"].items()
        if value is None or isinstance(value, (bool, int, float, str))
    ]
    markdown = f"# {name}\n\n{markdown_table(rows)}"
    if scalars:
        markdown += f"\n## Results\n\n{markdown_table(scalars)}"
    write_text_atomic(paths["markdown"], markdown)
    for plot_name, draw in (plots or {}).items():
        paths[f"plot:{plot_name}"] = save_plot(os.path.join(workdir, f"{name}_{plot_name}.png"), draw)
    return paths


def save_plot(path: str, draw: PlotFn) -> str:
    """Draws `draw(ax)` on a bare 6x4 Agg figure and saves it as the PNG `path`; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(figure)
    draw(figure.add_subplot())
    figure.tight_layout()
    write_atomic(path, lambda f: figure.savefig(f, format="png"))
    return path


def interval_plot(
    labels: Sequence[str],
    values: Sequence[float],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    *,
    ylabel: str,
    reference: float | None = 0.5,
    title: str = "",
) -> PlotFn:
    """A plot function for `write_report`: one bar per label (a rate in [0, 1]) with its CI as an error bar (a
    missing bound draws none) and a dashed line at `reference` (e.g. 0.5, no preference)."""
    values = np.asarray(values, np.float64)
    low = np.array([0.0 if lo is None else v - lo for v, lo in zip(values, lows)], np.float64)
    high = np.array([0.0 if hi is None else hi - v for v, hi in zip(values, highs)], np.float64)

    def draw(ax) -> None:
        positions = np.arange(len(labels))
        ax.bar(positions, values, yerr=np.stack([low, high]), capsize=6, color="tab:blue", alpha=0.8)
        ax.set_xticks(positions, list(labels))
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1)
        if reference is not None:
            ax.axhline(reference, color="grey", linestyle="--", linewidth=1)
        if title:
            ax.set_title(title)

    return draw
