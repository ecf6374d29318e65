"""The driver actor: hosts :class:`~mtal_ray.driver.loop.ActiveLearningLoop` on Ray.

The actor reserves no CPU (training and scoring workers need them all on a small machine)
and is pinned to the node of the process that launched it, so the run directory is on the
launcher's file system. It is not detached: if the launching process dies, so does the
actor, and a relaunch resumes from the persisted state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray

from mtal_ray.driver.loop import ActiveLearningLoop, Summary
from mtal_ray.logs import env_vars, setup_logging


@ray.remote(num_cpus=0, max_restarts=0)
class DriverActor:
    """Runs one AL experiment; :meth:`run` returns its :class:`Summary`."""

    def __init__(self, config: Any, run_dir: str, base_dir: str) -> None:
        # The loop prints one line per step (and its own scoring progress); Ray Data's
        # bars only when the launcher writes to a terminal (mtal_ray.logs).
        setup_logging("driver")
        self.loop = ActiveLearningLoop(
            config, Path(run_dir), Path(base_dir), echo=lambda line: print(line, flush=True)
        )

    def run(self) -> Summary:
        """Run or resume the loop until it finishes or waits for annotation."""
        return self.loop.run()


def _actor_env() -> dict[str, str]:
    """The launcher's logging choices (``--verbose``, terminal) and its cluster's address:
    Ray's own helpers in the job (Train's placement-group cleaner asks the State API)
    find this cluster even when other Ray instances run on the machine."""
    env = env_vars()
    address = ray.get_runtime_context().gcs_address
    if address and not os.environ.get("RAY_ADDRESS"):
        env["RAY_ADDRESS"] = address
    return env


def run_on_ray(config: Any, run_dir: Path, base_dir: Path) -> Summary:
    """Start the driver actor on this node and wait for it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    actor = DriverActor.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
        name=None,
        runtime_env={"env_vars": _actor_env()},
    ).remote(config, str(run_dir), str(base_dir))
    return ray.get(actor.run.remote())
