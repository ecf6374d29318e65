"""Seeded splits for active learning: initial labeled set, dev set, unlabeled pool."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mtal_ray.errors import MtalError


@dataclass(frozen=True)
class ALSplit:
    """Ids of the initial labeled set, the (capped) dev set and the unlabeled pool."""

    labeled: tuple[str, ...]
    dev: tuple[str, ...]
    pool: tuple[str, ...]

    def to_dict(self) -> dict[str, list[str]]:
        """JSON-friendly form."""
        return {"labeled": list(self.labeled), "dev": list(self.dev), "pool": list(self.pool)}


def _initial_size(n: int, fraction: float | None, count: int | None) -> int:
    if (fraction is None) == (count is None):
        raise MtalError("give exactly one of data.initial_fraction or data.initial_count")
    size = count if count is not None else round(n * float(fraction))  # type: ignore[arg-type]
    if not 1 <= size < n:
        raise MtalError(
            f"initial labeled set of {size} sentences is impossible for a training split of {n}"
        )
    return size


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
    ids = sorted(train.column("id").to_pylist())
    n = len(ids)
    if n < 2:
        raise MtalError(f"a training split of {n} sentences is too small for active learning")
    size = _initial_size(n, initial_fraction, initial_count)
    dev_size = max(1, round(size * dev_multiple))
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(n)]
    labeled = order[:size]
    rest = order[size:]
    if dev is None:
        if dev_size >= len(rest):
            raise MtalError(
                f"no dev split given and the training split ({n}) is too small to carve "
                f"{dev_size} dev sentences out of it"
            )
        dev_ids, pool = rest[:dev_size], rest[dev_size:]
    else:
        all_dev = sorted(dev.column("id").to_pylist())
        pick = rng.permutation(len(all_dev))[: min(dev_size, len(all_dev))]
        dev_ids, pool = [all_dev[i] for i in sorted(pick)], rest
    return ALSplit(labeled=tuple(sorted(labeled)), dev=tuple(dev_ids), pool=tuple(sorted(pool)))


def take_ids(table: pa.Table, ids: list[str] | tuple[str, ...]) -> pa.Table:
    """Rows of ``table`` with the given ids, in the order of ``ids``; unknown ids are an error."""
    index = {sid: i for i, sid in enumerate(table.column("id").to_pylist())}
    missing = [sid for sid in ids if sid not in index]
    if missing:
        raise MtalError(f"{len(missing)} ids not in the table, e.g. {missing[:3]}")
    return table.take(pa.array([index[sid] for sid in ids], type=pa.int64()))


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
