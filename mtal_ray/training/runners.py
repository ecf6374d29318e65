"""How a training worker steps its optimizer and saves its state: DDP or DeepSpeed ZeRO.

The training loop (:mod:`mtal_ray.training.loop`) is written once against :class:`Runner`
(in the spirit of Lightning Fabric's ``Strategy``); ``training.strategy`` picks the class
(:func:`runner_class`, :func:`make_runner`):

* :class:`DdpRunner` — AdamW on the plain model, wrapped in ``DistributedDataParallel``
  (``ray.train.torch.prepare_model``) when there is more than one worker; the optimizer
  state is saved by rank 0: its tensors as ``train_state.pt`` (loaded with
  ``weights_only=True``), its parameter groups as ``train_state.json``.
* :class:`DeepSpeedRunner` — a DeepSpeed engine (ZeRO stage ``training.zero_stage``)
  around the same AdamW; every rank saves its shards under ``deepspeed/``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from mtal_ray.errors import ConfigError
from mtal_ray.models.multitask import MultiTaskModel
from mtal_ray.training.config import TrainingConfig

TRAIN_STATE_FILE = "train_state.pt"
#: Beside it: what of the optimizer state is not a tensor (its parameter groups), as JSON.
TRAIN_STATE_JSON = "train_state.json"
DEEPSPEED_DIR = "deepspeed"


def param_groups(model: MultiTaskModel, config: TrainingConfig) -> list[dict[str, Any]]:
    """AdamW groups: no decay on biases/LayerNorm; new modules (heads, gates) at ``head_lr``."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    fresh = tuple(f"sharing.{m}." for m in getattr(model.sharing, "fresh_modules", ()))
    for name, param in model.named_parameters():
        new = (
            name.startswith("heads.")
            or ".gates." in name
            or name.startswith("sharing.gates")
            or name.startswith(fresh)
        )
        no_decay = param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
        groups.setdefault((new, no_decay), []).append(param)
    head_lr = config.head_lr or config.lr
    return [
        {
            "params": params,
            "lr": head_lr if new else config.lr,
            "weight_decay": 0.0 if no_decay else config.weight_decay,
        }
        for (new, no_decay), params in groups.items()
    ]


class Runner(ABC):
    """One worker's optimizer steps and resume state, for one distributed strategy.

    Attributes
    ----------
    config
        The ``training`` section.
    module
        The plain model (its ``state_dict`` keys have no wrapper prefix).
    wrapped
        What the loop calls for the forward pass (the model, or its DDP / DeepSpeed
        wrapper, which synchronises gradients).
    """

    #: the ``training.strategy`` value that selects this runner
    strategy: ClassVar[str]

    config: TrainingConfig
    module: MultiTaskModel
    wrapped: nn.Module

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`ConfigError` (in the driver) when the strategy cannot run here."""
        return None

    @classmethod
    def worker_env(cls, config: TrainingConfig) -> dict[str, str]:
        """Extra environment variables the training workers need."""
        return {}

    @abstractmethod
    def setup(self, model: MultiTaskModel, config: TrainingConfig, world: int) -> None:
        """Build the optimizer for ``model`` and wrap it for ``world`` workers."""

    @abstractmethod
    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of ``loss`` (synchronised across workers)."""

    @abstractmethod
    def step(self) -> None:
        """Apply the accumulated gradients (clipped to ``max_grad_norm``) and clear them."""

    @abstractmethod
    def save_state(self, directory: Path, rank: int) -> None:
        """Write what resuming needs beyond the weights (called on every rank)."""

    @abstractmethod
    def load_state(self, directory: Path) -> None:
        """Restore what :meth:`save_state` wrote (called on every rank)."""

    def state_dict_for_export(self) -> dict[str, torch.Tensor]:
        """The full weights for the inference checkpoint (``{}``: rebuilt at load time)."""
        return self.module.state_dict()

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The context of a training forward pass: bfloat16 autocast with
        ``training.precision: bf16`` (float32 master weights and optimizer state)."""
        return torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"
        )


class DdpRunner(Runner):
    """AdamW on the model, under ``DistributedDataParallel`` with several workers."""

    strategy = "ddp"

    def setup(self, model: MultiTaskModel, config: TrainingConfig, world: int) -> None:
        import ray.train.torch

        self.config = config
        self.module = model
        self.optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr)
        self.wrapped = ray.train.torch.prepare_model(model) if world > 1 else model

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> None:
        if self.config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def save_state(self, directory: Path, rank: int) -> None:
        if rank == 0:  # the optimizer state is the same on every rank
            state = self.optimizer.state_dict()
            # tensors in the .pt file (loaded with weights_only=True), the rest as JSON
            torch.save({"state": state["state"]}, directory / TRAIN_STATE_FILE)
            groups = json.dumps({"param_groups": state["param_groups"]}, indent=1)
            (directory / TRAIN_STATE_JSON).write_text(groups + "\n", encoding="utf-8")

    def load_state(self, directory: Path) -> None:
        from mtal_ray.training.safe_load import RefusedFileError, load_tensors

        tensors = load_tensors(directory / TRAIN_STATE_FILE, "training state")
        try:
            groups = json.loads((directory / TRAIN_STATE_JSON).read_text(encoding="utf-8"))
            param_groups = groups["param_groups"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise RefusedFileError(
                f"{directory / TRAIN_STATE_JSON}: cannot read the training state ({err})"
            ) from None
        for group in param_groups:
            if isinstance(group.get("betas"), list):
                group["betas"] = tuple(group["betas"])
        state = tensors.get("state") if isinstance(tensors, dict) else None
        if not isinstance(state, dict):
            raise RefusedFileError(
                f"{directory / TRAIN_STATE_FILE}: not a training state (no 'state' mapping)"
            )
        self.optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def _skip_shm_build_without_compiler() -> None:
    """DeepSpeed JIT-compiles a CPU comm op with g++; without one, fall back to torch.dist."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        import importlib

        importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None


