"""Multi-task models: encoders, sharing schemes (st/smt/cmt), collation, inference.

Typical use::

    tasks = build_tasks(["ner", "re"], build_vocabs(train, ["ner", "re"]))
    model, collator = build_model(tasks, ModelConfig(sharing="cmt"))
    losses = model(collator(train.slice(0, 8)), alphas={"ner": 0.2})
    with mc_dropout(model):
        probs = model.predict_proba(collator(pool_rows, with_targets=False))
"""

from mtal_ray.models.build import build_model
from mtal_ray.models.collate import Batch, Collator
from mtal_ray.models.config import ModelConfig
from mtal_ray.models.inference import deterministic, evaluate, mc_dropout, predict, predict_rows
from mtal_ray.models.multitask import MultiTaskModel
from mtal_ray.models.schemes import SHARING_SCHEMES, register_sharing

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
