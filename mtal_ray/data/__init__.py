"""The data layer: corpus readers/writers, the example-table contract, vocabularies, splits.

See :mod:`mtal_ray.data.schema` for the contract every other part of mtal_ray builds on.

Names are exported lazily (PEP 562): ``from mtal_ray.data.atomic import ...`` (say, in
the ``select`` command) imports that module only, not every reader.
"""

from typing import TYPE_CHECKING

from mtal_ray.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from mtal_ray.data.conll import (
        read_conll,
        write_conll,
    )
    from mtal_ray.data.conllu import (
        read_conllu,
        write_conllu,
    )
    from mtal_ray.data.convert import (
        convert_corpus,
    )
    from mtal_ray.data.corpus import (
        FORMATS,
        Corpus,
        detect_format,
        load_corpus,
        split_path,
        write_split,
    )
    from mtal_ray.data.jsonl import (
        read_jsonl,
        write_jsonl,
    )
    from mtal_ray.data.schema import (
        TASK_COLUMNS,
        annotated_mask,
        make_table,
        task_columns,
        tasks_in,
    )
    from mtal_ray.data.slu import (
        read_slu,
        write_slu,
    )
    from mtal_ray.data.spans import (
        OVERLAP_POLICIES,
        bio_errors,
        bio_to_spans,
        resolve_overlaps,
        spans_to_bio,
    )
    from mtal_ray.data.splits import (
        ALSplit,
        make_al_split,
        take_ids,
    )
    from mtal_ray.data.synthetic import (
        make_synthetic_corpus,
        write_synthetic_corpus,
    )
    from mtal_ray.data.vocab import (
        LabelVocab,
        build_vocab,
        build_vocabs,
        label_counts,
        unseen_labels,
    )

#: Public name -> the module defining it, imported on first use.
_EXPORTS = {
    "read_conll": "mtal_ray.data.conll",
    "write_conll": "mtal_ray.data.conll",
    "read_conllu": "mtal_ray.data.conllu",
    "write_conllu": "mtal_ray.data.conllu",
    "convert_corpus": "mtal_ray.data.convert",
    "FORMATS": "mtal_ray.data.corpus",
    "Corpus": "mtal_ray.data.corpus",
    "detect_format": "mtal_ray.data.corpus",
    "load_corpus": "mtal_ray.data.corpus",
    "split_path": "mtal_ray.data.corpus",
    "write_split": "mtal_ray.data.corpus",
    "read_jsonl": "mtal_ray.data.jsonl",
    "write_jsonl": "mtal_ray.data.jsonl",
    "TASK_COLUMNS": "mtal_ray.data.schema",
    "annotated_mask": "mtal_ray.data.schema",
    "make_table": "mtal_ray.data.schema",
    "task_columns": "mtal_ray.data.schema",
    "tasks_in": "mtal_ray.data.schema",
    "read_slu": "mtal_ray.data.slu",
    "write_slu": "mtal_ray.data.slu",
    "OVERLAP_POLICIES": "mtal_ray.data.spans",
    "bio_errors": "mtal_ray.data.spans",
    "bio_to_spans": "mtal_ray.data.spans",
    "resolve_overlaps": "mtal_ray.data.spans",
    "spans_to_bio": "mtal_ray.data.spans",
    "ALSplit": "mtal_ray.data.splits",
    "make_al_split": "mtal_ray.data.splits",
    "take_ids": "mtal_ray.data.splits",
    "make_synthetic_corpus": "mtal_ray.data.synthetic",
    "write_synthetic_corpus": "mtal_ray.data.synthetic",
    "LabelVocab": "mtal_ray.data.vocab",
    "build_vocab": "mtal_ray.data.vocab",
    "build_vocabs": "mtal_ray.data.vocab",
    "label_counts": "mtal_ray.data.vocab",
    "unseen_labels": "mtal_ray.data.vocab",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())


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
