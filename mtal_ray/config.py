"""Experiment configuration: YAML files validated into typed objects, with overrides.

A config file has one section per component (the section models live with their
components: :class:`~mtal_ray.models.config.ModelConfig`,
:class:`~mtal_ray.training.config.TrainingConfig`,
:class:`~mtal_ray.scoring.config.ScoringConfig`,
:class:`~mtal_ray.selection.config.SelectionConfig`). Sections (``data``, ``model``, ``training``,
``scoring``, ``selection``, ``al``, ``annotation``, ``tracking``, ``sweep``) plus a
top-level ``seed``. Each component owns the pydantic model of its section; this module
composes them. Command-line overrides ``key.sub=value`` are applied before validation
(values parsed as YAML, so ``training.lr=1e-4``, ``data.tasks=[sf,id]`` and
``selection.method=mt-par`` all work). Any invalid key or value raises one
:class:`~mtal_ray.errors.ConfigError` that names the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from mtal_ray.errors import ConfigError
from mtal_ray.models.config import ModelConfig
from mtal_ray.scoring.config import ScoringConfig
from mtal_ray.sections import SWEEP_BASE, Section, format_validation_error, key_error, validate
from mtal_ray.selection.base import Selector
from mtal_ray.selection.config import SelectionConfig
from mtal_ray.sweep.config import SweepConfig
from mtal_ray.training.config import TrainingConfig

__all__ = [
    "ALConfig",
    "AnnotationConfig",
    "DataConfig",
    "ExperimentConfig",
    "LabelStudioConfig",
    "Section",
    "SeedPurpose",
    "SyntheticDataConfig",
    "TrackingConfig",
    "apply_overrides",
    "format_validation_error",
    "load_config",
    "parse_override",
    "read_yaml",
    "validate",
]


class SyntheticDataConfig(Section):
    """Sizes of the generated SYNTHETIC SF+ID corpus (``data.path: synthetic``)."""

    section = "data.synthetic"

    n_train: int = Field(400, ge=10)
    n_dev: int = Field(100, ge=1)
    n_test: int = Field(100, ge=1)


class DataConfig(Section):
    """Where the corpus is and how it is split for active learning (paper §5.4)."""

    section = "data"

    path: str = Field("synthetic", description="corpus folder/file, or 'synthetic'")
    format: Literal["conllu", "slu", "jsonl", "conll"] | None = None
    tasks: list[str] | None = Field(None, description="tasks to learn; default: all in corpus")
    train_split: str = "train"
    dev_split: str | None = "dev"
    test_split: str | None = "test"
    initial_fraction: float | None = Field(0.02, gt=0, lt=1)
    initial_count: int | None = Field(None, ge=1)
    dev_multiple: float = Field(2.0, gt=0)
    limit_train: int | None = Field(
        None, ge=2, description="use only the first N train rows (file order, not sampled)"
    )
    limit_eval: int | None = Field(
        None,
        ge=1,
        description="use a random sample of N dev/test rows (seeded by the experiment seed, "
        "kept in file order)",
    )
    strict_bio: bool = False
    overlapping_entities: Literal["error", "keep-longest", "keep-shortest"] = Field(
        "error", description="nested/overlapping entity mentions: refuse, or keep one of them"
    )
    columns: dict[str, int] | None = Field(
        None, description="conll format: token and tag columns, e.g. {token: 0, ner: -1}"
    )
    synthetic: SyntheticDataConfig = Field(default_factory=SyntheticDataConfig)

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is None:
            return value
        unknown = [k for k in value if k not in ("token", "ner", "sf")]
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (use token and one of ner, sf)")
        tags = [k for k in ("ner", "sf") if k in value]
        if len(tags) != 1:
            raise ValueError("give exactly one tag column, ner or sf")
        if value.get("token", 0) == value[tags[0]]:
            raise ValueError(f"token and {tags[0]} are the same column")
        return value

    @model_validator(mode="after")
    def _initial_size(self) -> DataConfig:
        if self.initial_count is not None:
            object.__setattr__(self, "initial_fraction", None)
        elif self.initial_fraction is None:
            raise ValueError("set data.initial_fraction or data.initial_count")
        return self

    def resolved_path(self, base: Path | None = None) -> Path:
        """``path`` made absolute against ``base`` (the config file's folder)."""
        p = Path(self.path).expanduser()
        return p if p.is_absolute() or base is None else (base / p)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into the key path and the YAML-parsed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {key}: cannot parse value {raw!r}: {err}") from err
    return [part for part in key.strip().split(".")], value


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``key.sub=value`` override set."""
    import copy

    result = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {'.'.join(path)}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return result


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML is a :class:`ConfigError`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})"
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


class TrackingConfig(Section):
    """MLflow tracking (a local SQLite store by default; a server URI on a cluster)."""

    section = "tracking"

    tracking_uri: str | None = Field(
        None, description="MLflow URI; default sqlite:///<runs folder>/mlruns.db"
    )
    experiment: str = Field("mtal_ray", description="MLflow experiment name (not empty)")
    artifact_location: str | None = Field(
        None, description="where new experiments store artifacts; default <run_dir>/../mlartifacts"
    )
    enabled: bool = True
    log_models: Literal["none", "final", "rounds"] = Field(
        "final",
        description="log the trained model to MLflow (pyfunc): none, the final one, every round's",
    )
    register_model: str | None = Field(
        None, description="register the final logged model under this Model Registry name"
    )

    @model_validator(mode="after")
    def _registered_is_logged(self) -> TrackingConfig:
        if self.register_model is not None and self.log_models == "none":
            raise ValueError("register_model needs a logged model: set log_models to final")
        return self

    @field_validator("experiment")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name the MLflow experiment (not empty)")
        return value


class StoppingConfig(Section):
    """One stopping criterion (:mod:`mtal_ray.stopping`), judged per task after each round."""

    section = "al.stopping"

    criterion: Literal[
        "stabilizing-predictions", "overall-uncertainty", "max-uncertainty", "dev-plateau", "budget"
    ] = "stabilizing-predictions"
    threshold: float | None = Field(
        None, description="κ (default 0.99), an uncertainty, the gain δ, or the budget"
    )
    window: int | None = Field(None, ge=1, description="rounds in a row (default 3)")
    stop_set: int = Field(1000, ge=1, description="unlabeled sentences κ is measured on")
    per_task: bool = Field(True, description="stop each task on its own (else all together)")
    unit: Literal["cost", "sentences"] = Field("cost", description="budget criterion's unit")

    #: The keys each criterion reads besides ``criterion``, ``threshold`` and ``per_task``.
    READS: ClassVar[dict[str, frozenset[str]]] = {
        "stabilizing-predictions": frozenset({"window", "stop_set"}),
        "overall-uncertainty": frozenset(),
        "max-uncertainty": frozenset(),
        "dev-plateau": frozenset({"window"}),
        "budget": frozenset({"unit"}),
    }

    @model_validator(mode="after")
    def _buildable(self) -> StoppingConfig:
        from mtal_ray.stopping import make_criterion

        unread = sorted(
            self.model_fields_set & {"window", "stop_set", "unit"} - self.READS[self.criterion]
        )
        if unread:
            raise ValueError(f"{self.criterion} does not read {', '.join(unread)}")
        try:
            make_criterion(self.criterion, self.threshold, self.window, self.unit)
        except ConfigError as err:
            raise ValueError(str(err).removeprefix("al.stopping: ")) from None
        return self

    def resolved(self) -> dict[str, Any]:
        """The rule with every default it reads filled in (what a run records of it)."""
        from mtal_ray.stopping import Budget, DevPlateau, StabilizingPredictions, make_criterion

        rule = make_criterion(self.criterion, self.threshold, self.window, self.unit)
        out: dict[str, Any] = {"criterion": self.criterion, "per_task": self.per_task}
        if isinstance(rule, StabilizingPredictions):
            out.update(threshold=rule.threshold, window=rule.window, stop_set=self.stop_set)
        elif isinstance(rule, DevPlateau):
            out.update(threshold=rule.delta, window=rule.window)
        elif isinstance(rule, Budget):
            out.update(threshold=rule.limit, unit=rule.unit)
        else:
            out["threshold"] = self.threshold
        return out


class ALConfig(Section):
    """The active-learning loop (paper §5.4: 5 iterations, each adding 2 % of train)."""

    section = "al"

    iterations: int = Field(5, ge=1, description="trainings; selections = iterations - 1")
    run_dir: str | None = Field(None, description="default: runs/<config file name>")
    stopping: list[StoppingConfig] = Field(
        default_factory=list,
        description="per-task stopping criteria: one mapping, or a list that combines them",
    )
    stopping_combine: Literal["any", "all"] = Field(
        "any", description="with several criteria: stop when any / all of them fire"
    )

    @field_validator("stopping", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, dict | StoppingConfig) else value

    @model_validator(mode="after")
    def _one_scope(self) -> ALConfig:
        if len({rule.per_task for rule in self.stopping}) > 1:
            raise ValueError(
                "al.stopping: per_task must be the same for every criterion (each task on "
                "its own, or all tasks together)"
            )
        return self


class LabelStudioConfig(Section):
    """Where a ``label-studio`` campaign lives; the API token is read from ``token_env``."""

    section = "annotation.label_studio"

    url: str = Field("http://127.0.0.1:8080", description="the Label Studio server")
    project: str | int | None = Field(
        None, description="project title (created if absent) or id; default: the run's name"
    )
    token_env: str = Field(
        "LABEL_STUDIO_API_KEY",
        description="environment variable holding the API token (never put it in a config)",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")


class AnnotationConfig(Section):
    """Who annotates: the ``oracle`` (simulation) or people (``human``: export / import;
    ``label-studio``: tasks in a Label Studio project, pulled back by ``mtal-ray import
    --from label-studio`` or by polling)."""

    section = "annotation"

    mode: Literal["oracle", "human", "label-studio"] = "oracle"
    label_studio: LabelStudioConfig = Field(default_factory=LabelStudioConfig)
    wait: Literal["stop", "poll"] = Field(
        "stop",
        description="label-studio: stop and wait for mtal-ray import, or poll until done",
    )
    poll_seconds: float = Field(30.0, gt=0, description="label-studio: seconds between polls")


#: What a per-round seed is for (:meth:`ExperimentConfig.seed_for`).
SeedPurpose = Literal["training", "scoring", "selection"]
#: Sections with their own ``seed``: used by the standalone commands; in an experiment the
#: loop derives each round's seed from the top-level ``seed`` instead.
_SEEDED_SECTIONS = ("training", "scoring", "selection")


class ExperimentConfig(Section):
    """The whole experiment: one section per component and the global seed.

    Besides each section's own checks, validation checks what the sections say about each
    other without reading data: the selection's tasks are among ``data.tasks`` (and
    ``scoring.tasks``) when those are given, a budgeted method has a budget, a method
    reading dropout agreement is not scored ``ec_only``, and no section sets its own
    ``seed`` (the loop would ignore it: :meth:`seed_for` derives every round's seeds
    from the top-level ``seed``).
    """

    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    al: ALConfig = Field(default_factory=ALConfig)
    annotation: AnnotationConfig = Field(default_factory=AnnotationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    sweep: SweepConfig | None = None

    @classmethod
    def validation_context(cls, raw: dict[str, Any]) -> dict[str, Any] | None:
        """A config with a ``sweep`` section is a sweep's base: its trials set the rest
        (say, ``selection.beta`` for a base that names ``selection.task``), so the
        selection is checked per trial, before Ray starts (``sweep.tuner.plan_trials``)."""
        return {SWEEP_BASE: True} if isinstance(raw, dict) and raw.get("sweep") else None

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> ExperimentConfig:
        for name in _SEEDED_SECTIONS:
            section = getattr(self, name)
            default = type(section).model_fields["seed"].default
            if section.seed != default:
                raise key_error(
                    f"{name}.seed",
                    f"{section.seed} would be ignored: in an experiment each round's {name} "
                    f"seed derives from the top-level seed; set seed instead",
                )
        if (info.context or {}).get(SWEEP_BASE):
            return self
        sel = self.selection
        named = ([sel.task] if sel.task is not None else []) + list(sel.weights or {})
        for key, tasks in (("data.tasks", self.data.tasks), ("scoring.tasks", self.scoring.tasks)):
            if tasks is None:
                continue
            for task in named:
                if task not in tasks:
                    where = "selection.task" if task == sel.task else "selection.weights"
                    raise key_error(where, f"{task!r} is not one of {key} ({', '.join(tasks)})")
        if sel.entry.budgeted and sel.budget is None:
            raise key_error(
                "selection.budget", f"{sel.method} selects under a budget: set selection.budget"
            )
        if sel.entry.needs_mc_dropout and self.scoring.ec_only:
            raise key_error(
                "scoring.ec_only",
                f"{sel.method} reads dropout agreement (DA), which ec_only skips: unset it",
            )
        return self

    def seed_for(self, purpose: SeedPurpose, iteration: int) -> int:
        """The seed of round ``iteration``'s training, scoring or selection.

        ``training`` and ``selection``: ``seed + iteration``; ``scoring`` (the dropout
        masks): ``seed * 1000 + iteration``.
        """
        if purpose == "scoring":
            return self.seed * 1000 + iteration
        if purpose in ("training", "selection"):
            return self.seed + iteration
        raise ValueError(f"unknown seed purpose {purpose!r}")

    def training_for_round(self, iteration: int) -> TrainingConfig:
        """The ``training`` section of round ``iteration`` (a validated copy with its seed)."""
        return self.training.updated(seed=self.seed_for("training", iteration))

    def scoring_for_round(
        self, iteration: int, *, tasks: Sequence[str], ec_only: bool | None = None
    ) -> ScoringConfig:
        """The ``scoring`` section of round ``iteration`` (a validated copy).

        Parameters
        ----------
        iteration
            The round; fixes the seed of the dropout masks.
        tasks
            The experiment's tasks, scored when ``scoring.tasks`` is not set.
        ec_only
            Whether the round can skip the MC-dropout passes; default: when the selection
            method reads no dropout agreement. ``scoring.ec_only`` forces it.
        """
        if ec_only is None:
            ec_only = not self.selection.entry.needs_mc_dropout
        return self.scoring.updated(
            seed=self.seed_for("scoring", iteration),
            ec_only=self.scoring.ec_only or ec_only,
            tasks=list(self.scoring.tasks or tasks),
        )

    def selection_seed(self, iteration: int) -> int:
        """The seed of round ``iteration``'s selection (read by the random methods)."""
        return self.seed_for("selection", iteration)

    def selector_for_round(self, iteration: int) -> Selector:
        """Round ``iteration``'s selector: the configured one with the round's seed."""
        return self.selection.selector(seed=self.selection_seed(iteration))


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    model: type[BaseModel] = ExperimentConfig,
) -> Any:
    """Read a YAML config (or start from defaults), apply overrides, validate.

    Raises
    ------
    ConfigError
        One message naming every bad key and value.
    """
    raw = read_yaml(path) if path is not None else {}
    return validate(model, apply_overrides(raw, overrides))
