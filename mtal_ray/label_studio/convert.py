"""Our rows <-> Label Studio: the labeling config, tasks with pre-annotations, and results.

Pure (no network): :mod:`mtal_ray.label_studio.client` talks to the server.

How each kind of task (:mod:`mtal_ray.taskspec`) is shown to annotators:

``tagging`` (``ner``, ``sf``)
    a ``Labels`` control over the sentence (``text``, words joined by single spaces, word
    granularity): one region per entity span, labelled with the entity type.
``sentence`` (``id``)
    a single-choice ``Choices`` control over the sentence.
``relation`` (``re``)
    a ``Relations`` control: a labelled arrow from the head entity's region to the tail's.
``tree`` (``dp``)
    a second text, ``dp_text`` = ``ROOT`` followed by the words, with one region per word
    (label ``word``; ``ROOT`` for the root pseudo-word); each word's head is a labelled
    arrow from the head's region to the word's (the sentence's head hangs from ``ROOT``).

A task carries in its data the sentence id, the run, the round, the requested tasks (a
header says which; tasks not requested get no pre-annotation and are ignored on import;
``dp_text`` is empty when ``dp`` is not requested) and the per-task confidences.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from mtal_ray.data.conllu import tree_problem
from mtal_ray.data.spans import bio_to_spans, spans_to_bio
from mtal_ray.errors import DataFormatError, MtalError
from mtal_ray.taskspec import TASK_SPECS

__all__ = [
    "ROOT",
    "TEXT",
    "TREE_TEXT",
    "Converted",
    "from_annotation",
    "labeling_config",
    "relation_labels",
    "to_task",
    "word_offsets",
]

#: The object tags: the sentence, and the sentence after a root pseudo-word (``dp``).
TEXT = "text"
TREE_TEXT = "dp_text"
#: The root pseudo-word of ``dp_text`` (and the label of its region).
ROOT = "ROOT"
#: Between the words of ``dp_text`` (arc labels between short words overlap otherwise).
TREE_SEP = "\u2003\u2003"
WORD = "word"

_TITLES = {
    "tagging": "{task}: mark each span and pick its type",
    "sentence": "{task}: pick one",
    "relation": "{task}: draw an arrow from the head entity to the tail entity, label it",
    "tree": "{task}: draw an arrow from each word's head to the word and label it (the "
    "sentence's head hangs from ROOT)",
}


def word_offsets(tokens: Sequence[str], prefix: int = 0, sep: str = " ") -> list[tuple[int, int]]:
    """``[start, end)`` of each word in ``sep.join(tokens)`` (after ``prefix`` units), in
    UTF-16 code units: the offsets of Label Studio's text regions (JavaScript strings)."""
    out, at = [], prefix
    for token in tokens:
        out.append((at, at + _units(token)))
        at += _units(token) + _units(sep)
    return out


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def tree_text(tokens: Sequence[str]) -> str:
    """``dp_text``: ``ROOT`` and the words, spaced widely so that arc labels have room."""
    return TREE_SEP.join([ROOT, *tokens])


