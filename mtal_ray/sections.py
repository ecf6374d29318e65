"""The base of every config section, and the one way config errors are worded.

A leaf module (pydantic and :mod:`mtal_ray.errors` only), so each component's section
model (``ModelConfig``, ``TrainingConfig``, ``ScoringConfig``, ``SelectionConfig``,
``SweepConfig``) inherits :class:`Section` without importing :mod:`mtal_ray.config`.

Every problem becomes one :class:`~mtal_ray.errors.ConfigError` whose message names the
full key (``training.lr: ...``). A model-level check that is about one key raises
:func:`key_error` (the message is then filed under that key); a check whose message
already names its keys (``selection.beta needs selection.task``) raises
:func:`keys_error`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from mtal_ray.errors import ConfigError

#: Validation-context key marking a sweep's base config (see
#: :meth:`Section.validation_context`).
SWEEP_BASE = "sweep_base"
#: ``type`` of the errors made by :func:`key_error` / :func:`keys_error`.
_KEY_ERROR = "config_key"
_KEYS_ERROR = "config_keys"


def key_error(key: str, message: str) -> PydanticCustomError:
    """A model-level error about ``key`` (relative to the model raising it)."""
    return PydanticCustomError(_KEY_ERROR, "{key}: {message}", {"key": key, "message": message})


def keys_error(message: str) -> PydanticCustomError:
    """A model-level error whose ``message`` names the keys at fault itself."""
    return PydanticCustomError(_KEYS_ERROR, "{message}", {"message": message})


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the full key (``training.lr: ...``)."""
    lines = []
    for problem in err.errors():
        key = ".".join(str(p) for p in problem["loc"])
        key = f"{prefix}{key}" if key else prefix.rstrip(".")
        given = problem.get("input")
        detail = problem["msg"]
        ctx = problem.get("ctx") or {}
        if problem["type"] == _KEY_ERROR:
            key = f"{key}.{ctx['key']}" if key else str(ctx["key"])
            detail = str(ctx["message"])
        elif problem["type"] == _KEYS_ERROR:
            detail = str(ctx["message"])
            if not key or detail.startswith(f"{key}."):
                lines.append(detail)
                continue
        elif problem["type"] == "extra_forbidden":
            detail = "unknown key"
        elif given is not None and not isinstance(given, dict):
            detail += f" (got {given!r})"
        lines.append(f"{key or 'config'}: {detail}")
    return "; ".join(lines)


def validate(model: type[BaseModel], raw: dict[str, Any], prefix: str = "") -> Any:
    """Validate ``raw`` into ``model``; raise :class:`ConfigError` naming the bad keys.

    A model may tell how ``raw`` is to be validated with a classmethod
    ``validation_context(raw)`` (see :meth:`Section.validation_context`).
    """
    context_of = getattr(model, "validation_context", None)
    context = context_of(raw) if context_of is not None else None
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, prefix)) from None


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on set.

    Subclasses set :attr:`section` to their key in the experiment config, so errors of a
    section validated on its own still name the full key. A section may add
    ``frozen=True`` (``SelectionConfig``); copies with changes go through
    :meth:`updated`, which validates them like a loaded config.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    #: The section's key in the experiment config (``"training"``); "" for the top level.
    section: ClassVar[str] = ""

    @classmethod
    def validation_context(cls, raw: dict[str, Any]) -> dict[str, Any] | None:
        """The pydantic validation context for ``raw`` (None: validate everything).

        ``{SWEEP_BASE: True}`` marks the base config of a sweep, which the trials
        complete: checks that need the whole trial (e.g. building the selector) are left
        to each trial's validation.
        """
        return None

    def updated(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` (key = value) applied.

        Raises
        ------
        ConfigError
            Naming the key (``training.seed: ...``) when a change is invalid or unknown.
        """
        prefix = f"{self.section}." if self.section else ""
        return validate(type(self), {**self.model_dump(), **changes}, prefix)
