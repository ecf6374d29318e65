"""Corpus statistics: sentences, tokens and label counts per split and task."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mtal_ray.data.corpus import Corpus
from mtal_ray.data.schema import annotated_mask
from mtal_ray.data.spans import bio_to_spans
from mtal_ray.data.vocab import build_vocabs, label_counts, unseen_labels
from mtal_ray.taskspec import task_spec


def task_label_counts(table: pa.Table, task: str) -> dict[str, int]:
    """Counts reported per task: DEPREL for ``dp``, entity types for ``ner``/``sf``
    (spans, not tags), intents for ``id``, relation types for ``re``."""
    spec = task_spec(task)
    if spec.bio:
        counts: Counter[str] = Counter()
        for tags in table.column(spec.label_column).to_pylist():
            if tags is not None:
                counts.update(kind for _, _, kind in bio_to_spans(tags))
        return dict(sorted(counts.items()))
    return dict(sorted(label_counts(table, task).items()))


def split_stats(table: pa.Table, tasks: list[str]) -> dict[str, Any]:
    """Statistics of one split."""
    lengths = pc.list_value_length(table.column("tokens"))
    stats: dict[str, Any] = {
        "sentences": table.num_rows,
        "tokens": int(pc.sum(lengths).as_py() or 0),
        "tasks": {},
    }
    for task in tasks:
        annotated = sum(annotated_mask(table, task))
        entry: dict[str, Any] = {"annotated": annotated, "labels": task_label_counts(table, task)}
        if task_spec(task).bio:
            entry["entities"] = sum(entry["labels"].values())
        stats["tasks"][task] = entry
    return stats


def corpus_stats(corpus: Corpus) -> dict[str, Any]:
    """Statistics of every split, plus labels of other splits unseen in ``train``.

    Each split also says what its reader accepted in a non-canonical form (``normalised``:
    kind -> count, empty for canonical files) and, when an ``overlapping_entities`` policy
    kept one of several overlapping mentions, how many entities and relations it dropped.
    """
    tasks = corpus.tasks
    splits: dict[str, Any] = {}
    for name, table in corpus.splits.items():
        splits[name] = split_stats(table, tasks)
        report = corpus.report.get(name, {})
        splits[name]["normalised"] = dict(report.get("normalised", {}))
        splits[name]["dropped_entities"] = int(report.get("dropped_entities", 0))
        splits[name]["dropped_relations"] = int(report.get("dropped_relations", 0))
    result: dict[str, Any] = {
        "path": str(corpus.path),
        "format": corpus.format,
        "tasks": tasks,
        "splits": splits,
    }
    if corpus.format == "jsonl" or corpus.overlapping_entities != "error":
        result["overlapping_entities"] = corpus.overlapping_entities
    if "train" in corpus.splits and tasks:
        vocabs = build_vocabs(corpus.splits["train"], tasks)
        unseen = {
            name: report
            for name, table in corpus.splits.items()
            if name != "train" and (report := unseen_labels(vocabs, table))
        }
        result["unseen_in_train"] = unseen
    return result
