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
            message = f"tag {tag!r} is neither O nor B-<type>/I-<type>"
            if prefix in ("S", "E", "L", "U") and sep and label:
                message += " (BIOES/BILOU tags: convert to BIO, S-/U- to B-, E-/L- to I-)"
            errors.append((i, message))
        elif prefix == "I" and (prev == "O" or prev.partition("-")[2] != label):
            errors.append((i, f"tag {tag!r} follows {prev!r} (I- must continue an entity)"))
        prev = tag
    return errors


#: Values of ``data.overlapping_entities`` (``--overlapping-entities``).
OVERLAP_POLICIES = ("error", "keep-longest", "keep-shortest")


def first_overlap(spans: Sequence[Span]) -> tuple[int, int] | None:
    """Indices ``(a, b)`` of the first two overlapping spans (``a`` starts first), or ``None``.

    >>> first_overlap([(0, 2, "A"), (4, 5, "B"), (1, 3, "C")])
    (0, 2)
    """
    order = sorted(range(len(spans)), key=lambda i: (spans[i][0], i))
    widest = -1  # the span reaching furthest right so far
    for i in order:
        if widest >= 0 and spans[i][0] < spans[widest][1]:
            return widest, i
        if widest < 0 or spans[i][1] > spans[widest][1]:
            widest = i
    return None


def resolve_overlaps(spans: Sequence[Span], policy: str) -> list[int]:
    """Indices of the spans kept under ``policy`` (in start order); none of them overlap.

    ``keep-longest`` keeps the longest mentions, ``keep-shortest`` the shortest (the
    innermost of nested ones): mentions are taken longest (shortest) first, ties by
    start, and each is kept unless it overlaps one already kept. With ``error`` (or when
    nothing overlaps) every span is kept.

    >>> resolve_overlaps([(0, 4, "Task"), (1, 2, "Method")], "keep-longest")
    [0]
    >>> resolve_overlaps([(0, 4, "Task"), (1, 2, "Method"), (3, 4, "M")], "keep-shortest")
    [1, 2]
    """
    if policy not in OVERLAP_POLICIES:
        raise ValueError(f"unknown overlapping-entities policy {policy!r}")
    if policy == "error" or first_overlap(spans) is None:
        return sorted(range(len(spans)), key=lambda i: (spans[i][0], i))
    sign = -1 if policy == "keep-longest" else 1
    candidates = sorted(
        range(len(spans)), key=lambda i: (sign * (spans[i][1] - spans[i][0]), spans[i][0], i)
    )
    kept: list[int] = []
    for i in candidates:
        start, end = spans[i][0], spans[i][1]
        if all(end <= spans[k][0] or spans[k][1] <= start for k in kept):
            kept.append(i)
    return sorted(kept, key=lambda i: spans[i][0])
