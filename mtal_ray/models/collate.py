"""Arrow rows -> tensors: sub-word tokenization, word alignment and task targets.

A word is represented by its first sub-word. Words the tokenizer maps to no sub-word
(e.g. a lone zero-width character) take the previous word's sub-word; words cut off by
``max_subwords`` take the last kept sub-word. So every word of ``tokens`` has a vector and
a prediction, and ``word_mask`` is exactly "is a real word".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import torch
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mtal_ray.data.spans import Span
from mtal_ray.tasks.base import Task
from mtal_ray.tasks.relation import gold_entities


@dataclass
class Batch:
    """One collated batch.

    Attributes
    ----------
    ids
        Row ids, in batch order.
    table
        The Arrow rows of the batch (gold columns for evaluation).
    input_ids, attention_mask
        ``[batch, subwords]`` encoder inputs.
    word_index
        ``[batch, words]`` sub-word position representing each word.
    word_mask
        ``[batch, words]`` bool, true for real words.
    n_words
        Words per row.
    targets
        Task -> target tensors (see each task's ``targets``); empty without targets.
    gold_entities
        Per row, the gold ``ner.tags`` spans (empty where absent; ``re`` trains on them).
    """

    ids: list[str]
    table: pa.Table
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    word_index: torch.Tensor
    word_mask: torch.Tensor
    n_words: list[int]
    targets: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    gold_entities: list[list[Span]] = field(default_factory=list)

    def to(self, device: torch.device | str) -> Batch:
        """The batch with its tensors on ``device``."""
        move = lambda t: t.to(device)  # noqa: E731
        return Batch(
            ids=self.ids,
            table=self.table,
            input_ids=move(self.input_ids),
            attention_mask=move(self.attention_mask),
            word_index=move(self.word_index),
            word_mask=move(self.word_mask),
            n_words=self.n_words,
            targets={k: {n: move(t) for n, t in v.items()} for k, v in self.targets.items()},
            gold_entities=self.gold_entities,
        )


class Collator:
    """Turns a ``pyarrow.Table`` slice into a :class:`Batch`.

    Parameters
    ----------
    tokenizer
        A fast Hugging Face tokenizer.
    tasks
        Task plugins whose targets to build.
    max_subwords
        Sub-word limit per sentence (including special tokens).
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        tasks: Mapping[str, Task],
        max_subwords: int = 512,
    ) -> None:
        self.tokenizer = tokenizer
        self.tasks = dict(tasks)
        self.max_subwords = max_subwords

    def __call__(self, table: pa.Table, with_targets: bool = True) -> Batch:
        """Collate ``table`` (rows need ``id`` and ``tokens``; task columns if targets)."""
        words = [list(t or []) for t in table.column("tokens").to_pylist()]
        n_words = [len(w) for w in words]
        max_words = max([*n_words, 1])
        encoded = self.tokenizer(
            [w if w else [""] for w in words],
            is_split_into_words=True,
            truncation=True,
            max_length=self.max_subwords,
            padding=True,
            return_tensors="pt",
        )
        word_index = torch.zeros(len(words), max_words, dtype=torch.long)
        word_mask = torch.zeros(len(words), max_words, dtype=torch.bool)
        for row, n in enumerate(n_words):
            first: dict[int, int] = {}
            last_position = 0
            for position, word in enumerate(encoded.word_ids(row)):
                if word is not None:
                    first.setdefault(word, position)
                    last_position = position
            previous = 0
            for i in range(n):
                if i in first:
                    previous = first[i]
                elif i > max(first, default=-1):
                    previous = last_position
                word_index[row, i] = previous
            word_mask[row, :n] = True
        batch = Batch(
            ids=[str(x) for x in table.column("id").to_pylist()],
            table=table,
            input_ids=encoded["input_ids"],
            attention_mask=encoded["attention_mask"],
            word_index=word_index,
            word_mask=word_mask,
            n_words=n_words,
            gold_entities=gold_entities(table),
        )
        if with_targets:
            batch.targets = {
                name: task.targets(table, max_words) for name, task in self.tasks.items()
            }
        return batch
