"""The data layer: corpus readers/writers, the example-table contract, vocabularies, splits.

See :mod:`mtal_ray.data.schema` for the contract every other part of mtal_ray builds on.
"""

from mtal_ray.data.conll import read_conll, write_conll
from mtal_ray.data.conllu import read_conllu, write_conllu
from mtal_ray.data.convert import convert_corpus
from mtal_ray.data.corpus import (
    FORMATS,
    Corpus,
    detect_format,
    load_corpus,
    split_path,
    write_split,
)
from mtal_ray.data.jsonl import read_jsonl, write_jsonl
from mtal_ray.data.schema import TASK_COLUMNS, annotated_mask, make_table, task_columns, tasks_in
from mtal_ray.data.slu import read_slu, write_slu
from mtal_ray.data.spans import (
    OVERLAP_POLICIES,
    bio_errors,
    bio_to_spans,
    resolve_overlaps,
    spans_to_bio,
)
from mtal_ray.data.splits import ALSplit, make_al_split, take_ids
from mtal_ray.data.synthetic import make_synthetic_corpus, write_synthetic_corpus
from mtal_ray.data.vocab import LabelVocab, build_vocab, build_vocabs, label_counts, unseen_labels

__all__ = [
    "FORMATS",
    "OVERLAP_POLICIES",
    "TASK_COLUMNS",
    "ALSplit",
    "Corpus",
    "LabelVocab",
    "annotated_mask",
    "bio_errors",
    "bio_to_spans",
    "build_vocab",
    "build_vocabs",
    "convert_corpus",
    "detect_format",
    "label_counts",
    "load_corpus",
    "make_al_split",
    "make_synthetic_corpus",
    "make_table",
    "read_conll",
    "read_conllu",
    "read_jsonl",
    "read_slu",
    "resolve_overlaps",
    "spans_to_bio",
    "split_path",
    "take_ids",
    "task_columns",
    "tasks_in",
    "unseen_labels",
    "write_conll",
    "write_conllu",
    "write_jsonl",
    "write_slu",
    "write_split",
    "write_synthetic_corpus",
]
