"""Wall time of the selection methods against straightforward baselines, in one run.

    python benchmarks/selection.py            # full table (~3-5 minutes on 2 cores)
    python benchmarks/selection.py --quick    # smaller sizes, for a smoke test

Part 1: count-based methods, T = 2 tasks, pool n = 10^4, 10^5, 10^6, n/50 selected
(plus greedy budgeted MT-AVG). MT-PAR is compared with (a) plain O(n²) frontier peeling
(only at 10^4: it grows quadratically) and (b) the usual "one sort + running minimum per
frontier" peeling. Part 2: the BLP formulations at 5k/20k/100k with a budget of
n/50 × the mean joint cost; UDJS is compared with the paper's direct X/Y formulation
solved by CBC (not at 100k, where it does not finish in reasonable time).

Confidences are correlated Beta(5, 2) draws; costs follow the paper's model
(SF: m + nt, ID: m + 3) with m ∈ [5, 40) tokens and nt ∈ [0, 6) entities.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mtal_ray.selection import CostModel, load_table, make_selector
from mtal_ray.selection.blp import udjs_direct
from mtal_ray.selection.knapsack import solve_mckp
from mtal_ray.selection.mt_ind import independent_keys
from mtal_ray.selection.pareto import pareto_layers_reference

COUNT_METHODS = [
    ("mt-r", {}),
    ("mt-ec", {"task": "sf"}),
    ("mt-avg", {}),
    ("mt-max", {}),
    ("mt-min", {}),
    ("mt-rrf", {}),
    ("mt-ind", {}),
    ("mt-par", {}),
    ("mt-par", {"beta": 0.7, "task": "sf"}),
]
BLP_METHODS = [
    ("blp-udjs", {}),
    ("blp-eqb", {}),
    ("blp-joint-avg", {}),
    ("blp-joint-min", {}),
    ("blp-joint-rrf", {}),
    ("blp-stcs", {"task": "id"}),
]


def make_pool(n: int, seed: int = 0) -> dict[str, Any]:
    """A synthetic two-task (SF, ID) confidence table with the paper's cost columns."""
    rng = np.random.default_rng(seed)
    base = rng.beta(5, 2, n)
    return {
        "id": [f"s{i:07d}" for i in rng.permutation(n)],
        "sf.ec": base,
        "id.ec": np.clip(0.6 * base + 0.4 * rng.beta(5, 2, n), 0, 1),
        "n_tokens": rng.integers(5, 40, n),
        "sf.n_entities": rng.integers(0, 6, n),
    }


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def peel_sort_running_min(
    points: np.ndarray, limit: int, max_seconds: float = 60.0
) -> list[np.ndarray] | None:
    """Baseline: each frontier by a fresh sort + running minimum over the rest (2 tasks).

    Assumes no duplicate points (true of the continuous benchmark data). Returns None when
    it runs out of time.
    """
    start = time.perf_counter()
    rest = np.arange(points.shape[0])
    layers, total = [], 0
    while rest.size and total < limit:
        pts = points[rest]
        order = np.lexsort((pts[:, 1], pts[:, 0]))
        y = pts[order, 1]
        prev_min = np.concatenate([[np.inf], np.minimum.accumulate(y)[:-1]])
        front = np.zeros(rest.size, dtype=bool)
        front[order] = y < prev_min
        layers.append(rest[front])
        total += int(front.sum())
        rest = rest[~front]
        if time.perf_counter() - start > max_seconds:
            return None
    return layers


def ind_full_ranking(ec: np.ndarray, k: int) -> np.ndarray:
    """MT-IND by ranking every task's whole column (what MtInd did before its top-k
    shortcut): the keys of every row, then the k smallest."""
    key, first = independent_keys(ec, np.full(ec.shape[1], 1.0 / ec.shape[1]))
    kth = np.partition(key, k - 1)[k - 1]
    cand = np.flatnonzero(key <= kth)
    return cand[np.lexsort((cand, first[cand], key[cand]))][:k]


def row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def fmt(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:.3f}s"


