"""Multi-task models: encoders, sharing schemes (st/smt/cmt), collation, inference.

Typical use::

    tasks = build_tasks(["ner", "re"], build_vocabs(train, ["ner", "re"]))
    model, collator = build_model(tasks, ModelConfig(sharing="cmt"))
    losses = model(collator(train.slice(0, 8)), alphas={"ner": 0.2})
    with mc_dropout(model):
        probs = model.predict_proba(collator(pool_rows, with_targets=False))
"""

from typing import TYPE_CHECKING

from mtal_ray.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from mtal_ray.models.build import build_model
    from mtal_ray.models.collate import Batch, Collator
    from mtal_ray.models.config import ModelConfig
    from mtal_ray.models.inference import deterministic, evaluate, mc_dropout, predict, predict_rows
    from mtal_ray.models.multitask import MultiTaskModel
    from mtal_ray.models.schemes import SHARING_SCHEMES, register_sharing

#: Public name -> the module defining it, imported on first use (PEP 562), so that
#: importing one light submodule (e.g. the config section) does not import torch.
_EXPORTS = {
    "build_model": "mtal_ray.models.build",
    "Batch": "mtal_ray.models.collate",
    "Collator": "mtal_ray.models.collate",
    "ModelConfig": "mtal_ray.models.config",
    "deterministic": "mtal_ray.models.inference",
    "evaluate": "mtal_ray.models.inference",
    "mc_dropout": "mtal_ray.models.inference",
    "predict": "mtal_ray.models.inference",
    "predict_rows": "mtal_ray.models.inference",
    "MultiTaskModel": "mtal_ray.models.multitask",
    "SHARING_SCHEMES": "mtal_ray.models.schemes",
    "register_sharing": "mtal_ray.models.schemes",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


__all__ = [
    "SHARING_SCHEMES",
    "Batch",
    "Collator",
    "ModelConfig",
    "MultiTaskModel",
    "build_model",
    "deterministic",
    "evaluate",
    "mc_dropout",
    "predict",
    "predict_rows",
    "register_sharing",
]
