"""The driver actor: hosts :class:`~mtal_ray.driver.loop.ActiveLearningLoop` on Ray.

The actor reserves no CPU (training and scoring workers need them all on a small machine)
and is pinned to the node of the process that launched it, so the run directory is on the
launcher's file system. It is not detached: if the launching process dies, so does the
actor, and a relaunch resumes from the persisted state.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import ray

from mtal_ray.driver.loop import ActiveLearningLoop, Summary


@ray.remote(num_cpus=0, max_restarts=0)
class DriverActor:
    """Runs one AL experiment; :meth:`run` returns its :class:`Summary`."""

    def __init__(self, config: Any, run_dir: str, base_dir: str) -> None:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
        # The loop prints one line per step; Ray Data's per-operator bars would flood the
        # job log (they redraw through the log stream, not a terminal).
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        self.loop = ActiveLearningLoop(
            config, Path(run_dir), Path(base_dir), echo=lambda line: print(line, flush=True)
        )

    def run(self) -> Summary:
        """Run or resume the loop until it finishes or waits for annotation."""
        return self.loop.run()


def run_on_ray(config: Any, run_dir: Path, base_dir: Path) -> Summary:
    """Start the driver actor on this node and wait for it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    actor = DriverActor.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
        name=None,
    ).remote(config, str(run_dir), str(base_dir))
    return ray.get(actor.run.remote())
