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
    # conll04 was not collected by this run: its earlier entry stays
    assert results["scenarios"]["conll04"] == earlier["conll04"]
    assert not list(output.parent.glob("*.tmp*"))
