"""``TrainingConfig``: the ``training`` section of the experiment config (no torch import).

Example YAML::

    training:
      strategy: ddp            # ddp | deepspeed
      zero_stage: 2            # DeepSpeed ZeRO stage (0-3), used with strategy: deepspeed
      num_workers: 2           # Ray Train workers; 0: no Ray Train, training in the
                               # calling process (the launcher's driver, a sweep's trial)
      use_gpu: false
      precision: fp32          # fp32 | bf16 (autocast with ddp; DeepSpeed's bf16 mode)
      cpus_per_worker: 1
      lr: 5.0e-5               # AdamW, paper §5.4
      head_lr: null            # task heads' learning rate (null = lr)
      weight_decay: 0.01
      batch_size: 32           # global batch per step, split evenly over the workers
      eval_every: 100          # steps between dev evaluations
      checkpoint_when: improved  # improved: checkpoint an evaluation that is the best so
                               # far (what the round keeps) and the last; every-eval: each
      patience: 5              # evaluations without dev improvement before stopping
      selection_floor: 0.001   # best checkpoint: geometric mean of max(score, floor)
      max_steps: 20000         # fixed budget; with epochs: the upper bound
      epochs: null             # budget that follows the labeled set: ceil(epochs × rows /
                               # batch_size) steps, bounded by min_steps and max_steps
      min_steps: 1             # lower bound of the epochs budget
      eval_every_epochs: null  # evaluate every this many epochs (overrides eval_every)
      label_smoothing: {dp: 0.2, ner: 0.2, sf: 0.1, id: 0.1, re: 0.1}   # α per task
      loss_weights: {}         # per task λ, default 1.0
      task_sampling: joint     # joint | uniform | proportional | temperature (one task per
                               # step, batches of rows annotated for it: training/sampling.py)
      sampling_temperature: 2.0  # temperature sampling: p_t ∝ n_t^(1/τ)
      checkpoints_to_keep: 2   # best checkpoints Ray Train keeps while a round trains
      keep_checkpoints: false  # true: keep them (train/) after it; else only best/ stays
"""

from __future__ import annotations

import math
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from mtal_ray.sections import Section, key_error
from mtal_ray.taskspec import TASK_SPECS

#: Label smoothing α per task (paper: 0.2 for DP/NER in §5.4, 0.1 for SF/ID in §7.3), from
#: the task table.
DEFAULT_LABEL_SMOOTHING: dict[str, float] = {
    name: spec.label_smoothing for name, spec in TASK_SPECS.items()
}


