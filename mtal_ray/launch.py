"""``python -m mtal_ray.launch --config configs/X.yaml [k=v …]``: the main job.

A thin alias kept for the documented entry point (``ray job submit -- python -m
mtal_ray.launch …``, the cluster configs); the command lives in :mod:`mtal_ray.cli.run`.
"""

from __future__ import annotations

import sys

from mtal_ray.cli.run import (
    add_run_arguments,
    main,
    resolve_run_dir,
    run_experiment,
    run_loop,
)
from mtal_ray.errors import unwrap_ray_error

__all__ = [
    "add_run_arguments",
    "main",
    "resolve_run_dir",
    "run_experiment",
    "run_loop",
    "unwrap_ray_error",
]

if __name__ == "__main__":
    sys.exit(main())