class DeepSpeedRunner(Runner):
    """A DeepSpeed ZeRO engine around AdamW; every rank saves its own shards."""

    strategy = "deepspeed"

    @classmethod
    def check_available(cls) -> None:
        try:
            import deepspeed  # noqa: F401
        except ImportError as err:
            raise ConfigError(
                "training.strategy: 'deepspeed' needs the deepspeed package "
                "(DS_BUILD_OPS=0 pip install --no-build-isolation deepspeed==0.19.8)"
            ) from err

    @classmethod
    def worker_env(cls, config: TrainingConfig) -> dict[str, str]:
        return {} if config.use_gpu else {"DS_ACCELERATOR": "cpu"}

    def setup(self, model: MultiTaskModel, config: TrainingConfig, world: int) -> None:
        _skip_shm_build_without_compiler()
        import deepspeed

        self.config = config
        self.module = model
        optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr)
        self.engine, self.optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, config=self.engine_config(config, world)
        )
        self.wrapped = self.engine

    @staticmethod
    def engine_config(config: TrainingConfig, world: int) -> dict[str, Any]:
        """The DeepSpeed config of a ``training`` section (``bf16``: the engine keeps the
        weights in bfloat16 and float32 master weights in the optimizer)."""
        micro = config.micro_batch_size()
        return {
            "train_micro_batch_size_per_gpu": micro,
            "train_batch_size": micro * world,
            "gradient_accumulation_steps": 1,
            "gradient_clipping": config.max_grad_norm or 0.0,
            "zero_optimization": {"stage": config.zero_stage},
            "zero_allow_untested_optimizer": True,
            "bf16": {"enabled": config.precision == "bf16"},
            "steps_per_print": 10**9,
        }

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()  # the engine casts the model itself (bf16)

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)

    def step(self) -> None:
        self.engine.step()  # clips, steps and clears the gradients

    def save_state(self, directory: Path, rank: int) -> None:
        self.engine.save_checkpoint(str(directory / DEEPSPEED_DIR), tag="state")  # collective

    def load_state(self, directory: Path) -> None:
        self.engine.load_checkpoint(str(directory / DEEPSPEED_DIR), tag="state")

    def state_dict_for_export(self) -> dict[str, torch.Tensor]:
        if self.config.zero_stage == 3:  # ZeRO-3 partitions the weights over the ranks
            return {}
        return self.module.state_dict()


RUNNERS: dict[str, type[Runner]] = {cls.strategy: cls for cls in (DdpRunner, DeepSpeedRunner)}


def runner_class(strategy: str) -> type[Runner]:
    """The :class:`Runner` class of a ``training.strategy`` value."""
    try:
        return RUNNERS[strategy]
    except KeyError:
        known = ", ".join(sorted(RUNNERS))
        raise ConfigError(f"training.strategy: unknown strategy {strategy!r} ({known})") from None


def make_runner(model: MultiTaskModel, config: TrainingConfig, world: int) -> Runner:
    """A set-up runner for ``config.strategy``."""
    runner = runner_class(config.strategy)()
    runner.setup(model, config, world)
    return runner
