"""The ``scoring`` section of the experiment config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mtal_ray.sections import Section


class ScoringConfig(Section):
    """How the unlabeled pool is scored (config section ``scoring``).

    Attributes
    ----------
    k
        Number of MC-dropout passes for dropout agreement (paper: 10).
    ec_only
        Only entropy-based confidence: run the single deterministic pass and skip the
        ``k`` stochastic ones (no ``<task>.da`` columns). Set it when the selection method
        needs no DA.
    concurrency
        Number of scorers (model replicas) running at once: Ray Data tasks or actors.
    compute
        How Ray Data runs the scorers. ``tasks``: each block is a Ray task; a worker
        process keeps its imports (torch, transformers, the model code) from one scoring
        to the next and loads each call's model once, so a round after the first starts
        scoring without a process start (``benchmarks/rounds.py``). ``actors``: a pool of
        actors that lives as long as one scoring (a new process, imports and model load per
        actor every round). ``auto`` (default): ``tasks`` on CPU, ``actors`` when the
        scorers reserve GPUs (an idle task worker would keep its model in GPU memory that
        the next round's training needs).
    batch_size
        Most sentences per batch handed to an actor; batches hold sentences of similar
        length (the pool is sorted by length first).
    max_tokens
        Most padded words in one forward pass (rows × longest row); the ``k`` stochastic
        passes of a batch are stacked into as few forwards as this allows.
    block_rows
        Rows per Ray Data block on large pools (default 4096; each block holds whole
        batches, and a pool gets at least 8 blocks per actor). Ray Data pays a fixed cost
        per block: one block per batch capped a 10^6-sentence pool at a few hundred
        sentences per second (``benchmarks/scale.py``).
    cpus_per_actor, gpus_per_actor
        Resources reserved by each actor. Fractional CPUs are allowed (on a 2-core machine
        other stages then still get a CPU). With ``gpus_per_actor`` > 0 the actors run the
        model on their GPU (``cuda``); an actor that sees none stops with one line.
    threads_per_actor
        torch intra-op threads in each actor; default ``max(1, floor(cpus_per_actor))``.
    tasks
        Tasks to score; default every task of the checkpoint.
    temperatures
        Optional post-hoc temperature per task (fitted on dev with
        :func:`mtal_ray.scoring.calibration.fit_temperatures`); applied to the
        probabilities before EC. Tasks not listed keep ``T = 1``.
    calibrate
        Fit ``temperatures`` on the dev split before each scoring (temperature scaling,
        Guo et al. 2017): the AL driver refits after every training, so the calibration
        follows the model from round to round (fitted values replace configured ones).
    mc_layers
        ``all`` (default): every stochastic pass runs the whole model with dropout on (the
        paper's MC dropout). ``N``: partial MC dropout: the encoder's bottom layers run once
        per sentence without dropout and only its top N layers and the heads run the ``k``
        stochastic passes (smt/st models with a BERT-style encoder; see
        ``benchmarks/scoring.py --mc-layers`` for the speed and agreement trade-off).
    precision
        ``fp32`` (default) or ``bf16``: the forward passes run under bfloat16 autocast (the
        probabilities stay float32; ``benchmarks/gpu_check.py`` measures the GPU speed-up).
    seed
        Seeds the dropout masks of each batch (from the seed and the batch's ids), so a
        pool scores the same whichever actor takes which batch, retries included.
    """

    section = "scoring"

    k: int = Field(10, ge=2)
    ec_only: bool = False
    concurrency: int = Field(1, ge=1)
    compute: Literal["auto", "tasks", "actors"] = "auto"
    batch_size: int = Field(64, ge=1)
    max_tokens: int = Field(8192, ge=1)
    block_rows: int = Field(4096, ge=1)
    cpus_per_actor: float = Field(1.0, gt=0)
    gpus_per_actor: float = Field(0.0, ge=0)
    threads_per_actor: int | None = Field(None, ge=1)
    tasks: list[str] | None = None
    temperatures: dict[str, float] = Field(default_factory=dict)
    calibrate: bool = False
    seed: int = 0
    mc_layers: Literal["all"] | int = "all"
    precision: Literal["fp32", "bf16"] = "fp32"

    def gpu_needs(self) -> dict[str, float]:
        """``{"scoring.gpus_per_actor": n}`` when the actors reserve GPUs, else empty."""
        return {"scoring.gpus_per_actor": float(self.gpus_per_actor)} if self.gpus_per_actor else {}

    def device(self) -> str:
        """Where the actors run the model: ``cuda`` when they reserve GPUs, else ``cpu``."""
        return "cuda" if self.gpus_per_actor > 0 else "cpu"

    def compute_strategy(self) -> Literal["tasks", "actors"]:
        """``compute`` resolved: ``auto`` is ``actors`` on GPUs, ``tasks`` otherwise."""
        if self.compute == "auto":
            return "actors" if self.device() == "cuda" else "tasks"
        return self.compute

    @field_validator("mc_layers")
    @classmethod
    def _positive_layers(cls, value: str | int) -> str | int:
        if isinstance(value, bool) or (isinstance(value, int) and value < 1):
            raise ValueError(f"mc_layers must be 'all' or a number of layers >= 1, got {value!r}")
        return value

    def partial_layers(self) -> int | None:
        """The top layers the stochastic passes run (partial MC), ``None`` for all."""
        return None if self.mc_layers == "all" else int(self.mc_layers)

    @field_validator("temperatures")
    @classmethod
    def _positive_temperatures(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {task: t for task, t in value.items() if not t > 0}
        if bad:
            raise ValueError(f"temperatures must be > 0, got {bad}")
        return value

    def threads(self) -> int:
        """torch threads each actor uses."""
        if self.threads_per_actor is not None:
            return self.threads_per_actor
        return max(1, int(self.cpus_per_actor))