class TrainingConfig(Section):
    """How one model is trained (optimizer, schedule, early stopping, Ray Train scaling)."""

    section = "training"

    strategy: Literal["ddp", "deepspeed"] = "ddp"
    zero_stage: int = Field(default=2, ge=0, le=3, description="DeepSpeed ZeRO stage.")
    num_workers: int = Field(
        default=2,
        ge=0,
        description=(
            "Ray Train workers. 0: no Ray Train - the training runs in the calling "
            "process (the launcher's driver, or a sweep's trial actor), with no worker "
            "process to start; "
            "CPU only, DDP, and a lost process loses the round's training (it runs again on "
            "resume)."
        ),
    )
    use_gpu: bool = False
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32",
        description="bf16: bfloat16 autocast (ddp) or DeepSpeed's bf16 mode; fp32 masters.",
    )
    cpus_per_worker: float = Field(default=1.0, gt=0)
    lr: float = Field(default=5e-5, gt=0)
    head_lr: float | None = Field(default=None, gt=0, description="Heads' lr; None = lr.")
    weight_decay: float = Field(default=0.01, ge=0)
    batch_size: int = Field(default=32, ge=1, description="Global batch, split over workers.")
    eval_batch_size: int = Field(default=64, ge=1)
    eval_every: int = Field(default=100, ge=1)
    patience: int = Field(default=5, ge=1, description="Evaluations without improvement.")
    selection_floor: float = Field(
        default=1e-3,
        ge=0,
        lt=1,
        description="Checkpoint selection and early stopping rank evaluations by the "
        "geometric mean of the dev scores, each floored at this value, so a task at 0 does "
        "not make every evaluation tie (0: the plain geometric mean).",
    )
    max_steps: int = Field(default=20000, ge=1)
    epochs: float | None = Field(
        default=None,
        gt=0,
        description="Budget that follows the labeled set: ceil(epochs × rows / batch_size) "
        "steps, bounded by min_steps and max_steps (None: max_steps, fixed).",
    )
    min_steps: int = Field(default=1, ge=1, description="Lower bound of the epochs budget.")
    eval_every_epochs: float | None = Field(
        default=None,
        gt=0,
        description="Evaluate every this many epochs of the labeled set (None: eval_every).",
    )
    max_grad_norm: float | None = Field(default=1.0, gt=0)
    label_smoothing: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_LABEL_SMOOTHING))
    loss_weights: dict[str, float] = Field(default_factory=dict)
    task_sampling: Literal["joint", "uniform", "proportional", "temperature"] = Field(
        default="joint",
        description="joint: all tasks per batch; else one task per step, drawn uniformly, "
        "proportionally to its annotated rows, or with temperature (mtal_ray.training.sampling).",
    )
    sampling_temperature: float = Field(
        default=2.0, gt=0, description="task_sampling: temperature: p_t ∝ n_t^(1/τ)."
    )
    seed: int = 0
    max_failures: int = Field(default=0, ge=-1, description="Worker-group restarts (-1: any).")
    checkpoints_to_keep: int = Field(
        default=2,
        ge=1,
        description="Best checkpoints Ray Train keeps while a round trains (the latest one "
        "too, to resume after a worker failure).",
    )
    checkpoint_when: Literal["improved", "every-eval"] = Field(
        default="improved",
        description="Which evaluations write a checkpoint: the best so far (the one a round "
        "keeps; a worker failure resumes from it and replays the steps since, with the same "
        "result) and the last, or every evaluation (less replay after a failure, more time "
        "writing).",
    )
    keep_checkpoints: bool = Field(
        default=False,
        description="Keep Ray Train's checkpoints (train/) after the round's training; by "
        "default only the exported best model (best/) stays on disk.",
    )

    @field_validator("keep_checkpoints", mode="before")
    @classmethod
    def _keep_is_a_switch(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool) and value not in (0, 1):
            raise ValueError(
                f"{value} is not true/false: keep_checkpoints now says whether Ray Train's "
                "checkpoints stay after training; how many it keeps while training is "
                "training.checkpoints_to_keep"
            )
        return value

    @field_validator("label_smoothing", mode="before")
    @classmethod
    def _merge_defaults(cls, value: object) -> object:
        """A partial mapping (``{ner: 0.1}``) overrides only the tasks it names."""
        if isinstance(value, dict):
            return {**DEFAULT_LABEL_SMOOTHING, **value}
        return value

    @field_validator("label_smoothing")
    @classmethod
    def _alpha_range(cls, value: dict[str, float]) -> dict[str, float]:
        for task, alpha in value.items():
            if not 0.0 <= alpha < 1.0:
                raise ValueError(f"label_smoothing.{task}: {alpha} is not in [0, 1)")
        return value

    @field_validator("loss_weights")
    @classmethod
    def _weights_non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        for task, weight in value.items():
            if weight < 0:
                raise ValueError(f"loss_weights.{task}: {weight} is negative")
        return value

    @model_validator(mode="after")
    def _local_mode(self) -> Self:
        if self.num_workers == 0 and self.strategy != "ddp":
            raise key_error(
                "num_workers",
                f"0 (training in the calling process) needs strategy ddp, not {self.strategy}: "
                "DeepSpeed needs Train workers (num_workers >= 1)",
            )
        if self.num_workers == 0 and self.use_gpu:
            raise key_error(
                "num_workers",
                "0 (training in the calling process) runs on its CPU: use_gpu needs Train "
                "workers (num_workers >= 1)",
            )
        return self

    @model_validator(mode="after")
    def _step_bounds(self) -> Self:
        if self.min_steps > self.max_steps:
            raise key_error("min_steps", f"{self.min_steps} exceeds max_steps {self.max_steps}")
        return self

    def for_rows(self, rows: int) -> TrainingConfig:
        """This config resolved for a labeled set of ``rows`` rows (a validated copy).

        With ``epochs`` set, ``max_steps`` becomes :func:`steps_for_rows`; with
        ``eval_every_epochs`` set, ``eval_every`` becomes that many epochs in steps. Both
        are then cleared, so resolving again changes nothing. Without them the copy equals
        this config (the fixed budget).
        """
        changes: dict[str, object] = {}
        if self.epochs is not None:
            steps = steps_for_rows(
                rows, self.batch_size, self.epochs, self.min_steps, self.max_steps
            )
            changes.update(max_steps=steps, epochs=None)
        if self.eval_every_epochs is not None:
            per_epoch = rows / self.batch_size
            every = max(1, math.ceil(self.eval_every_epochs * per_epoch - 1e-9))
            changes.update(eval_every=every, eval_every_epochs=None)
        return self.updated(**changes) if changes else self

    def weight(self, task: str) -> float:
        """Loss weight of ``task`` (1.0 unless configured)."""
        return float(self.loss_weights.get(task, 1.0))

    def gpu_needs(self) -> dict[str, float]:
        """``{"training.use_gpu": 1}`` when each Train worker reserves a GPU, else empty."""
        return {"training.use_gpu": 1.0} if self.use_gpu else {}

    def micro_batch_size(self) -> int:
        """Per-worker batch: ``batch_size / num_workers`` (at least 1)."""
        return max(1, self.batch_size // max(1, self.num_workers))


def steps_for_rows(
    rows: int, batch_size: int, epochs: float, min_steps: int = 1, max_steps: int | None = None
) -> int:
    """Training steps for ``epochs`` passes over ``rows`` labeled rows.

    ``ceil(epochs × rows / batch_size)``, at least ``min_steps`` and at most ``max_steps``
    (when given). The budget grows with the labeled set, so every round of active learning
    gives each sentence about the same number of passes.

    >>> steps_for_rows(100, 16, 10.0), steps_for_rows(400, 16, 10.0)
    (63, 250)
    """
    if rows < 0 or batch_size < 1 or epochs <= 0:
        raise ValueError(f"rows={rows}, batch_size={batch_size}, epochs={epochs}")
    steps = max(min_steps, math.ceil(epochs * rows / batch_size - 1e-9))
    return steps if max_steps is None else min(steps, max_steps)
