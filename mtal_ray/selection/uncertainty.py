"""How a sentence's uncertainty adds up over its positions: mean (the paper) or total.

The paper's EC (eq. 2) *averages* the normalized entropies of a sentence's positions (its
words for tagging, its dependents for parsing, its candidate entity pairs for relations),
so one unsure word in a 3-word query weighs as much as a whole unsure 30-word sentence.
On ATIS our validity study found the MT methods' first selections were short queries with
few slots (benchmarks/README.md, "Where round 1's deficit comes from").

``total`` ranks by the *sum* instead (Settles & Craven's total token entropy): a sentence's
uncertainty is its mean normalized entropy times its number of positions. To stay a
confidence in [0, 1] it is divided by the largest number of positions in the pool:

    EC_total(x) = 1 − (1 − EC(x)) · m(x) / max_x' m(x')

which orders the pool exactly as the total entropy does. Sentence-level tasks (intents)
have one position, so their EC is unchanged. The scale is per task, so methods that compare
ranks (MT-RRF, MT-IND, MT-PAR without weights) combine the tasks as before; methods that
average, weigh or take the extreme of raw confidences (MT-AVG, MT-MAX, MT-MIN, a weighted
MT-PAR) see the token tasks' values pulled towards 1 by the division; so does a BLP, whose
objective adds Σ(1 − EC) over tasks: under ``total`` a sentence-level task's (1 − EC) is
large beside a token task's scaled one, and the knapsack buys more sentences for it (300
ATIS-like rows, budget 500, BLP-UDJS: 15 intent-only picks against 2 with ``mean``). The
study's ``budget-length`` pair therefore uses RRF, whose ranks are scale-free. Dropout agreement
(DA) is not an entropy and is left alone, so the DA methods refuse ``total``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import NDArray

from mtal_ray.errors import SelectionError
from mtal_ray.selection.table import ConfidenceTable

__all__ = ["AGGREGATES", "check_method", "position_counts", "total_uncertainty", "with_aggregate"]

#: The values of ``selection.uncertainty``.
AGGREGATES = ("mean", "total")


def position_counts(table: ConfidenceTable, task: str) -> NDArray[np.float64] | None:
    """How many positions the EC of ``task`` averaged over per sentence (None: one each).

    Words (``n_tokens``) for tagging and parsing, scored entity pairs (``<task>.n_pairs``)
    for relations, none for sentence-level tasks.
    """
    from mtal_ray.errors import MtalError
    from mtal_ray.taskspec import task_spec

    try:
        kind = task_spec(task).kind
    except MtalError as err:
        raise SelectionError(
            f"{table.source}: selection.uncertainty=total needs to know what the positions of "
            f"{task!r} are ({err})"
        ) from None
    if kind == "sentence":
        return None
    name = f"{task}.n_pairs" if kind == "relation" else "n_tokens"
    if not table.has(name):
        raise SelectionError(
            f"{table.source}: selection.uncertainty=total needs the {name!r} column for "
            f"{task!r} (how many positions its EC averages over)"
        )
    return table.column(name)


def total_uncertainty(table: ConfidenceTable) -> ConfidenceTable:
    """The table with each task's EC turned into the total-entropy confidence above."""
    columns = dict(table.columns)
    for task in table.tasks:
        counts = position_counts(table, task)
        if counts is None:
            continue
        largest = float(counts.max()) if counts.size else 0.0
        if largest <= 0:
            continue  # no sentence has a scored position: every EC is 1 already
        ec = table.column(f"{task}.ec")
        columns[f"{task}.ec"] = 1.0 - (1.0 - ec) * (counts / largest)
    return dataclasses.replace(table, columns=columns)


def with_aggregate(table: ConfidenceTable, uncertainty: str) -> ConfidenceTable:
    """``table`` as ``selection.uncertainty`` asks (``mean``: unchanged)."""
    if uncertainty not in AGGREGATES:
        raise SelectionError(
            f"unknown uncertainty aggregate {uncertainty!r} (choose: {', '.join(AGGREGATES)})"
        )
    if uncertainty == "mean" or not table.has_confidence:
        return table
    return total_uncertainty(table)


def check_method(method: str, uncertainty: str, needs_mc_dropout: bool) -> None:
    """Refuse ``total`` for a method that ranks by dropout agreement (DA), which it would
    leave unchanged."""
    if uncertainty == "total" and needs_mc_dropout:
        raise SelectionError(
            f"selection.uncertainty=total changes the EC only; {method} ranks by dropout "
            "agreement (DA), so it would select exactly as with mean"
        )
