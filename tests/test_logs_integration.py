"""The job log of a tiny experiment (issue 20): our lines, each once, and no tracebacks.

Runs ``python -m mtal_ray.launch`` (its own local Ray, output to a file as in a job log)
on a tiny synthetic corpus with the tiny random encoder for 2 iterations.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]

#: The most lines one iteration may add to the log (a training is ~12 lines: the step
#: line, Ray Train's worker-group lines, 2 evaluation lines, the result line; scoring and
#: selection ~4), plus a fixed allowance for start-up and the summary table.
MAX_LINES_PER_ITERATION = 20
FIXED_LINES = 30

_PREFIX = re.compile(r"^(\x1b\[\d+m)?\([^)]*pid=\d+[^)]*\)(\x1b\[0m)? ?")


def test_tiny_experiment_log_is_short_and_has_no_duplicates(tmp_path: Path, encoder: str):
    config = {
        "seed": 0,
        "data": {
            "path": "synthetic",
            "tasks": ["sf", "id"],
            "initial_count": 12,
            "dev_multiple": 1.0,
            "synthetic": {"n_train": 60, "n_dev": 12, "n_test": 12},
        },
        "model": {"sharing": "smt", "encoder": encoder},
        "training": {"num_workers": 1, "batch_size": 8, "max_steps": 4, "eval_every": 2},
        "scoring": {"k": 2, "concurrency": 1, "cpus_per_actor": 0.5, "batch_size": 16},
        "selection": {"method": "mt-avg", "n": 6},
        "al": {"iterations": 2},
        "tracking": {"experiment": "ci-logs", "tracking_uri": f"sqlite:///{tmp_path}/mlruns.db"},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = tmp_path / "log"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "mtal_ray.launch", "--config", str(path),
             "--run-dir", str(tmp_path / "run")],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900,
        )  # fmt: skip
    text = log.read_text(encoding="utf-8", errors="replace")
    assert done.returncode == 0, text[-4000:]
    lines = [line for line in text.splitlines() if line.strip()]
    assert "finished 2 iterations" in text
    assert "Traceback" not in text, text
    repeated = {line: n for line, n in Counter(lines).items() if n > 1 and "─" not in line}
    assert not repeated, repeated
    ours = [_PREFIX.sub("", line) for line in lines]
    steps = [line for line in ours if line.startswith("train step")]
    assert len(steps) == len(set(steps)) == 4, steps  # 2 evaluations x 2 trainings, once each
    assert not any("Running Dataset" in line or "Progress bars disabled" in line for line in lines)
    assert len(lines) <= FIXED_LINES + 2 * MAX_LINES_PER_ITERATION, text