def tree_offsets(tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Character ``[start, end)`` of ``ROOT`` and of each word in :func:`tree_text`."""
    return [(0, len(ROOT)), *word_offsets(tokens, len(ROOT) + _units(TREE_SEP), TREE_SEP)]


def _entity_types(labels: Sequence[str]) -> list[str]:
    return sorted({tag.partition("-")[2] for tag in labels if tag not in ("O", "") and "-" in tag})


def relation_labels(tasks: Sequence[str], labels: Mapping[str, Sequence[str]]) -> list[str]:
    """The ``Relations`` labels: the deprels (``dp``) or relation types (``re``)."""
    arcs = [t for t in tasks if TASK_SPECS[t].kind in ("tree", "relation")]
    if len(arcs) > 1:
        raise MtalError(f"label-studio: one project cannot hold both {arcs[0]} and {arcs[1]}")
    return sorted(labels.get(arcs[0], [])) if arcs else []


def labeling_config(tasks: Sequence[str], labels: Mapping[str, Sequence[str]]) -> str:
    """The project's labeling config (XML) for ``tasks`` and their label sets."""
    lines = ["<View>", '  <Header value="$asked"/>']

    def header(task: str) -> None:
        title = _TITLES[TASK_SPECS[task].kind].format(task=task)
        lines.append(f'  <Header value={quoteattr(title)} size="5"/>')

    kinds = {t: TASK_SPECS[t].kind for t in tasks}
    # span labels above the sentence (pick a label, then mark the words)
    for task in [t for t in tasks if kinds[t] == "tagging"]:
        header(task)
        lines.append(f'  <Labels name="{task}" toName="{TEXT}" showInline="true">')
        lines += [f"    <Label value={quoteattr(v)}/>" for v in _entity_types(labels[task])]
        lines.append("  </Labels>")
    if any(k != "tree" for k in kinds.values()):
        lines.append(f'  <Text name="{TEXT}" value="${TEXT}" granularity="word"/>')
    for task in [t for t in tasks if kinds[t] in ("sentence", "relation")]:
        header(task)
        if kinds[task] == "sentence":
            lines.append(
                f'  <Choices name="{task}" toName="{TEXT}" choice="single" showInline="true">'
            )
            lines += [f"    <Choice value={quoteattr(v)}/>" for v in sorted(labels[task])]
            lines.append("  </Choices>")
    for task in [t for t in tasks if kinds[t] == "tree"]:
        header(task)
        lines.append(f'  <Labels name="{task}" toName="{TREE_TEXT}" showInline="true">')
        lines.append(f'    <Label value="{WORD}"/>')
        lines.append(f'    <Label value="{ROOT}"/>')
        lines.append("  </Labels>")
        lines.append(f'  <Text name="{TREE_TEXT}" value="${TREE_TEXT}" granularity="word"/>')
    arcs = relation_labels(tasks, labels)
    if arcs:
        lines.append('  <Relations choice="single">')
        lines += [f"    <Relation value={quoteattr(v)}/>" for v in arcs]
        lines.append("  </Relations>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def _region(rid: str, control: str, target: str, start: int, end: int, text: str, label: str):
    return {
        "id": rid,
        "from_name": control,
        "to_name": target,
        "type": "labels",
        "value": {"start": start, "end": end, "text": text, "labels": [label]},
    }


def _relation(head: str, dependent: str, label: str) -> dict[str, Any]:
    return {
        "type": "relation",
        "from_id": head,
        "to_id": dependent,
        "direction": "right",
        "labels": [label],
    }


def prediction_result(row: Mapping[str, Any], tasks: Sequence[str]) -> list[dict[str, Any]]:
    """The Label Studio results that show ``row``'s annotation of ``tasks`` (None: skipped)."""
    tokens: list[str] = list(row["tokens"])
    offsets = word_offsets(tokens)
    out: list[dict[str, Any]] = []
    for task in tasks:
        kind = TASK_SPECS[task].kind
        value = row.get(TASK_SPECS[task].label_column)
        if value is None:
            continue
        if kind == "tagging":
            for k, (start, end, label) in enumerate(bio_to_spans(value)):
                s, e = offsets[start][0], offsets[end - 1][1]
                shown = " ".join(tokens[start:end])
                out.append(_region(f"{task}_{k}", task, TEXT, s, e, shown, label))
        elif kind == "sentence":
            out.append(
                {
                    "from_name": task,
                    "to_name": TEXT,
                    "type": "choices",
                    "value": {"choices": [value]},
                }
            )
        elif kind == "relation":
            source = TASK_SPECS[task].requires[0]
            n_spans = len(bio_to_spans(row.get(TASK_SPECS[source].label_column) or []))
            for rel in value:
                if rel["head"] < n_spans and rel["tail"] < n_spans:
                    head, tail = f"{source}_{rel['head']}", f"{source}_{rel['tail']}"
                    out.append(_relation(head, tail, rel["type"]))
        elif kind == "tree":
            heads = row.get(TASK_SPECS[task].column_names[0])
            if heads is None:
                continue
            deprels = value
            offsets_dp = tree_offsets(tokens)[1:]
            out.append(_region(f"{task}_0", task, TREE_TEXT, 0, len(ROOT), ROOT, ROOT))
            for i, (s, e) in enumerate(offsets_dp):
                out.append(_region(f"{task}_{i + 1}", task, TREE_TEXT, s, e, tokens[i], WORD))
            for i, head in enumerate(heads):
                if head is not None and deprels[i] is not None and 0 <= head <= len(tokens):
                    out.append(_relation(f"{task}_{head}", f"{task}_{i + 1}", deprels[i]))
    return out


def to_task(
    row: Mapping[str, Any],
    tasks: Sequence[str],
    all_tasks: Sequence[str],
    *,
    run: str,
    iteration: int,
    prediction: Mapping[str, Any] | None,
    confidence: Mapping[str, float],
    model_version: str,
) -> dict[str, Any]:
    """One Label Studio task (``data`` + the model's ``predictions``) for sentence ``row``.

    ``tasks`` are the tasks requested for this sentence, ``all_tasks`` the project's;
    ``confidence`` the sentence's confidence per task (its mean over ``tasks`` is the
    pre-annotation's score, so annotators can sort by it).
    """
    tokens = list(row["tokens"])
    asked = [t for t in all_tasks if t in tasks]
    data: dict[str, Any] = {
        TEXT: " ".join(tokens),
        "asked": f"round {iteration}: annotate {', '.join(asked)}"
        + (
            f" (not {', '.join(t for t in all_tasks if t not in tasks)})"
            if len(asked) < len(all_tasks)
            else ""
        ),
        "mtal_id": row["id"],
        "mtal_run": run,
        "mtal_round": iteration,
        "mtal_tasks": list(asked),
    }
    if "dp" in all_tasks:
        data[TREE_TEXT] = tree_text(tokens) if "dp" in tasks else ""
    scores = [float(confidence[t]) for t in asked if t in confidence]
    for task in asked:
        if task in confidence:
            data[f"confidence_{task}"] = round(float(confidence[task]), 6)
    task: dict[str, Any] = {"data": data}
    if prediction is not None:
        score = sum(scores) / len(scores) if scores else None
        entry: dict[str, Any] = {
            "model_version": model_version,
            "result": prediction_result(prediction, asked),
        }
        if score is not None:
            entry["score"] = round(score, 6)
        task["predictions"] = [entry]
    return task


@dataclass(frozen=True)
class Converted:
    """One sentence's annotation as a row of our data contract, and how long it took."""

    row: dict[str, Any]
    seconds: float | None


def _words_of(start: int, end: int, offsets: Sequence[tuple[int, int]]) -> list[int]:
    return [i for i, (s, e) in enumerate(offsets) if s < end and start < e]


def from_annotation(
    result: Sequence[Mapping[str, Any]],
    *,
    sid: str,
    tokens: Sequence[str],
    tasks: Sequence[str],
    where: str,
) -> dict[str, Any]:
    """Our row (``id``, ``tokens`` and the columns of ``tasks``) from an annotation's result.

    Results of tasks not in ``tasks`` are ignored. ``where`` names the task in errors.

    Raises
    ------
    DataFormatError
        A span over no word, overlapping spans of one task, a span or arrow without
        exactly one label, a word with no head or several, a tree that is not a tree.
    """
    tokens = list(tokens)
    offsets = word_offsets(tokens)
    offsets_dp = tree_offsets(tokens)
    row: dict[str, Any] = {"id": sid, "tokens": tokens}
    regions = {r["id"]: r for r in result if r.get("type") == "labels" and "id" in r}
    relations = [r for r in result if r.get("type") == "relation"]

    def fail(problem: str) -> DataFormatError:
        return DataFormatError(where, None, f"sentence {sid!r}: {problem}")

    def one_label(item: Mapping[str, Any], what: str) -> str:
        labels = item.get("labels") or item.get("value", {}).get("labels") or []
        if len(labels) != 1:
            raise fail(f"{what} has {len(labels)} labels, needs exactly one")
        return str(labels[0])

    region_words: dict[str, list[int]] = {}
    for task in tasks:
        kind = TASK_SPECS[task].kind
        if kind == "tagging":
            spans = []
            for rid, region in regions.items():
                if region.get("from_name") != task:
                    continue
                value = region["value"]
                words = _words_of(int(value["start"]), int(value["end"]), offsets)
                if not words:
                    raise fail(f"{task} span {value.get('text', '')!r} covers no word")
                spans.append((words[0], words[-1] + 1, one_label(region, f"{task} span"), rid))
            spans.sort()
            for a, b in itertools.pairwise(spans):
                if b[0] < a[1]:
                    raise fail(
                        f"{task} spans {' '.join(tokens[a[0] : a[1]])!r} and "
                        f"{' '.join(tokens[b[0] : b[1]])!r} overlap"
                    )
            row[TASK_SPECS[task].label_column] = spans_to_bio(
                len(tokens), [(s, e, label) for s, e, label, _ in spans]
            )
            for k, (*_, rid) in enumerate(spans):
                region_words[rid] = [k]
        elif kind == "sentence":
            chosen = [
                c
                for r in result
                if r.get("from_name") == task and r.get("type") == "choices"
                for c in r["value"].get("choices", [])
            ]
            if len(chosen) > 1:
                raise fail(f"{task} has {len(chosen)} choices, needs one")
            row[TASK_SPECS[task].label_column] = chosen[0] if chosen else None
        elif kind == "tree":
            word_of: dict[str, int] = {}
            for rid, region in regions.items():
                if region.get("from_name") != task:
                    continue
                value = region["value"]
                words = _words_of(int(value["start"]), int(value["end"]), offsets_dp)
                if len(words) != 1:
                    raise fail(f"{task} region {value.get('text', '')!r} must cover one word")
                word_of[rid] = words[0]
            heads: list[int | None] = [None] * len(tokens)
            deprels: list[str | None] = [None] * len(tokens)
            for rel in relations:
                ends = rel.get("from_id"), rel.get("to_id")
                if ends[0] not in word_of or ends[1] not in word_of:
                    continue
                head, dep = word_of[ends[0]], word_of[ends[1]]
                if rel.get("direction") == "left":
                    head, dep = dep, head
                elif rel.get("direction") == "bi":
                    raise fail(f"{task} arrow between words {head} and {dep} has two heads")
                if dep == 0:
                    raise fail(f"{task}: an arrow points at ROOT")
                if heads[dep - 1] is not None:
                    raise fail(f"{task}: word {dep} {tokens[dep - 1]!r} has more than one head")
                heads[dep - 1] = head
                deprels[dep - 1] = one_label(rel, f"{task} arrow to word {dep}")
            if all(h is None for h in heads):
                row["dp.head"], row["dp.deprel"] = None, None
                continue
            missing = [i for i, h in enumerate(heads) if h is None]
            if missing:
                raise fail(f"{task}: word {missing[0] + 1} {tokens[missing[0]]!r} has no head")
            problem = tree_problem([int(h) for h in heads if h is not None])
            if problem is not None:
                raise fail(f"{task}: {problem[1]}")
            row["dp.head"], row["dp.deprel"] = heads, deprels
    for task in tasks:
        if TASK_SPECS[task].kind != "relation":
            continue
        source = TASK_SPECS[task].requires[0]
        found = []
        for rel in relations:
            ends = rel.get("from_id"), rel.get("to_id")
            if ends[0] not in region_words or ends[1] not in region_words:
                continue
            if regions[ends[0]].get("from_name") != source:
                continue
            head, tail = region_words[ends[0]][0], region_words[ends[1]][0]
            if rel.get("direction") == "left":
                head, tail = tail, head
            elif rel.get("direction") == "bi":
                raise fail(f"{task}: a relation must point one way")
            found.append({"head": head, "tail": tail, "type": one_label(rel, f"{task} relation")})
        row[TASK_SPECS[task].label_column] = sorted(
            found, key=lambda r: (r["head"], r["tail"], r["type"])
        )
    return row
