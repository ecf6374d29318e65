"""Loading tensors from disk without running code: ``torch.load(weights_only=True)`` only.

A pickle can run any code when it is loaded, so whoever can write a run directory could
run code on the training workers through a crafted checkpoint. Every ``.pt`` file that
mtal_ray reads (model weights, the optimizer's tensors) goes through :func:`load_tensors`,
which only rebuilds tensors and plain containers; what is not a tensor (hyper-parameters,
progress) is stored as JSON beside it. A file that holds anything else, or is damaged, is
one :class:`RefusedFileError` naming it.
"""

from __future__ import annotations

import os
from typing import Any

from mtal_ray.errors import MtalError

__all__ = ["RefusedFileError", "load_tensors"]


class RefusedFileError(MtalError):
    """A tensor file holds more than tensors (refused) or cannot be read."""


def load_tensors(path: str | os.PathLike[str], what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; a refused or unreadable file is one line.

    Parameters
    ----------
    path
        The ``.pt`` file.
    what
        What the file is, for the message (``"model weights"``, ``"training state"``).
    map_location
        Passed to :func:`torch.load`.

    Raises
    ------
    RefusedFileError
        The file holds objects other than tensors and plain containers (it is not loaded,
        nothing in it runs), or it is damaged or missing.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise RefusedFileError(f"{path}: no such file ({what})") from None
    except pickle.UnpicklingError as err:
        raise RefusedFileError(
            f"{path}: refused to load the {what}: {_reason(err)} (only tensors and plain "
            "containers are loaded; nothing in the file was run)"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RefusedFileError(f"{path}: cannot read the {what} ({first})") from None


def _reason(err: BaseException) -> str:
    """The line of torch's long refusal that says what was refused (one line)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line:
            return line.rstrip(".")
    return "not a tensor file"
