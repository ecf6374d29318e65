"""Multi-task models on a tiny random BERT: overfitting, sharing schemes, gating, masking."""

from __future__ import annotations

import pydantic
import pytest
import torch
from models_sample_rows import ALL_TASKS, multitask_table

from mtal_ray.data.vocab import build_vocabs
from mtal_ray.errors import ConfigError
from mtal_ray.models import ModelConfig, build_model, deterministic, mc_dropout, predict
from mtal_ray.models.sharing import Gate, GatedTopLayers
from mtal_ray.models.tiny import make_tiny_encoder
from mtal_ray.tasks import build_tasks


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder")


def make(tiny: str, tasks: list[str], sharing: str = "smt", **kw: object):
    table = multitask_table()
    torch.manual_seed(0)
    model, collator = build_model(
        build_tasks(tasks, build_vocabs(table, tasks)),
        ModelConfig(encoder=tiny, sharing=sharing, dropout=0.0, **kw),
    )
    return model, collator, table


@pytest.mark.parametrize("task", ALL_TASKS)
def test_each_head_overfits_a_tiny_batch(tiny: str, task: str) -> None:
    tasks = ["ner", "re"] if task == "re" else [task]
    model, collator, table = make(tiny, tasks)
    batch = collator(table)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = last = None
    for _ in range(40):
        loss = model(batch)[task]
        optimizer.zero_grad()
        (sum(model(batch).values())).backward()
        optimizer.step()
        first = loss.item() if first is None else first
        last = loss.item()
    assert last < 0.25 * first


def test_overfit_model_predicts_its_training_rows(tiny: str) -> None:
    model, collator, table = make(tiny, ["sf", "id"])
    batch = collator(table)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        optimizer.zero_grad()
        sum(model(batch).values()).backward()
        optimizer.step()
    out = predict(model, collator, table)
    assert out.column("sf.tags").to_pylist() == table.column("sf.tags").to_pylist()
    assert out.column("id.label").to_pylist()[:3] == table.column("id.label").to_pylist()[:3]
    assert out.column("id").to_pylist() == table.column("id").to_pylist()


def test_missing_task_gets_exactly_zero_gradient(tiny: str) -> None:
    model, collator, table = make(tiny, ["dp", "ner", "id"])
    # rows d (dp null, id null): the dp and id heads must get zero gradient from it
    batch = collator(table.slice(3, 1))
    losses = model(batch)
    assert losses["dp"].item() == 0.0 and losses["id"].item() == 0.0
    model.zero_grad()
    sum(losses.values()).backward()
    for name in ("dp", "id"):
        for param in model.heads[name].parameters():
            assert param.grad is None or torch.count_nonzero(param.grad) == 0
    assert any(torch.count_nonzero(p.grad) > 0 for p in model.heads["ner"].parameters())


def test_unannotated_rows_do_not_change_a_task_loss(tiny: str) -> None:
    model, collator, table = make(tiny, ["dp", "ner"])
    with deterministic(model):
        alone = model(collator(table.slice(0, 3)))["dp"]
        with_unannotated = model(collator(table))["dp"]  # row d has dp = null
    assert with_unannotated.item() == pytest.approx(alone.item(), rel=1e-5)


def test_cmt_structure_gating_shapes_and_padding_invariance(tiny: str) -> None:
    model, collator, table = make(tiny, ["ner", "sf"], sharing="cmt", cmt_shared_layers=2)
    scheme = model.sharing
    assert isinstance(scheme, GatedTopLayers)
    assert len(scheme.bottom.encoder.layer) == 2
    assert len(scheme.shared_top) == 1
    assert set(scheme.task_top) == {"ner", "sf"}
    # task copies start equal to the shared copy but are distinct parameters
    shared_w = scheme.shared_top[0].output.dense.weight
    ner_w = scheme.task_top["ner"][0].output.dense.weight
    assert torch.equal(shared_w, ner_w) and shared_w.data_ptr() != ner_w.data_ptr()
    batch = collator(table)
    with deterministic(model):
        states = scheme(batch.input_ids, batch.attention_mask)
        alone = collator(table.slice(1, 1))
        states_alone = scheme(alone.input_ids, alone.attention_mask)
    assert set(states) == {"ner", "sf"}
    assert states["ner"].shape == (*batch.input_ids.shape, 32)
    # row b is shorter than the batch: padding must not change its real positions
    n = alone.input_ids.size(1)
    assert torch.allclose(states["ner"][1, :n], states_alone["ner"][0], atol=1e-5)


def test_gate_formula() -> None:
    gate = Gate(2)
    with torch.no_grad():
        gate.linear.weight.zero_()
        gate.linear.bias.copy_(torch.tensor([0.0, 100.0]))
    s, u = torch.tensor([[1.0, 1.0]]), torch.tensor([[3.0, 3.0]])
    # a = [0.5, ~1]: g = [0.5*1 + 0.5*3, ~1]
    assert torch.allclose(gate(s, u), torch.tensor([[2.0, 1.0]]), atol=1e-4)


def test_default_split_is_two_thirds_of_the_layers(tiny: str) -> None:
    model, _, _ = make(tiny, ["ner"], sharing="cmt")
    assert model.sharing.split == 2  # round(2/3 * 3)


def test_sharing_config_errors(tiny: str) -> None:
    with pytest.raises(ConfigError, match="'st' trains one task"):
        make(tiny, ["ner", "sf"], sharing="st")
    with pytest.raises(ConfigError, match="cmt_shared_layers"):
        make(tiny, ["ner"], sharing="cmt", cmt_shared_layers=3)
    with pytest.raises(pydantic.ValidationError, match="unknown sharing scheme"):
        ModelConfig(sharing="nope")
    with pytest.raises(ConfigError, match="needs task 'ner'"):
        build_tasks(["re"], {"re": ["Live_In"]})


def test_probability_shapes_and_mc_dropout(tiny: str) -> None:
    table = multitask_table()
    torch.manual_seed(0)
    model, collator = build_model(
        build_tasks(ALL_TASKS, build_vocabs(table, ALL_TASKS)),
        ModelConfig(encoder=tiny, dropout=0.5),
    )
    batch = collator(table, with_targets=False)
    with deterministic(model):
        p1 = model.predict_proba(batch, entities="gold")
        p2 = model.predict_proba(batch, entities="gold")
    b, w = 4, 6
    assert p1["dp"]["arc_probs"].shape == (b, w, w + 1)
    assert torch.allclose(p1["dp"]["arc_probs"].sum(-1)[batch.word_mask], torch.ones(15))
    assert p1["dp"]["label_probs"].shape == (b, w, 6)
    assert p1["ner"]["probs"].shape == (b, w, len(model.tasks["ner"].labels))
    assert p1["id"]["probs"].shape == (b, 3)
    assert p1["re"]["pairs"][2] == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    assert p1["re"]["pair_probs"].shape == (b, 6, 4)  # <none> + 3 relation types
    assert torch.equal(p1["ner"]["probs"], p2["ner"]["probs"])
    with mc_dropout(model):
        q1 = model.predict_proba(batch)["ner"]["probs"]
        q2 = model.predict_proba(batch)["ner"]["probs"]
        # Attention-probability dropout too: HF attention modules drop out on their own
        # training flag, so MC dropout must switch them on as training does.
        attention = [m for m in model.modules() if type(m).__name__.endswith("SelfAttention")]
        assert attention and all(m.training for m in attention)
        assert not any(m.training for m in model.modules() if isinstance(m, torch.nn.LayerNorm))
    assert not torch.equal(q1, q2)
    assert model.training  # modes restored (build_model leaves the model in train mode)
