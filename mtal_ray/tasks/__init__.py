"""Task plugins: heads, losses, decoding, metrics and raw probabilities.

One module per kind of task:

==========  ==========================  ============================================
task        module                      head / metric
==========  ==========================  ============================================
``dp``      :mod:`.dependency`          biaffine parser; LAS (main), UAS; MST decoding
``ner``     :mod:`.tagging`             linear tagger; seqeval span F1
``sf``      :mod:`.tagging`             linear tagger; seqeval span F1
``id``      :mod:`.classification`      pooled linear classifier; accuracy
``re``      :mod:`.relation`            entity-pair MLP; strict F1 on predicted NER
==========  ==========================  ============================================

:class:`~mtal_ray.tasks.base.Task` is the plugin interface; :data:`TASKS` the registry;
:func:`build_tasks` instantiates plugins with their label vocabularies.
"""

from mtal_ray.tasks.base import Features, Prediction, Task
from mtal_ray.tasks.losses import masked_mean, smoothed_nll
from mtal_ray.tasks.registry import TASKS, build_tasks, label_lists
from mtal_ray.tasks.trees import decode_tree

__all__ = [
    "TASKS",
    "Features",
    "Prediction",
    "Task",
    "build_tasks",
    "decode_tree",
    "label_lists",
    "masked_mean",
    "smoothed_nll",
]
