"""What a run was trained on, in a few numbers: digests and sizes of its splits (torch-free).

The tracking store records each split of a run (``train``, ``dev``, ``test``, and the
initial ``pool``) as a dataset: its name, where it was read from, a digest of its
*content* (every row's id, tokens and annotations, in order) and its size; and each
round's labeled set as a digest of its ids and a size per task. Two runs whose digests
agree read the same data; a changed file, a different ``limit_train`` or a different seed
shows up as a different digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mtal_ray.data.schema import annotated_mask, tasks_in

#: Digest length (hex characters), as MLflow shows dataset digests.
DIGEST_CHARS = 12
_ROWS_PER_CHUNK = 2048


def table_digest(table: pa.Table) -> str:
    """Digest of a table's content: column names and every row's values, in row order.

    Independent of how the table is chunked or sliced in memory.
    """
    hasher = hashlib.sha256()
    hasher.update(json.dumps(sorted(table.column_names)).encode())
    for start in range(0, table.num_rows, _ROWS_PER_CHUNK):
        for row in table.slice(start, _ROWS_PER_CHUNK).to_pylist():
            hasher.update(json.dumps(row, sort_keys=True, default=str).encode())
            hasher.update(b"\n")
    return hasher.hexdigest()[:DIGEST_CHARS]


def ids_digest(ids: Iterable[str]) -> str:
    """Digest of a set of sentence ids (order does not matter)."""
    hasher = hashlib.sha256()
    for sid in sorted(ids):
        hasher.update(sid.encode())
        hasher.update(b"\n")
    return hasher.hexdigest()[:DIGEST_CHARS]


@dataclass(frozen=True)
class SplitSummary:
    """One split of a run as the tracking store records it.

    Attributes
    ----------
    name
        Dataset name: ``<corpus folder or file>/<split>`` (``pool`` for the initial pool).
    context
        The split's role in the run: ``train``, ``dev``, ``test`` or ``pool``.
    source
        Where it was read from (a path, or ``synthetic:...`` for the generated corpus).
    rows
        Number of sentences.
    digest
        :func:`table_digest` of the rows the run uses.
    tasks
        Tasks annotated in at least one of its rows.
    annotated
        Task -> sentences annotated for it.
    """

    name: str
    context: str
    source: str
    rows: int
    digest: str
    tasks: list[str] = field(default_factory=list)
    annotated: dict[str, int] = field(default_factory=dict)
    #: The tokens of its first sentences (a model's input example).
    examples: list[list[str]] = field(default_factory=list)

    def profile(self) -> dict[str, Any]:
        """The summary MLflow shows beside the dataset (JSON-friendly)."""
        return {"num_rows": self.rows, "tasks": self.tasks, "annotated": self.annotated}


def summarize_split(
    table: pa.Table, name: str, context: str, source: str, tasks: Sequence[str] | None = None
) -> SplitSummary:
    """The :class:`SplitSummary` of ``table`` (restricted to ``tasks`` when given)."""
    present = [t for t in tasks_in(table) if tasks is None or t in tasks]
    annotated = {t: int(sum(annotated_mask(table, t))) for t in present}
    return SplitSummary(
        name=name,
        context=context,
        source=source,
        rows=table.num_rows,
        digest=table_digest(table),
        tasks=[t for t in present if annotated[t]],
        annotated=annotated,
        examples=[list(t or []) for t in table.slice(0, 2).column("tokens").to_pylist()],
    )


def summarize_run_splits(
    corpus_path: Path | str,
    splits: Mapping[str, tuple[str, pa.Table | None]],
    tasks: Sequence[str],
    synthetic: bool = False,
) -> list[SplitSummary]:
    """Summaries of a run's splits: ``context -> (split name, table or None)``.

    ``corpus_path`` names the corpus (the sources are ``<corpus_path>/<split>``).
    """
    corpus = Path(corpus_path)
    out = []
    for context, (split, table) in splits.items():
        if table is None:
            continue
        source = f"synthetic:{corpus.name}/{split}" if synthetic else str(corpus / split)
        if not synthetic and corpus.is_file():
            source = str(corpus)
        out.append(summarize_split(table, f"{corpus.name}/{split}", context, source, tasks))
    return out


@dataclass(frozen=True)
class LabeledSet:
    """A round's labeled set as a dataset: ``name``, ``digest`` (of every labeled id),
    ``source`` (the run's state file) and per task a size and a digest (:meth:`profile`)."""

    name: str
    source: str
    summary: dict[str, Any]

    @property
    def digest(self) -> str:
        return str(self.summary["digest"])

    def profile(self) -> dict[str, Any]:
        """``rows``, ``digest``, ``sizes`` and ``digests`` per task."""
        return dict(self.summary)


def labeled_summary(labeled: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """A round's labeled set: size and digest of the ids per task, and of all of them."""
    every = sorted({sid for ids in labeled.values() for sid in ids})
    return {
        "rows": len(every),
        "digest": ids_digest(every),
        "sizes": {t: len(ids) for t, ids in labeled.items()},
        "digests": {t: ids_digest(ids) for t, ids in labeled.items()},
    }


def summarize_run_data(data: Any, state: Any, data_cfg: Any) -> list[SplitSummary]:
    """The splits a run reads, as :class:`SplitSummary` rows (contexts ``train``, ``dev``,
    ``test`` and ``pool``: the pool as it stands, i.e. the initial pool at a run's start).

    ``data`` is the loop's ``RunData``, ``state`` its ``LoopState``, ``data_cfg`` the
    config's ``data`` section.
    """
    train = data_cfg.train_split
    dev_name = data_cfg.dev_split or f"{train}-dev"
    splits: dict[str, tuple[str, pa.Table | None]] = {
        "train": (train, data.train),
        "dev": (dev_name, data.dev(state)),
        "test": (data_cfg.test_split or "test", data.test),
        "pool": (f"{train}-pool", state.pool_of(data.train) if state.pool_size else None),
    }
    synthetic = data_cfg.path == "synthetic"
    return summarize_run_splits(data.corpus.path, splits, data.tasks, synthetic=synthetic)
