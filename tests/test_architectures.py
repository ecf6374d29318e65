"""Hierarchical supervision (HMTL) and the shared-cell LSTM (SC-LSTM) on a tiny random BERT.

* hierarchical: read-out layers (explicit and by task level), a low task's gradient stops
  at its read-out layer, shortcut features are ``[layer output; embeddings]``;
* SC-LSTM: one cell step against hand-computed eq. 1-3 values, task gates updated only by
  their own task, padding-independent bidirectional outputs, frozen / embeddings-only input.
"""

from __future__ import annotations

import pydantic
import pytest
import torch
from models_sample_rows import multitask_table

from mtal_ray.data.vocab import build_vocabs
from mtal_ray.errors import ConfigError
from mtal_ray.models import ModelConfig, build_model, deterministic, mc_dropout
from mtal_ray.models.hierarchical import readout_layers, task_levels
from mtal_ray.models.sclstm import SCLSTMCell
from mtal_ray.models.tiny import make_tiny_encoder
from mtal_ray.tasks import build_tasks
from mtal_ray.training.config import TrainingConfig
from mtal_ray.training.loop import param_groups

HIDDEN = 32  # the tiny encoder's width (3 layers)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder", layers=3, hidden=HIDDEN)


def make(tiny: str, tasks: list[str], sharing: str, **kw: object):
    table = multitask_table()
    torch.manual_seed(0)
    model, collator = build_model(
        build_tasks(tasks, build_vocabs(table, tasks)),
        ModelConfig(encoder=tiny, sharing=sharing, dropout=0.0, **kw),
    )
    return model, collator, table


# --- hierarchical -------------------------------------------------------------------------


def test_task_levels_follow_prerequisites() -> None:
    requires = {"re": ("ner",), "x": ("re",)}
    assert task_levels(["ner", "re", "x"], requires) == {"ner": 1, "re": 2, "x": 3}
    assert task_levels(["dp", "ner"], {}) == {"dp": 1, "ner": 1}
    with pytest.raises(ConfigError, match="circular"):
        task_levels(["a", "b"], {"a": ("b",), "b": ("a",)})


def test_readout_layers_default_and_explicit() -> None:
    # by level: ner (level 1 of 2) at round(6/2) = 3, re at the top
    assert readout_layers(["ner", "re"], 6, None) == {"ner": 3, "re": 6}
    assert readout_layers(["dp", "ner"], 6, None) == {"dp": 6, "ner": 6}
    assert readout_layers(["ner", "re"], 12, {"ner": 4}) == {"ner": 4, "re": 12}
    with pytest.raises(ConfigError, match=r"model\.hierarchy: sf not among"):
        readout_layers(["ner", "re"], 6, {"sf": 2})
    with pytest.raises(ConfigError, match=r"model\.hierarchy\.re: layer 7 is outside 1\.\.6"):
        readout_layers(["ner", "re"], 6, {"re": 7})
    with pytest.raises(pydantic.ValidationError, match="below 1"):
        ModelConfig(sharing="hierarchical", hierarchy={"ner": 0})


def _layer_grads(model) -> dict[str, float]:
    """Gradient norm per encoder part (embeddings, layer.1, ...); None -> 0."""
    norms: dict[str, float] = {}
    for name, param in model.sharing.encoder.named_parameters():
        if name.startswith("embeddings."):
            part = "embeddings"
        elif name.startswith("encoder.layer."):
            part = f"layer.{int(name.split('.')[2]) + 1}"
        else:
            continue
        grad = 0.0 if param.grad is None else float(param.grad.norm())
        norms[part] = norms.get(part, 0.0) + grad
    return norms


def test_low_task_gradients_stop_at_its_readout_layer(tiny: str) -> None:
    model, collator, table = make(tiny, ["ner", "re"], "hierarchical", hierarchy={"ner": 1})
    assert model.sharing.readout == {"ner": 1, "re": 3}
    batch = collator(table)

    model.zero_grad()
    model(batch)["ner"].backward()
    ner = _layer_grads(model)
    assert ner["embeddings"] > 0 and ner["layer.1"] > 0
    assert ner["layer.2"] == 0.0 and ner["layer.3"] == 0.0  # layers above ner's read-out

    model.zero_grad()
    model(batch)["re"].backward()
    re = _layer_grads(model)
    assert all(re[part] > 0 for part in ("embeddings", "layer.1", "layer.2", "layer.3"))

    # the joint loss: layers above layer 1 get exactly RE's gradient
    re_grads = {
        n: p.grad.clone() for n, p in model.sharing.encoder.named_parameters() if "layer.2" in n
    }
    model.zero_grad()
    sum(model(batch).values()).backward()
    for name, param in model.sharing.encoder.named_parameters():
        if name in re_grads:
            torch.testing.assert_close(param.grad, re_grads[name])