def part_count(sizes: list[int], quadratic_n: int = 2_000) -> None:
    widths = [34, 9, 10, 12, 9]
    print("\nPart 1 — count-based selection, T=2, n/50 selected (time on a loaded table)")
    print(row(["method", "pool", "ours", "baseline", "ratio"], widths))
    for n in sizes:
        pool = make_pool(n)
        load_s, ct = timed(load_table, pool)
        print(row(["(load + validate + sort by id)", f"{n:.0e}", fmt(load_s), "", ""], widths))
        k = n // 50
        ec = ct.ec_matrix()
        for method, params in COUNT_METHODS:
            sel = make_selector(method, **params)
            ours, _ = timed(sel.select, ct, n=k)
            base = None
            label = repr(sel)
            if method == "mt-par" and not params:
                base, done = timed(peel_sort_running_min, ec, k)
                label += " vs sort+min peel"
            if method == "mt-ind":
                base, done = timed(ind_full_ranking, ec, k)
                label += " vs full per-task ranking"
            ratio = f"{base / ours:.1f}x" if base else ""
            shown = fmt(base)
            if base and done is None:
                shown, ratio = f">{base:.0f}s", f">{base / ours:.0f}x"
            print(row([label, f"{n:.0e}", fmt(ours), shown, ratio], widths))
            if method == "mt-par" and not params and n == sizes[0]:
                # O(n²) per frontier: on a 2 000-sample slice, or this alone takes minutes
                sub = ec[:quadratic_n]
                ours_q, _ = timed(
                    make_selector("mt-par").select,
                    load_table(
                        {"id": ct.ids[:quadratic_n], "sf.ec": sub[:, 0], "id.ec": sub[:, 1]}
                    ),
                    n=quadratic_n // 50,
                )
                quad, _ = timed(pareto_layers_reference, sub, limit=quadratic_n // 50)
                print(
                    row(
                        [
                            "MtPar() vs O(n²) peel",
                            f"{quadratic_n:.0e}",
                            fmt(ours_q),
                            fmt(quad),
                            f"{quad / ours_q:.0f}x",
                        ],
                        widths,
                    )
                )
        joint = CostModel().costs(ct).joint
        budget = k * float(joint.mean())
        sel = make_selector("mt-avg")
        t, _ = timed(sel.select, ct, budget=budget)
        print(row(["MtAvg() GRD_AL budget", f"{n:.0e}", fmt(t), "", ""], widths))
        sel = make_selector("mt-par")
        t, _ = timed(sel.select, ct, budget=budget)
        print(row(["MtPar() GRD_AL budget", f"{n:.0e}", fmt(t), "", ""], widths))


def part_blp(sizes: list[int], direct_max: int, direct_limit: float) -> None:
    widths = [26, 7, 9, 12, 12, 12, 9]
    print("\nPart 2 — BLP formulations, budget = n/50 × mean joint cost")
    print(row(["method", "pool", "ours", "objective", "gap", "baseline", "ratio"], widths))
    for n in sizes:
        ct = load_table(make_pool(n, seed=1))
        costs = CostModel().costs(ct)
        budget = n // 50 * float(costs.joint.mean())
        for method, params in BLP_METHODS:
            sel = make_selector(method, **params)
            t, r = timed(sel.select, ct, budget=budget)
            print(
                row(
                    [
                        repr(sel),
                        f"{n // 1000}k",
                        fmt(t),
                        f"{r.objective:.4f}",
                        f"{r.gap:.2g}",
                        "",
                        "",
                    ],
                    widths,
                )
            )
            if method == "blp-udjs" and n <= direct_max:
                tb, (_, obj, gap) = timed(udjs_direct, ct, budget, costs, time_limit=direct_limit)
                print(
                    row(
                        [
                            "  direct X/Y UDJS (CBC)",
                            f"{n // 1000}k",
                            fmt(t),
                            f"{obj:.4f}",
                            f"{gap:.2g}",
                            fmt(tb),
                            f"{tb / t:.0f}x",
                        ],
                        widths,
                    )
                )
            if method == "blp-joint-min" and n <= direct_max:
                gain = 1.0 - ct.ec_matrix().min(axis=1)
                tb, sol = timed(
                    solve_mckp,
                    gain,
                    costs.joint,
                    np.arange(ct.n),
                    budget,
                    reduce=False,
                    time_limit=direct_limit,
                )
                print(
                    row(
                        [
                            "  plain CBC knapsack",
                            f"{n // 1000}k",
                            fmt(t),
                            f"{sol.objective:.4f}",
                            f"{sol.gap:.2g}",
                            fmt(tb),
                            f"{tb / t:.0f}x",
                        ],
                        widths,
                    )
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument(
        "--direct-limit", type=float, default=180.0, help="CBC time limit of the baselines (s)"
    )
    args = parser.parse_args()
    if args.quick:
        part_count([10_000])
        part_blp([5_000], 5_000, 30.0)
    else:
        part_count([10_000, 100_000, 1_000_000])
        part_blp([5_000, 20_000, 100_000], 20_000, args.direct_limit)


if __name__ == "__main__":
    main()
