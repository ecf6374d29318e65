"""What a selection returns."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SelectionResult:
    """The outcome of one selection round.

    Attributes
    ----------
    method : str
        The selector as its constructor, e.g. ``"MtPar(beta=0.7, task='re')"``.
    ids : list of str
        Selected ids in selection order (most valuable first); unique, all in the pool.
    tasks : dict of str to list of str, or None
        For disjoint and single-task methods: the tasks each selected id is to be
        annotated on (in the table's task order). None means "every task".
    objective : float or None
        For BLP methods: the objective value (summed uncertainty) of the selection.
    cost : float or None
        For budgeted selection: the annotation cost of the selection.
    gap : float or None
        For BLP methods: upper bound minus objective (0 when proven optimal).
    """

    method: str
    ids: list[str]
    tasks: dict[str, list[str]] | None = None
    objective: float | None = None
    cost: float | None = None
    gap: float | None = None

    def to_dict(self, name: str | None = None) -> dict[str, Any]:
        """The JSON-ready dict: ``method`` and ``ids`` always, other keys when set.

        With ``name`` (the method name the user asked for, e.g. ``"mt-par"``), ``method``
        is that name and ``selector`` holds the constructor form with its parameters.
        """
        data = {k: v for k, v in asdict(self).items() if v is not None}
        if name is not None:
            data = {
                "method": name,
                "selector": self.method,
                **{k: v for k, v in data.items() if k != "method"},
            }
        return data

    def to_json(self, indent: int | None = None, name: str | None = None) -> str:
        """Serialise :meth:`to_dict` as JSON."""
        return json.dumps(self.to_dict(name), indent=indent)