def test_layers_above_the_highest_readout_are_dropped(tiny: str) -> None:
    model, _, _ = make(tiny, ["ner", "re"], "hierarchical", hierarchy={"ner": 1, "re": 2})
    assert len(model.sharing.encoder.encoder.layer) == 2
    assert not any("layer.2." in n for n, _ in model.named_parameters())


def test_shortcut_gives_each_task_the_embeddings(tiny: str) -> None:
    model, collator, table = make(tiny, ["ner", "re"], "hierarchical", hierarchy={"ner": 1})
    batch = collator(table)
    encoder = model.sharing.encoder
    with deterministic(model):
        states = model.sharing(batch.input_ids, batch.attention_mask)
        embeddings = encoder.embeddings(input_ids=batch.input_ids)
        hidden = encoder(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            output_hidden_states=True,
        ).hidden_states
    for task, layer in (("ner", 1), ("re", 3)):
        assert states[task].shape[-1] == 2 * HIDDEN
        torch.testing.assert_close(states[task][..., :HIDDEN], hidden[layer])
        torch.testing.assert_close(states[task][..., HIDDEN:], embeddings)
    assert model.heads["ner"].linear.in_features == 2 * HIDDEN

    plain, collator, _ = make(
        tiny, ["ner", "re"], "hierarchical", hierarchy={"ner": 1}, hierarchy_shortcut=False
    )
    with deterministic(plain):
        states = plain.sharing(batch.input_ids, batch.attention_mask)
    assert states["ner"].shape[-1] == HIDDEN


# --- SC-LSTM ------------------------------------------------------------------------------


def _hand_cell() -> SCLSTMCell:
    """input 1, hidden 1, two tasks, weights chosen by hand (gate rows: f, i, o, c)."""
    cell = SCLSTMCell(1, 1, 2)
    with torch.no_grad():
        cell.input_weight.weight.copy_(torch.tensor([[0.5], [-0.3], [0.8], [1.2]]))  # U
        cell.input_weight.bias.copy_(torch.tensor([0.1, 0.0, -0.2, 0.05]))
        cell.hidden_weight.weight.copy_(torch.tensor([[0.4], [0.7], [-0.6], [0.9]]))  # W
        cell.task_input_weight.copy_(torch.tensor([[[1.5]], [[-1.0]]]))  # U_k
        cell.task_hidden_weight.copy_(torch.tensor([[[0.3]], [[2.0]]]))  # W_k
        cell.task_bias.copy_(torch.tensor([[0.0], [0.5]]))
    return cell


def test_sclstm_cell_matches_equations_by_hand() -> None:
    cell = _hand_cell()
    state = cell.initial_state(1, torch.zeros(1, 1))
    # step 1, x = 1 (zero state): f = σ(0.6), i = σ(-0.3), o = σ(0.6), ĉ = tanh(1.25)
    #   c = i·ĉ = 0.360993, h = o·tanh(c) = 0.223454
    #   o^1 = σ(1.5) = 0.817574, o^2 = σ(-0.5) = 0.377541, q^k = o^k·tanh(c)
    h, c, q = cell(torch.tensor([[1.0]]), state)
    assert c.item() == pytest.approx(0.360993, abs=1e-6)
    assert h.item() == pytest.approx(0.223454, abs=1e-6)
    assert q[0, :, 0].tolist() == pytest.approx([0.282953, 0.130663], abs=1e-6)
    # step 2, x = -2: f = σ(0.4h - 0.9) = 0.307759, i = 0.680576, o = 0.126300,
    #   ĉ = tanh(0.9h - 2.35) = -0.973168, c = -0.551215, h = -0.063331,
    #   o^1 = σ(0.3q^1 - 3) = 0.051411, o^2 = σ(2q^2 + 2.5) = 0.940550
    h, c, q = cell(torch.tensor([[-2.0]]), (h, c, q))
    assert c.item() == pytest.approx(-0.551215, abs=1e-6)
    assert h.item() == pytest.approx(-0.063331, abs=1e-6)
    assert q[0, :, 0].tolist() == pytest.approx([-0.025779, -0.471620], abs=1e-6)
    # eq. 3 in the scheme: s^k = q^k ⊕ h (checked through run())
    hs, qs = cell.run(torch.tensor([[[1.0], [-2.0]]]), torch.ones(1, 2, dtype=torch.bool))
    assert hs[0, :, 0].tolist() == pytest.approx([0.223454, -0.063331], abs=1e-6)
    assert qs[0, 1, :, 0].tolist() == pytest.approx([-0.025779, -0.471620], abs=1e-6)


