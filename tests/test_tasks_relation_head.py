"""The relation head's pair logits: the projected fast path (dropout off) against the
plain MLP over gathered mention vectors, on random sentences and mention counts."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtal_ray.tasks.base import Features
from mtal_ray.tasks.relation import PairHead, entity_pairs

HIDDEN, CLASSES = 24, 5


def reference_logits(head: PairHead, words: torch.Tensor, entities: list) -> torch.Tensor:
    """The definition: the MLP over ``[h_first; h_last; t_first; t_last]`` of each pair."""
    pairs = [entity_pairs(len(row)) for row in entities]
    n_pairs = max(max((len(p) for p in pairs), default=0), 1)
    out = torch.zeros(words.size(0), n_pairs, CLASSES)
    for row, (spans, row_pairs) in enumerate(zip(entities, pairs, strict=True)):
        for k, (h, t) in enumerate(row_pairs):
            vec = torch.cat(
                [
                    words[row, spans[h][0]],
                    words[row, spans[h][1] - 1],
                    words[row, spans[t][0]],
                    words[row, spans[t][1] - 1],
                ]
            )
            out[row, k] = head.mlp(vec)
    return out


def sentences(draw_counts: list[int], length: int, seed: int) -> tuple[torch.Tensor, list]:
    rng = torch.Generator().manual_seed(seed)
    words = torch.randn(len(draw_counts), length, HIDDEN, generator=rng)
    entities = []
    for n in draw_counts:
        row = []
        for _ in range(n):
            start = int(torch.randint(0, length, (1,), generator=rng))
            end = int(torch.randint(start + 1, length + 1, (1,), generator=rng))
            row.append((start, end, "X"))
        entities.append(row)
    return words, entities


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 7), min_size=1, max_size=4),
    length=st.integers(1, 9),
    seed=st.integers(0, 1000),
)
def test_projected_pair_logits_equal_the_mlp_over_gathered_mentions(counts, length, seed):
    torch.manual_seed(seed)
    head = PairHead(HIDDEN, CLASSES, dropout=0.3, dim=16).eval()
    words, entities = sentences(counts, length, seed)
    features = Features(
        words, torch.ones(words.shape[:2], dtype=torch.bool), words[:, 0], words[:, 0]
    )

    with torch.no_grad():
        logits, mask, pairs = head(features, entities)
    expected = reference_logits(head, words, entities)

    assert pairs == [entity_pairs(len(row)) for row in entities]
    for row, row_pairs in enumerate(pairs):
        assert mask[row].tolist() == [True] * len(row_pairs) + [False] * (
            mask.size(1) - len(row_pairs)
        )
        n = len(row_pairs)
        torch.testing.assert_close(logits[row, :n], expected[row, :n], rtol=1e-5, atol=1e-5)


def test_training_keeps_the_padded_pairs_and_their_dropout() -> None:
    """In training (gradients on) the head runs the MLP over the padded pairs, as it always
    did: the same seed gives the reference's numbers exactly."""
    head = PairHead(HIDDEN, CLASSES, dropout=0.3, dim=16).train()
    words, entities = sentences([3, 2], 6, seed=7)
    features = Features(
        words, torch.ones(words.shape[:2], dtype=torch.bool), words[:, 0], words[:, 0]
    )
    torch.manual_seed(1)
    logits, _, _ = head(features, entities)
    torch.manual_seed(1)
    hidden = words.size(-1)
    index = torch.zeros(2, 6, 4, dtype=torch.long)
    for row, spans in enumerate(entities):
        for k, (h, t) in enumerate(entity_pairs(len(spans))):
            index[row, k] = torch.tensor(
                [spans[h][0], spans[h][1] - 1, spans[t][0], spans[t][1] - 1]
            )
    gathered = words.gather(1, index.view(2, -1, 1).expand(-1, -1, hidden)).view(2, 6, 4 * hidden)
    torch.testing.assert_close(logits, head.mlp(gathered), rtol=0, atol=0)


def test_mc_dropout_draws_masks_for_the_real_pairs_only() -> None:
    """Without gradients and with dropout on (MC dropout), the MLP runs over the real
    pairs' gathered mention vectors: the same seed gives exactly the reference built from
    those rows (each pair its own masks), and padding pairs get 0."""
    head = PairHead(HIDDEN, CLASSES, dropout=0.3, dim=16).train()
    words, entities = sentences([3, 2], 6, seed=5)
    features = Features(
        words, torch.ones(words.shape[:2], dtype=torch.bool), words[:, 0], words[:, 0]
    )
    torch.manual_seed(2)
    with torch.no_grad():
        logits, mask, _ = head(features, entities)
    rows = []
    for row, spans in enumerate(entities):
        for h, t in entity_pairs(len(spans)):
            rows.append(
                torch.cat([words[row, spans[h][0]], words[row, spans[h][1] - 1],
                           words[row, spans[t][0]], words[row, spans[t][1] - 1]])
            )  # fmt: skip
    torch.manual_seed(2)
    with torch.no_grad():
        expected = head.mlp(torch.stack(rows))
    torch.testing.assert_close(logits[mask], expected, rtol=0, atol=0)
    assert torch.all(logits[~mask] == 0)


def test_padding_pairs_get_zero_logits_without_gradients() -> None:
    head = PairHead(HIDDEN, CLASSES, dropout=0.3, dim=16).eval()
    words, entities = sentences([4, 2, 0], 6, seed=3)
    features = Features(
        words, torch.ones(words.shape[:2], dtype=torch.bool), words[:, 0], words[:, 0]
    )
    with torch.no_grad():
        logits, mask, _ = head(features, entities)
    assert logits.shape == (3, 12, CLASSES)
    assert torch.all(logits[~mask] == 0) and mask.sum().item() == 12 + 2


def test_with_gradients_every_parameter_is_in_the_graph_even_without_pairs() -> None:
    """Training with dropout 0 (and no mentions in a batch) still takes the plain path, so
    DDP sees a gradient for every parameter of the head."""
    head = PairHead(HIDDEN, CLASSES, dropout=0.0, dim=16).train()
    words, entities = sentences([0, 1], 5, seed=4)
    features = Features(
        words, torch.ones(words.shape[:2], dtype=torch.bool), words[:, 0], words[:, 0]
    )
    logits, _, _ = head(features, entities)
    logits.sum().backward()
    assert all(p.grad is not None for p in head.parameters())
