"""Lazy package exports (PEP 562): a public name is imported from its module on first use.

Packages whose modules pull in torch, transformers or Ray (``models``, ``training``,
``scoring``) export their names this way, so importing one light submodule (a config
section, say) does not import the heavy ones.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str], namespace: dict[str, Any]) -> Callable:
    """A module ``__getattr__`` resolving ``exports`` (name -> module) into ``namespace``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
