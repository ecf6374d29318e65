"""benchmarks/validity.py --skip-sweeps on a fresh clone: the results are collected from the
trial archive alone (no sweep directory, no Ray), and a scenario this run collects nothing
for keeps its earlier entry in the results file."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import validity

ARCHIVE = Path(validity.__file__).parent / "results" / "trials" / "validity" / "validity_atis"
TRIALS = ["mt-r_seed=0", "mt-avg_seed=0"]

pytestmark = pytest.mark.skipif(
    not (validity.DATA / "atis").exists() or not all((ARCHIVE / t).is_dir() for t in TRIALS),
    reason="needs ../shared/data/atis and the archived ATIS trials",
)


def test_a_fresh_clone_collects_the_archived_trials_and_keeps_other_scenarios(tmp_path: Path):
    archive = tmp_path / "results" / "trials" / "validity" / "validity_atis"
    for name in TRIALS:
        shutil.copytree(ARCHIVE / name, archive / name)
    output = tmp_path / "results" / "validity.json"
    earlier = {"atis": {"methods": {}}, "conll04": {"pool_size": 922, "methods": {"x": {}}}}
    output.write_text(json.dumps({"protocol": {}, "scenarios": earlier}))
    argv = ["--scenarios", "atis", "--seeds", "0", "--pool-size", "2000", "--comparisons"]
    argv += ["--methods", "mt-r", "mt-avg", "--skip-sweeps"]
    argv += ["--work-dir", str(tmp_path / "work"), "--output", str(output)]

    assert validity.main(argv) == 0

    results = json.loads(output.read_text())
    methods = results["scenarios"]["atis"]["methods"]
    assert sorted(methods) == ["mt-avg", "mt-r"]
    summary = json.loads((ARCHIVE / "mt-avg_seed=0" / "summary.json").read_text())
    assert methods["mt-avg"]["0"]["labeled"] == [row["labeled"] for row in summary["rows"]]
    assert methods["mt-avg"]["0"]["test"]["sf"] == [row["test.sf"] for row in summary["rows"]]
    # each trial's own wall time (all its attempts), from the archived trial.json
    records = [json.loads((ARCHIVE / n / "trial.json").read_text()) for n in TRIALS]
    seconds = {r["name"]: r["seconds"] for r in records}
    assert methods["mt-avg"]["0"]["wall_s"] == round(seconds["mt-avg_seed=0"], 1)
    total = sum(e["wall_s"] for m in methods.values() for e in m.values())
    assert results["scenarios"]["atis"]["trials_wall_s"] == pytest.approx(total)
    # conll04 was not collected by this run: its earlier entry stays
    assert results["scenarios"]["conll04"] == earlier["conll04"]
    assert not list(output.parent.glob("*.tmp*"))


def test_table4_counts_within_cross_and_average_wins_per_seed() -> None:
    """Table 4's three comparisons, by hand: MT methods × seeds against the same seed's
    ST-EC-sf trial (its own task's score; the cross-task model's score on id)."""

    def trial(sf: float, id_: float, cross: dict[str, float] | None = None) -> dict:
        entry = {"test": {"sf": [0.0, sf], "id": [0.0, id_]}, "geo_mean": [0.0, 0.0]}
        if cross is not None:
            entry["cross_task_final"] = cross
        return entry

    st = {"0": trial(0.80, 0.0, {"id": 0.90}), "1": trial(0.70, 0.0, {"id": 0.95})}
    mt = {
        "mt-avg": {"0": trial(0.82, 0.88), "1": trial(0.69, 0.955)},
        "mt-max": {"0": trial(0.78, 0.93), "2": trial(0.99, 0.99)},  # seed 2 has no ST twin
    }
    tasks = ["sf", "id"]
    # within sf: 0.82 > 0.80 yes, 0.69 > 0.70 no, 0.78 > 0.80 no -> 1 of 3
    sf = lambda e: validity._final(e, "sf")  # noqa: E731
    assert validity._wins(mt, st, sf, sf) == "33 % of 3"
    # cross id: 0.88 > 0.90 no, 0.955 > 0.95 yes, 0.93 > 0.90 yes -> 2 of 3
    cross = validity._wins(
        mt, st, lambda e: validity._final(e, "id"), lambda e: e["cross_task_final"]["id"]
    )
    assert cross == "67 % of 3"
    # average: ST 0.85 / 0.825; MT 0.85 (not above), 0.8225 (no), 0.855 (above)
    assert validity._st_average(st["0"], "sf", tasks) == pytest.approx(0.85)
    average = validity._wins(
        mt,
        st,
        lambda e: validity._task_average(e, tasks),
        lambda e: validity._st_average(e, "sf", tasks),
    )
    assert average == "33 % of 3"
    # an ST trial whose cross-task model is missing is left out, not counted as a loss
    assert validity._st_average(trial(0.8, 0.0), "sf", tasks) is None


def test_oe_items_are_each_sentence_s_mean_ec_and_accuracy() -> None:
    import numpy as np

    # two sentences of two positions over 2 outcomes; the second has one position masked
    p = np.array([[[0.5, 0.5], [1.0, 0.0]], [[0.2, 0.8], [0.9, 0.1]]])
    gold = np.array([[1, 0], [1, 1]])
    mask = np.array([[True, True], [True, False]])
    conf: list[float] = []
    acc: list[float] = []
    validity._sentence_oe_items(conf, acc, p, gold, mask)
    h = -(0.2 * np.log(0.2) + 0.8 * np.log(0.8)) / np.log(2)
    # sentence 1: entropies 1 and 0 -> EC 0.5; argmax 0, 0 against gold 1, 0 -> accuracy 0.5
    # sentence 2: only the first position: EC 1 − h; argmax 1 = gold -> accuracy 1
    assert conf == pytest.approx([0.5, 1 - h])
    assert acc == [0.5, 1.0]
    empty: list[float] = []
    validity._sentence_oe_items(empty, [], p, gold, np.zeros_like(mask))
    assert empty == []  # a sentence with nothing scored contributes nothing


def test_the_length_arm_is_mt_rrf_with_the_total_and_has_its_own_name(tmp_path) -> None:
    from mtal_ray.config import load_config

    args = validity.parse_args(["--scenarios", "atis", "--comparisons", "length"])
    config = validity.sweep_config("v", validity.SCENARIOS["atis"], tmp_path, args)
    arm = [g for g in config["sweep"]["grid"] if "selection.uncertainty" in g]
    assert arm == [
        {"selection.method": ["mt-rrf"], "selection.uncertainty": ["total"], "seed": [0, 1, 2]}
    ]
    trial = load_config(None, ["selection.method=mt-rrf", "selection.uncertainty=total"])
    assert trial.selection.uncertainty == "total"
    params = {"selection.method": "mt-rrf", "selection.uncertainty": "total", "seed": 0}
    assert validity.method_key(params) == "mt-rrf-total"
    assert validity.method_key({"selection.method": "mt-rrf", "seed": 0}) == "mt-rrf"


def test_the_budget_length_arm_is_the_rrf_budget_pair_with_the_total(tmp_path) -> None:
    args = validity.parse_args(["--scenarios", "atis", "--comparisons", "budget", "budget-length"])
    args.budget_pairs = 1
    config = validity.sweep_config("v", validity.SCENARIOS["atis"], tmp_path, args)
    budget = [g for g in config["sweep"]["grid"] if "selection.budget" in g]
    assert budget == [
        {"selection.method": ["mt-min", "blp-joint-min"], "selection.budget": [500.0],
         "seed": [0, 1, 2]},
        {"selection.method": ["mt-rrf", "blp-joint-rrf"], "selection.budget": [500.0],
         "selection.uncertainty": ["total"], "seed": [0, 1, 2]},
    ]  # fmt: skip
    keys = [
        validity.method_key({"selection.method": m, "selection.budget": 500.0, **extra})
        for m in ("mt-rrf", "blp-joint-rrf")
        for extra in ({}, {"selection.uncertainty": "total"})
    ]
    assert keys == ["grd-mt-rrf", "grd-mt-rrf-total", "blp-joint-rrf", "blp-joint-rrf-total"]
    # CoNLL04 and EWT have no budget arm
    conll = validity.sweep_config("v", validity.SCENARIOS["conll04"], tmp_path, args)
    assert not [g for g in conll["sweep"]["grid"] if "selection.budget" in g]