def test_task_gates_learn_only_from_their_task() -> None:
    torch.manual_seed(0)
    cell = SCLSTMCell(4, 3, 2)
    x = torch.randn(2, 5, 4)
    _, q = cell.run(x, torch.ones(2, 5, dtype=torch.bool))
    q[:, :, 0].sum().backward()  # task 0's features only
    for param in (cell.task_input_weight, cell.task_hidden_weight, cell.task_bias):
        assert param.grad[0].abs().sum() > 0
        assert param.grad[1].abs().sum() == 0
    assert cell.input_weight.weight.grad.abs().sum() > 0  # the shared cell learns from all


def test_sclstm_scheme_features_do_not_depend_on_padding(tiny: str) -> None:
    sclstm = {"hidden_size": 6, "layers": 2, "input": "embeddings"}
    model, collator, table = make(tiny, ["ner", "sf"], "sclstm", sclstm=sclstm)
    assert model.sharing.output_sizes == {"ner": 24, "sf": 24}  # 2 directions × [q; h]
    assert model.heads["ner"].linear.in_features == 24
    batch = collator(table)  # rows of 1..6 words: right padding
    with deterministic(model):
        together = model.sharing(batch.input_ids, batch.attention_mask)
        for row in range(table.num_rows):
            alone = collator(table.slice(row, 1))
            single = model.sharing(alone.input_ids, alone.attention_mask)
            n = int(alone.attention_mask.sum())
            for task in ("ner", "sf"):
                torch.testing.assert_close(together[task][row, :n], single[task][0, :n])
    assert not torch.equal(together["ner"], together["sf"])  # task cells differ


def test_sclstm_over_frozen_transformer_and_mc_dropout(tiny: str) -> None:
    sclstm = {"hidden_size": 5, "layers": 1, "freeze_encoder": True, "dropout": 0.3}
    model, collator, table = make(tiny, ["ner", "id"], "sclstm", sclstm=sclstm)
    batch = collator(table)
    sum(model(batch).values()).backward()
    assert all(p.grad is None for p in model.sharing.encoder.parameters())
    assert model.sharing.cells[0].input_weight.weight.grad.abs().sum() > 0
    with mc_dropout(model):
        first = model.predict_proba(batch)["ner"]["probs"]
        second = model.predict_proba(batch)["ner"]["probs"]
    assert not torch.allclose(first, second)  # the LSTM's own dropout is MC dropout


def test_sclstm_embeddings_input_keeps_only_the_embedding_table(tiny: str) -> None:
    model, _, _ = make(tiny, ["sf", "id"], "sclstm", sclstm={"input": "embeddings"})
    names = [n for n, _ in model.named_parameters() if n.startswith("sharing.encoder")]
    assert names == ["sharing.encoder.weight"]
    # the LSTM is freshly initialised: it trains at head_lr, the embeddings at lr
    groups = param_groups(model, TrainingConfig(lr=1e-5, head_lr=1e-3))
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert lr_of[id(model.sharing.encoder.weight)] == 1e-5
    assert lr_of[id(model.sharing.cells[0].task_hidden_weight)] == 1e-3
    assert lr_of[id(model.sharing.lower[0].weight_ih_l0)] == 1e-3


def test_conll04_hierarchical_config() -> None:
    from pathlib import Path

    from mtal_ray.config import load_config

    path = Path(__file__).resolve().parents[1] / "configs" / "conll04_ner_re_hierarchical.yaml"
    config = load_config(path)
    assert config.model.sharing == "hierarchical" and config.data.tasks == ["ner", "re"]
    assert readout_layers(config.data.tasks, 6, config.model.hierarchy) == {"ner": 4, "re": 6}
    override = load_config(path, ["model.sharing=sclstm", "model.sclstm.input=embeddings"])
    assert override.model.sclstm.input == "embeddings"
