"""Registry of parameter-sharing schemes, by name, without importing torch.

Each entry maps the ``model.sharing`` name to ``"module:Class"``; the class is imported
only when a model is built (:func:`sharing_class`). A scheme class is constructed as
``Class(encoder, tasks, config)`` and maps ``(input_ids, attention_mask)`` to one
``[batch, subwords, hidden]`` tensor per task (see :mod:`mtal_ray.models.sharing`).
``hierarchical`` (:mod:`mtal_ray.models.hierarchical`) and ``sclstm``
(:mod:`mtal_ray.models.sclstm`) may report per-task feature sizes in an ``output_sizes``
attribute (default: the encoder's hidden size) and their freshly initialised modules in
``fresh_modules`` (trained at ``training.head_lr``). Further schemes add themselves with
:func:`register_sharing`.
"""

from __future__ import annotations

import importlib

#: ``model.sharing`` name -> ``"module:Class"``.
SHARING_SCHEMES: dict[str, str] = {
    "st": "mtal_ray.models.sharing:SingleTask",
    "smt": "mtal_ray.models.sharing:SharedEncoder",
    "cmt": "mtal_ray.models.sharing:GatedTopLayers",
    "hierarchical": "mtal_ray.models.hierarchical:HierarchicalSupervision",
    "sclstm": "mtal_ray.models.sclstm:SharedCellLSTM",
}


def register_sharing(name: str, target: str) -> None:
    """Register scheme ``name`` implemented by ``target`` (``"module:Class"``)."""
    SHARING_SCHEMES[name] = target


def sharing_class(name: str) -> type:
    """The class implementing scheme ``name``."""
    module, _, attr = SHARING_SCHEMES[name].partition(":")
    return getattr(importlib.import_module(module), attr)
