"""The per-iteration summary table fits 80 columns and files (issue 20)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from mtal_ray.cli.run import _print_summary
from mtal_ray.cli.tables import format_value, render_rounds, short_header
from mtal_ray.driver.callbacks import Summary


def _rows(n: int, tasks: list[str]) -> list[dict]:
    rows = []
    for i in range(n):
        row: dict = {"iteration": i, "labeled": 40 * (i + 1)}
        row.update({f"{s}.{t}": 0.123456 + i / 100 for s in ("dev", "test") for t in tasks})
        row.update(selected=40 if i < n - 1 else None, cost=901.0042 if i < n - 1 else None)
        rows.append(row)
    return rows


def _render(rows: list[dict], width: int = 80) -> str:
    console = Console(width=width, file=io.StringIO())
    for table in render_rounds(rows, title="mtal_ray: /runs/quickstart", width=width):
        console.print(table)
    return console.file.getvalue()


def test_short_headers_and_uncut_numbers() -> None:
    assert short_header("dev.sf") == "dev\nsf" and short_header("iteration") == "it"
    assert format_value("cost", 901.0042) == "901.0" and format_value("dev.sf", 0.5) == "0.5000"
    assert format_value("cost", None) == "-" and format_value("labeled", 80) == "80"
    assert format_value("cost_annotated", 42.0) == "42"


def test_two_tasks_fit_80_columns_without_ellipses() -> None:
    text = _render(_rows(3, ["sf", "id"]))
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines), text
    assert "…" not in text
    assert "0.1435" in text and "901.0" in text  # row 2's scores, the cost, whole
    assert any(line.split("┃")[1:3] == ["    ", "         "] for line in lines)  # 2-line header


def test_many_tasks_are_transposed_and_still_fit() -> None:
    text = _render(_rows(12, ["dp", "ner", "re", "sf", "id"]))
    assert all(len(line.rstrip()) <= 80 for line in text.splitlines()), text
    assert "…" not in text
    assert "test.ner" in text  # full names as row labels
    assert "(iterations 0-" in text  # split into blocks of iterations


def test_print_summary_in_a_narrow_console(monkeypatch, tmp_path: Path) -> None:
    out = io.StringIO()
    monkeypatch.setattr("rich.console.Console", lambda: Console(width=80, file=out))
    rows = _rows(3, ["sf", "id"])
    summary = Summary(str(tmp_path), "finished", "finished 3 iterations", rows, "abc")
    _print_summary(summary)
    text = out.getvalue()
    assert "…" not in text and "finished 3 iterations" in text and "MLflow run abc" in text
    assert all(len(line.rstrip()) <= 80 for line in text.splitlines())
    assert json.loads(json.dumps(summary.rows))[0]["dev.sf"] == rows[0]["dev.sf"]  # full names
