"""BIO tags <-> entity spans."""

from __future__ import annotations

from collections.abc import Sequence

Span = tuple[int, int, str]
"""An entity mention: (start, end exclusive, type)."""


def bio_to_spans(tags: Sequence[str]) -> list[Span]:
    """Entity spans of a BIO sequence, ordered by start.

    An ``I-X`` that does not continue an ``X`` entity starts a new one (the lenient
    reading used by conlleval/seqeval); :func:`bio_errors` reports such tags.

    >>> bio_to_spans(["B-PER", "I-PER", "O", "I-LOC"])
    [(0, 2, 'PER'), (3, 4, 'LOC')]
    """
    spans: list[Span] = []
    start, kind = -1, ""
    for i, tag in enumerate(tags):
        prefix, _, label = tag.partition("-")
        if prefix == "I" and kind == label and start >= 0:
            continue
        if start >= 0:
            spans.append((start, i, kind))
            start, kind = -1, ""
        if prefix in ("B", "I") and label:
            start, kind = i, label
    if start >= 0:
        spans.append((start, len(tags), kind))
    return spans


def spans_to_bio(n_words: int, spans: Sequence[Span]) -> list[str]:
    """BIO tags for ``n_words`` words with the given non-overlapping spans."""
    tags = ["O"] * n_words
    for start, end, kind in spans:
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end):
            tags[i] = f"I-{kind}"
    return tags


def bio_errors(tags: Sequence[str]) -> list[tuple[int, str]]:
    """Positions and messages of tags that break strict BIO (malformed or dangling ``I-``)."""
    errors = []
    prev = "O"
    for i, tag in enumerate(tags):
        prefix, sep, label = tag.partition("-")
        if tag != "O" and (prefix not in ("B", "I") or not sep or not label):
            errors.append((i, f"tag {tag!r} is neither O nor B-<type>/I-<type>"))
        elif prefix == "I" and (prev == "O" or prev.partition("-")[2] != label):
            errors.append((i, f"tag {tag!r} follows {prev!r} (I- must continue an entity)"))
        prev = tag
    return errors
