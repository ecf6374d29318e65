"""Seeded splits for active learning: initial labeled set, dev set, unlabeled pool."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mtal_ray.errors import MtalError


@dataclass(frozen=True, eq=False)
class ALSplit:
    """Ids of the initial labeled set, the (capped) dev set and the unlabeled pool.

    ``labeled`` and ``dev`` are small (a few percent of the corpus) and held as Python
    strings; ``pool`` (the rest, sorted) stays an Arrow array, so a pool of millions of
    sentences is never a million Python objects.
    """

    labeled: tuple[str, ...]
    dev: tuple[str, ...]
    pool: pa.StringArray
    #: Whether ``dev`` was carved out of the training split (no dev split was given).
    dev_from_train: bool = False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ALSplit):
            return NotImplemented
        return (self.labeled, self.dev, self.dev_from_train) == (
            other.labeled,
            other.dev,
            other.dev_from_train,
        ) and self.pool.equals(other.pool)

    def to_dict(self) -> dict[str, list[str]]:
        """JSON-friendly form."""
        return {
            "labeled": list(self.labeled),
            "dev": list(self.dev),
            "pool": self.pool.to_pylist(),
        }


def _initial_size(n: int, fraction: float | None, count: int | None) -> int:
    if (fraction is None) == (count is None):
        raise MtalError("give exactly one of data.initial_fraction or data.initial_count")
    size = count if count is not None else round(n * float(fraction))  # type: ignore[arg-type]
    if not 1 <= size < n:
        raise MtalError(
            f"initial labeled set of {size} sentences is impossible for a training split of {n}"
        )
    return size


def sorted_ids(table: pa.Table) -> pa.StringArray:
    """The ``id`` column of ``table`` as one sorted string array (Arrow, no Python objects;
    byte order, which for UTF-8 is Python's ``sorted`` order)."""
    ids = table.column("id").cast(pa.string()).combine_chunks()
    return ids.take(pc.sort_indices(ids))


def make_al_split(
    train: pa.Table,
    dev: pa.Table | None = None,
    *,
    seed: int,
    initial_fraction: float | None = 0.02,
    initial_count: int | None = None,
    dev_multiple: float = 2.0,
) -> ALSplit:
    """Split a training set for active learning, as in the paper's protocol (§5.4).

    A seeded random ``initial_fraction`` (or ``initial_count``) of ``train`` is the initial
    labeled set; the dev set is a random sample of ``dev`` of ``dev_multiple`` times that
    size (all of ``dev`` if smaller); the rest of ``train`` is the unlabeled pool. When
    ``dev`` is ``None`` the dev set is drawn from ``train`` instead (and removed from the
    pool). Identical inputs and seed give identical splits: ids are sorted before the
    seeded permutation, so the split does not depend on row order.
    """
    if initial_count is not None:
        initial_fraction = None
    ids = sorted_ids(train)
    n = len(ids)
    if n < 2:
        raise MtalError(f"a training split of {n} sentences is too small for active learning")
    size = _initial_size(n, initial_fraction, initial_count)
    dev_size = max(1, round(size * dev_multiple))
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    labeled = ids.take(pa.array(order[:size])).to_pylist()
    rest = order[size:]
    if dev is None:
        if dev_size >= len(rest):
            raise MtalError(
                f"no dev split given and the training split ({n}) is too small to carve "
                f"{dev_size} dev sentences out of it"
            )
        dev_ids = ids.take(pa.array(rest[:dev_size])).to_pylist()
        rest = rest[dev_size:]
    else:
        all_dev = sorted(dev.column("id").to_pylist())
        pick = rng.permutation(len(all_dev))[: min(dev_size, len(all_dev))]
        dev_ids = [all_dev[i] for i in sorted(pick)]
    pool = ids.take(pa.array(np.sort(rest)))  # ids are sorted: sorted positions = sorted ids
    return ALSplit(
        labeled=tuple(sorted(labeled)),
        dev=tuple(dev_ids),
        pool=pool,
        dev_from_train=dev is None,
    )


def take_ids(table: pa.Table, ids: list[str] | tuple[str, ...] | pa.Array) -> pa.Table:
    """Rows of ``table`` with the given ids, in the order of ``ids``; unknown ids are an error.

    Arrow throughout (a hash lookup of ``ids`` in the id column): no Python object per row
    of ``table``, whatever its size.
    """
    wanted = ids if isinstance(ids, pa.Array) else pa.array(list(ids), type=pa.string())
    column = table.column("id").cast(pa.string())
    positions = pc.index_in(wanted.cast(pa.string()), value_set=column)
    if positions.null_count:
        found = positions.is_valid().to_numpy(zero_copy_only=False)
        missing = [sid for sid, ok in zip(wanted.to_pylist(), found, strict=True) if not ok]
        raise MtalError(f"{len(missing)} ids not in the table, e.g. {missing[:3]}")
    return table.take(positions)


def ids_in(table: pa.Table, ids: Iterable[str]) -> pa.ChunkedArray:
    """Per row of ``table``: whether its id is one of ``ids`` (Arrow ``is_in``)."""
    column = table.column("id").cast(pa.string())
    return pc.is_in(column, value_set=pa.array(sorted(set(ids)), type=pa.string()))


def rows_without(table: pa.Table, ids: Iterable[str]) -> pa.Table:
    """Rows of ``table`` whose id is not in ``ids``, sorted by id (Arrow throughout)."""
    rest = table.filter(pc.invert(ids_in(table, ids)))
    return rest.take(pc.sort_indices(rest.column("id").cast(pa.string())))


def sample_rows(table: pa.Table, n: int | None, seed: int) -> pa.Table:
    """A seeded random sample of ``n`` rows of ``table``, kept in the table's order.

    What ``data.limit_eval`` applies to the dev and test splits: the first ``n`` rows of a
    file sorted by label (e.g. a dev file grouped by intent) would cover only a few labels.
    The same ``seed`` gives the same rows; ``n`` of None, or at least the table's size,
    keeps the whole table.
    """
    if n is None or n >= table.num_rows:
        return table
    if n < 0:
        raise MtalError(f"cannot sample {n} rows")
    pick = np.sort(np.random.default_rng(seed).choice(table.num_rows, size=n, replace=False))
    return table.take(pa.array(pick, type=pa.int64()))
