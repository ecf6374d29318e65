"""Per-sentence confidence scores from model outputs (pure numpy: no torch, no Ray).

* :mod:`~mtal_ray.confidence.entropy` — entropy-based confidence EC (paper eq. 1–2) for
  token tagging, sentence classification, dependency arcs and relation candidate pairs.
* :mod:`~mtal_ray.confidence.agreement` — dropout agreement DA (eq. 3) in ``O(k·m)``.
* :mod:`~mtal_ray.confidence.overconfidence` — the overconfidence error OE (§5.5).
* :mod:`~mtal_ray.confidence.temperature` — temperature scaling fitted on dev.
"""

from mtal_ray.confidence.agreement import (
    agreeing_pairs,
    dropout_agreement,
    dropout_agreement_pairwise,
)
from mtal_ray.confidence.entropy import (
    arc_candidate_mask,
    class_entropy_confidence,
    normalized_entropy,
    pair_entropy_confidence,
    token_entropy_confidence,
    tree_entropy_confidence,
)
from mtal_ray.confidence.overconfidence import overconfidence_error, sentence_accuracy
from mtal_ray.confidence.temperature import apply_temperature, fit_temperature, temperature_nll

__all__ = [
    "agreeing_pairs",
    "apply_temperature",
    "arc_candidate_mask",
    "class_entropy_confidence",
    "dropout_agreement",
    "dropout_agreement_pairwise",
    "fit_temperature",
    "normalized_entropy",
    "overconfidence_error",
    "pair_entropy_confidence",
    "sentence_accuracy",
    "temperature_nll",
    "token_entropy_confidence",
    "tree_entropy_confidence",
]
