"""Every project exception survives pickling (Ray ships remote errors that way), and the
user's error is found behind Ray's wrappers."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import pytest

import mtal_ray.errors as errors_module
from mtal_ray.errors import (
    ConfigError,
    DataFormatError,
    MtalError,
    ScoringError,
    unwrap_ray_error,
    user_error,
)


def _exception_classes() -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors_module, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == errors_module.__name__
    ]


def _sample(cls: type[BaseException]) -> BaseException:
    """An instance built from the constructor's own signature (a value per parameter)."""
    if cls.__init__ is Exception.__init__:
        return cls(f"{cls.__name__}: something went wrong")
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in params:
        if param.kind is param.VAR_POSITIONAL:
            args.append(f"{param.name} value")
        elif param.kind is param.VAR_KEYWORD:
            continue
        elif param.kind is param.KEYWORD_ONLY:
            kwargs[param.name] = f"{param.name} value"
        else:
            args.append(f"{param.name} value")
    return cls(*args, **kwargs)


def _same(a: BaseException, b: BaseException) -> None:
    assert type(b) is type(a)
    assert str(b) == str(a)
    assert b.args == a.args
    assert vars(b) == vars(a)


def test_the_module_defines_the_expected_classes() -> None:
    names = {cls.__name__ for cls in _exception_classes()}
    assert {"MtalError", "DataFormatError", "ConfigError", "ScoringError"} <= names


@pytest.mark.parametrize("cls", _exception_classes(), ids=lambda c: c.__name__)
def test_every_error_round_trips_through_pickle(cls: type[BaseException]) -> None:
    err = _sample(cls)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        _same(err, pickle.loads(pickle.dumps(err, protocol=protocol)))


@pytest.mark.parametrize("line", [None, 12, "sentence s-3"])
def test_data_format_error_keeps_its_fields(line: int | str | None) -> None:
    err = DataFormatError("corpus/train.conllu", line, "7 columns, expected 10")
    err.add_note("while reading the pool")
    back = pickle.loads(pickle.dumps(err))
    _same(err, back)
    assert isinstance(back, DataFormatError)
    assert (back.path, back.line, back.problem) == ("corpus/train.conllu", line, err.problem)
    assert back.__notes__ == ["while reading the pool"]


class _FakeRayTaskError(Exception):
    """Shaped like ``ray.exceptions.RayTaskError``: a traceback message and a ``cause``."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"ray::Worker.run() (pid=1)\nTraceback ...\n{type(cause).__name__}")
        self.cause = cause


def test_unwrap_follows_cause() -> None:
    inner = ConfigError("al.k: must be positive")
    assert unwrap_ray_error(_FakeRayTaskError(_FakeRayTaskError(inner))) is inner
    plain = ValueError("x")
    assert unwrap_ray_error(plain) is plain


def test_user_error_finds_the_original_behind_wrappers() -> None:
    inner = ScoringError("ckpt: not a checkpoint")

    class WrapperThatIsAlsoTheClass(_FakeRayTaskError, ScoringError):
        pass

    # Ray's wrapper subclasses the original class; the original (its message) wins
    assert user_error(WrapperThatIsAlsoTheClass(inner)) is inner
    # a library re-raising the Ray error as its own exception
    try:
        try:
            raise _FakeRayTaskError(inner)
        except _FakeRayTaskError as ray_err:
            raise RuntimeError("dataset failed") from ray_err
    except RuntimeError as err:
        assert user_error(err) is inner
    # implicit chaining
    try:
        try:
            raise inner
        except MtalError:
            raise KeyError("cleanup")  # noqa: B904 - the implicit chain is the point
    except KeyError as err:
        assert user_error(err) is inner


def test_user_error_is_none_without_a_user_error() -> None:
    assert user_error(ValueError("bug")) is None
    assert user_error(_FakeRayTaskError(ValueError("bug"))) is None
    cyclic = ValueError("a")
    cyclic.__context__ = cyclic
    assert user_error(cyclic) is None


def test_user_error_returns_a_plain_user_error_itself() -> None:
    err = ConfigError("x")
    assert user_error(err) is err
