"""Per-iteration tables that fit: at 80 columns, in a job log, in a file.

The rows are those of ``summary.json`` (``iteration``, ``labeled``, ``dev.<task>``,
``test.<task>``, ``selected``, ``cost``; with ``al.stopping`` also ``stop.<task>``, the
criterion's value, and ``stopped``, the tasks no longer annotated); they keep their full
names there and in MLflow.
On screen a column gets a short two-line header (``dev`` over ``sf``), numbers are never
cut (scores with 4 decimals, costs with at most 1), and a table too wide for the console
is transposed (one row per column, one column per iteration), in several blocks of
iterations when even that is too wide. Rich is imported only when a table is rendered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_value", "render_rounds", "short_header"]

#: Short names of the summary's plain columns (the per-task ones read ``split`` / ``task``).
SHORT = {
    "iteration": "it",
    "labeled": "labeled",
    "selected": "sel",
    "cost": "cost",
    "cost_annotated": "cost\ngiven",  # on the labels given (summary.json rows)
    "stopped": "stopped\ntasks",  # al.stopping: the tasks no longer annotated
}


def short_header(name: str) -> str:
    """``dev.sf`` -> ``dev\\nsf`` (two lines); ``iteration`` -> ``it``."""
    if name in SHORT:
        return SHORT[name]
    split, dot, rest = name.partition(".")
    return f"{split}\n{rest}" if dot else name


def format_value(name: str, value: Any) -> str:
    """A cell: scores with 4 decimals, costs with at most 1, ``-`` for missing."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if name in ("cost", "cost_annotated") or abs(value) >= 100:
            return f"{value:.0f}" if value == int(value) else f"{value:.1f}"
        return f"{value:.4f}"
    return str(value)


def _width(cells: Sequence[str]) -> int:
    return max((len(part) for cell in cells for part in cell.split("\n")), default=1)


def _table_width(columns: Sequence[Sequence[str]]) -> int:
    """Width of a rich table with the default box: content + 2 padding + 1 border each."""
    return sum(_width(col) + 3 for col in columns) + 1


def render_rounds(
    rows: Sequence[dict[str, Any]], *, title: str | None = None, width: int = 80
) -> list[Any]:
    """Rich tables of per-iteration ``rows`` that fit in ``width`` columns."""
    from rich.table import Table

    if not rows:
        return []
    names = list(rows[0])
    for row in rows[1:]:
        names += [n for n in row if n not in names]
    cells = [[format_value(n, row.get(n)) for row in rows] for n in names]
    headers = [short_header(n) for n in names]
    if _table_width([[h, *c] for h, c in zip(headers, cells, strict=True)]) <= width:
        table = Table(title=title, title_justify="left")
        for header in headers:
            table.add_column(header, justify="right", no_wrap=True)
        for i in range(len(rows)):
            table.add_row(*[col[i] for col in cells])
        return [table]
    # transposed: one row per column, one column per iteration (in blocks if needed)
    labels = [n for n in names if n != "iteration"]
    label_width = max(len(n) for n in labels)
    iterations = [format_value("iteration", row.get("iteration", i)) for i, row in enumerate(rows)]
    value_width = max(_width(c) for n, c in zip(names, cells, strict=True) if n != "iteration")
    per_block = max(1, (width - (label_width + 3) - 1) // (max(value_width, 2) + 3))
    tables = []
    for start in range(0, len(rows), per_block):
        block = range(start, min(start + per_block, len(rows)))
        part = f" (iterations {iterations[block[0]]}-{iterations[block[-1]]})"
        suffix = part if len(rows) > per_block else ""
        table = Table(title=f"{title or ''}{suffix}" or None, title_justify="left")
        table.add_column("iteration", no_wrap=True)
        for i in block:
            table.add_column(iterations[i], justify="right", no_wrap=True)
        for name, col in zip(names, cells, strict=True):
            if name != "iteration":
                table.add_row(name, *[col[i] for i in block])
        tables.append(table)
    return tables
