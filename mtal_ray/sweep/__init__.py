"""Ray Tune sweeps of complete AL experiments (selector × β × dataset × seed) and their report.

:func:`run_sweep` runs or resumes a sweep (``mtal-ray sweep``; ``python -m mtal_ray.launch``
with a ``sweep:`` section); :func:`write_report` regenerates the comparison report from the
stored trial results (``mtal-ray report SWEEP_DIR``).
"""

from __future__ import annotations

from typing import Any

from mtal_ray.sweep.config import Distribution, SweepConfig

__all__ = ["Distribution", "SweepConfig", "run_sweep", "write_report"]


def run_sweep(config: Any, config_path: Any, args: Any) -> int:
    """Run or resume the sweep described by ``config.sweep`` (see :mod:`mtal_ray.sweep.tuner`)."""
    from mtal_ray.sweep.tuner import run_sweep as _run

    return _run(config, config_path, args)


def write_report(sweep_dir: Any, split: str | None = None) -> Any:
    """(Re)write a sweep's report files (see :func:`mtal_ray.sweep.report.write_report`)."""
    from mtal_ray.sweep.report import write_report as _write

    return _write(sweep_dir, split)
