"""Stopping criteria against hand-worked histories, and per-task stopping in the loop (fakes)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_driver_loop import Crash, FakeScorer, FakeTrainer, Recorder, _config, _loop

from mtal_ray.config import load_config
from mtal_ray.driver.annotators import OracleAnnotator
from mtal_ray.driver.loop import ActiveLearningLoop
from mtal_ray.driver.state import load_state
from mtal_ray.errors import ConfigError, MtalError
from mtal_ray.ports import LoopPorts, TrainOutcome
from mtal_ray.stopping import (
    Budget,
    DevPlateau,
    StabilizingPredictions,
    TaskRound,
    Uncertainty,
    cohen_kappa,
    decide,
    make_criterion,
    prediction_items,
)


def rounds(**series):
    n = len(next(iter(series.values())))
    return [TaskRound(i, **{k: v[i] for k, v in series.items()}) for i in range(n)]


# ------------------------------------------------------------------ criteria
def test_cohen_kappa_hand_computed():
    # 10 items, rater a: 6 x, 4 y; rater b: 5 x, 5 y; they agree on 7 (0-3, 6-8)
    a = list("xxxxxxyyyy")
    b = list("xxxxyyyyyx")
    # po = 0.7, pe = 0.6*0.5 + 0.4*0.5 = 0.5 -> kappa = 0.2 / 0.5 = 0.4
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    # b' with 6 x: po = 0.8, pe = 0.6*0.6 + 0.4*0.4 = 0.52 -> kappa = 0.28 / 0.48
    assert cohen_kappa(a, list("xxxxxyyyyx")) == pytest.approx(0.28 / 0.48)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(["o"] * 4, ["o"] * 4) == 1.0  # constant and equal
    assert cohen_kappa(list("xy"), list("yx")) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        cohen_kappa(["x"], [])


@given(st.lists(st.sampled_from("abc"), min_size=1, max_size=30))
def test_kappa_of_identical_labelings_is_one(labels):
    assert cohen_kappa(labels, labels) == pytest.approx(1.0)


def test_stabilizing_predictions_needs_window_rounds_above_threshold():
    rule = StabilizingPredictions(threshold=0.99, window=3)
    assert rule.should_stop(rounds(kappa=[None, 0.995, 0.999])).stop is False  # 2 of 3
    history = rounds(kappa=[None, 0.995, 0.999, 0.992])
    assert rule.should_stop(history).stop is True
    assert rule.should_stop(history).value == 0.992
    assert rule.should_stop(rounds(kappa=[None, 0.995, 0.98, 0.999, 0.999])).stop is False
    assert rule.should_stop(rounds(kappa=[None])).value is None


def test_uncertainty_criteria():
    mean = Uncertainty(0.1)
    assert mean.name == "overall-uncertainty"
    assert mean.should_stop(rounds(mean_uncertainty=[0.3, 0.09])).stop is True
    assert mean.should_stop(rounds(mean_uncertainty=[0.09, 0.3])).stop is False
    top = Uncertainty(0.5, "max")
    assert top.should_stop(rounds(max_uncertainty=[0.6])) == top.should_stop(
        rounds(max_uncertainty=[0.6])
    )
    assert top.should_stop(rounds(max_uncertainty=[0.45])).stop is True


def test_dev_plateau_compares_with_window_rounds_back():
    rule = DevPlateau(delta=0.01, window=2)
    assert rule.should_stop(rounds(dev=[0.5, 0.6])).value is None  # not enough rounds
    decision = rule.should_stop(rounds(dev=[0.5, 0.6, 0.605, 0.608]))
    assert decision.stop is True and decision.value == pytest.approx(0.008)
    assert rule.should_stop(rounds(dev=[0.5, 0.6, 0.62, 0.64])).stop is False


def test_budget_in_cost_or_sentences():
    assert Budget(10.0).should_stop(rounds(cost=[0.0, 6.0, 10.0])).stop is True
    assert Budget(10.0).should_stop(rounds(cost=[0.0, 6.0])).stop is False
    assert Budget(20, "sentences").should_stop(rounds(sentences=[6, 19])).stop is False
    assert Budget(20, "sentences").should_stop(rounds(sentences=[6, 21])).value == 21


def test_decide_any_all_and_make_criterion():
    history = rounds(dev=[0.5, 0.5, 0.5], cost=[0.0, 1.0, 2.0])
    plateau, budget = DevPlateau(0.01, 1), Budget(100.0)
    assert decide([plateau, budget], history, "any").stop is True
    assert decide([plateau, budget], history, "all").stop is False
    assert make_criterion("stabilizing-predictions") == StabilizingPredictions(0.99, 3)
    with pytest.raises(ConfigError, match="needs a threshold"):
        make_criterion("dev-plateau")
    with pytest.raises(ConfigError, match="unknown"):
        make_criterion("patience")


def test_prediction_items_per_word_and_per_sentence():
    rows = [{"dp.head": [2, 0], "dp.deprel": ["nsubj", "root"]}]
    assert prediction_items(rows, ["dp.head", "dp.deprel"], True) == ["2|nsubj", "0|root"]
    rel = [
        {"re.relations": [{"head": 1, "tail": 0, "type": "x"}, {"head": 0, "tail": 1, "type": "y"}]}
    ]
    swapped = [{"re.relations": list(reversed(rel[0]["re.relations"]))}]
    assert prediction_items(rel, ["re.relations"], False) == prediction_items(
        swapped, ["re.relations"], False
    )
    assert len(prediction_items([{"re.relations": []}], ["re.relations"], False)) == 1


def test_config_accepts_one_or_several_criteria():
    one = load_config(None, ["al.stopping={criterion: dev-plateau, threshold: 0.01}"])
    assert [r.criterion for r in one.al.stopping] == ["dev-plateau"]
    assert one.al.stopping[0].per_task is True and one.al.stopping[0].stop_set == 1000
    two = load_config(
        None,
        [
            "al.stopping=[{criterion: stabilizing-predictions}, {criterion: budget, threshold: 50}]",
            "al.stopping_combine=all",
        ],
    )
    assert [r.criterion for r in two.al.stopping] == ["stabilizing-predictions", "budget"]
    with pytest.raises(ConfigError, match=r"al\.stopping\.0: .*budget needs a threshold"):
        load_config(None, ["al.stopping={criterion: budget}"])


# ---------------------------------------------------------- in the loop
class PlateauTrainer(FakeTrainer):
    """``id`` is at its ceiling from the start; ``sf`` keeps learning."""

    def train(self, labeled, dev, test, tasks, training, output_dir):
        out = super().train(labeled, dev, test, tasks, training, output_dir)
        scores = {"sf": labeled.num_rows / 100, "id": 0.9}
        return TrainOutcome(out.checkpoint, scores, scores, 0.5, 0.4)


class FlatTrainer(FakeTrainer):
    def train(self, labeled, dev, test, tasks, training, output_dir):
        out = super().train(labeled, dev, test, tasks, training, output_dir)
        scores = dict.fromkeys(tasks, 0.7)
        return TrainOutcome(out.checkpoint, scores, scores, 0.7, 0.7)


PLATEAU = ["al.iterations=4", "al.stopping={criterion: dev-plateau, threshold: 0.01, window: 1}"]


def _selections(run_dir: Path) -> list[dict]:
    found = sorted((run_dir / "rounds").glob("round_*/selection.json"))
    return [json.loads(p.read_text()) for p in found]


def test_a_task_that_plateaus_stops_being_annotated(tmp_path):
    run_dir = tmp_path / "run"
    recorder = Recorder()
    summary = _loop(
        run_dir, _config(*PLATEAU), trainer=PlateauTrainer(), callbacks=[recorder]
    ).run()
    assert summary.status == "finished"
    selections = _selections(run_dir)
    assert len(selections) == 3
    # round 0: no history yet, both tasks asked; from round 1 on, id has stopped
    assert all(ts == ["sf", "id"] for ts in selections[0]["tasks"].values())
    for later in selections[1:]:
        assert all(ts == ["sf"] for ts in later["tasks"].values())
    state = load_state(run_dir)
    assert state.stopping["id"]["stopped_at"] == 1
    assert state.stopping["sf"]["stopped_at"] is None
    assert state.stopping["id"]["criterion"] == "dev-plateau"
    # training keeps what was gathered: id stays labeled on round 0's selection
    assert set(selections[0]["ids"]) <= set(state.labeled["id"])
    assert not set(selections[2]["ids"]) & set(state.labeled["id"])
    summary_file = json.loads((run_dir / "summary.json").read_text())
    assert summary_file["stopping"]["id"]["stopped_at"] == 1
    # what annotating each task cost: id was asked only in round 0's selection
    round_costs = [r.stopping.get("id", {}).get("cost", 0.0) for r in state.rounds]
    assert round_costs[0] > 0 and round_costs[1:] == [0.0] * (len(round_costs) - 1)
    assert summary_file["stopping"]["id"]["cost"] == pytest.approx(round_costs[0])
    assert summary_file["stopping"]["sf"]["cost"] > summary_file["stopping"]["id"]["cost"]
    select_metrics = [e[3] for e in recorder.events if e[0] == "step" and e[1] == "select"]
    assert select_metrics[1]["stopping.id.stopped"] == 1.0
    assert select_metrics[1]["stopping.sf.stopped"] == 0.0
    assert select_metrics[1]["stopping.id.value"] == pytest.approx(0.0)


def test_per_task_stopping_survives_a_kill_and_resume(tmp_path):
    reference = tmp_path / "reference"
    _loop(reference, _config(*PLATEAU), trainer=PlateauTrainer()).run()
    for boundary in (7, 8, 12):  # before round 1's select and annotate, round 2's select
        run_dir = tmp_path / f"run{boundary}"
        with pytest.raises(Crash):
            _loop(
                run_dir,
                _config(*PLATEAU),
                trainer=PlateauTrainer(),
                callbacks=[Recorder(crash_before=boundary)],
            ).run()
        _loop(run_dir, _config(*PLATEAU), trainer=PlateauTrainer()).run()
        assert _selections(run_dir) == _selections(reference)
        assert load_state(run_dir).stopping == load_state(reference).stopping


def test_the_run_ends_with_status_stopped_when_every_task_stops(tmp_path):
    run_dir = tmp_path / "run"
    summary = _loop(run_dir, _config(*PLATEAU), trainer=FlatTrainer()).run()
    assert summary.status == "stopped"
    assert "stopped early" in summary.message
    state = load_state(run_dir)
    assert state.done and state.iteration == 1  # round 1 judged: everything had stopped
    assert len(_selections(run_dir)) == 1
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "stopped"


class StablePredictor:
    """The same predictions every round (κ = 1), and records the stop set it saw."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def predict(self, checkpoint, rows: pa.Table) -> pa.Table:
        ids = rows.column("id").to_pylist()
        self.seen.append(ids)
        tokens = rows.column("tokens").to_pylist()
        return pa.table(
            {
                "id": ids,
                "tokens": tokens,
                "sf.tags": [["O"] * len(t) for t in tokens],
                "id.label": ["music"] * len(ids),
            }
        )


def test_stabilizing_predictions_stops_after_window_agreeing_rounds(tmp_path):
    run_dir = tmp_path / "run"
    config = _config(
        "al.iterations=5",
        "al.stopping={criterion: stabilizing-predictions, window: 2, stop_set: 10}",
    )
    predictor = StablePredictor()
    ports = LoopPorts(FakeTrainer(), FakeScorer(), OracleAnnotator(), predictor)
    summary = ActiveLearningLoop(config, run_dir, ports=ports, callbacks=[]).run()
    # kappas: round 1 and 2 agree with their predecessors -> every task stops at round 2
    assert summary.status == "stopped"
    state = load_state(run_dir)
    assert {t: e["stopped_at"] for t, e in state.stopping.items()} == {"sf": 2, "id": 2}
    assert state.stopping["sf"]["value"] == 1.0
    assert len(state.stop_set) == 10 and len(predictor.seen) == 3
    assert all(ids == state.stop_set for ids in predictor.seen)  # a fixed stop set
    assert (run_dir / "rounds" / "round_2" / "stop_predictions.parquet").exists()


# ------------------------------------------------- validation, dependencies, resume
@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{criterion: stabilizing-predictions, threshold: 1.5}", r"Cohen's κ in \(-1, 1\]"),
        ("{criterion: overall-uncertainty, threshold: 2}", r"uncertainty \(1 − EC\) in \(0, 1\]"),
        ("{criterion: dev-plateau, threshold: 0}", r"least dev gain δ .* > 0"),
        ("{criterion: budget, threshold: -5}", r"budget's threshold must be > 0"),
        ("{criterion: budget, threshold: 50, window: 2}", r"budget does not read window"),
        ("{criterion: dev-plateau, threshold: 0.01, unit: sentences}", r"does not read unit"),
        ("{criterion: max-uncertainty, threshold: 0.1, stop_set: 50}", r"does not read stop_set"),
    ],
)
def test_config_refuses_rules_that_cannot_mean_anything(rule, message):
    with pytest.raises(ConfigError, match=rf"al\.stopping\.0: .*{message}"):
        load_config(None, [f"al.stopping={rule}"])


def test_config_refuses_mixed_per_task_scopes():
    with pytest.raises(ConfigError, match="per_task must be the same for every criterion"):
        load_config(
            None,
            [
                "al.stopping=[{criterion: dev-plateau, threshold: 0.01},"
                " {criterion: budget, threshold: 50, per_task: false}]"
            ],
        )


def _ner_re_corpus(root: Path) -> Path:
    """A tiny NER + RE corpus (jsonl): every sentence has two entities and one relation."""
    from mtal_ray.data import make_table, write_jsonl

    people, places = ["John", "Mary", "Ann", "Bob"], ["Paris", "Rome", "Oslo", "Lima"]
    root.mkdir(parents=True)
    for split, n in (("train", 40), ("dev", 8), ("test", 8)):
        rows = []
        for i in range(n):
            filler = ["and", "then"] * (i % 3)
            tokens = [people[i % 4], "lives", *filler, "in", places[(i // 4) % 4]]
            tags = ["B-Peop", "O", *["O"] * len(filler), "O", "B-Loc"]
            rows.append(
                {
                    "id": f"{split}-{i}",
                    "tokens": tokens,
                    "ner.tags": tags,
                    "re.relations": [{"head": 0, "tail": 1, "type": "Live_In"}],
                }
            )
        table = make_table({k: [r[k] for r in rows] for k in rows[0]})
        write_jsonl(table, root / f"{split}.json")
    return root


class LineRecorder(Recorder):
    """Also keeps each step's report (its progress lines are what the console prints)."""

    def __init__(self) -> None:
        super().__init__()
        self.reports = []

    def on_step_end(self, run, report) -> None:
        super().on_step_end(run, report)
        self.reports.append(report)


class NerFlatTrainer(FakeTrainer):
    """NER at its ceiling from the start; RE keeps learning."""

    def train(self, labeled, dev, test, tasks, training, output_dir):
        out = super().train(labeled, dev, test, tasks, training, output_dir)
        scores = {"ner": 0.9, "re": labeled.num_rows / 100}
        return TrainOutcome(out.checkpoint, scores, scores, 0.5, 0.4)


def test_a_stopped_task_that_another_needs_is_still_annotated_and_paid(tmp_path):
    corpus = _ner_re_corpus(tmp_path / "corpus")
    config = _config(
        f"data.path={corpus}",
        "data.format=jsonl",
        "data.tasks=[ner, re]",
        *PLATEAU,
    )
    run_dir = tmp_path / "run"
    recorder = LineRecorder()
    summary = _loop(
        run_dir,
        config,
        trainer=NerFlatTrainer(),
        scorer=FakeScorer(entities=True),
        callbacks=[recorder],
    ).run()
    assert summary.status == "finished"
    state = load_state(run_dir)
    assert state.stopping["ner"]["stopped_at"] == 1 and state.stopping["re"]["stopped_at"] is None
    selections = _selections(run_dir)
    # re needs ner's mentions: every later sentence is still asked for both ...
    for later in selections[1:]:
        assert all(ts == ["ner", "re"] for ts in later["tasks"].values())
        assert set(later["ids"]) <= set(state.labeled["ner"])
    # ... and ner's annotation is charged to the round and to ner
    for i in (1, 2):
        assert state.rounds[i].stopping["ner"]["cost"] > 0
        assert selections[i]["cost"] > state.rounds[i].stopping["re"]["cost"]
    lines = [line for report in recorder.reports for line in report.lines]
    assert "stopping ner: dev-plateau 0.0000 — stopped at iteration 1" in lines
    assert any(
        line.startswith("ner: stopped, but still annotated on the sentences selected for re")
        for line in lines
    )


def test_a_single_task_method_ends_the_run_when_its_task_stops(tmp_path):
    run_dir = tmp_path / "run"
    config = _config(*PLATEAU, "selection.method=st-ec", "selection.task=id")
    summary = _loop(run_dir, config, trainer=PlateauTrainer()).run()
    # id plateaus at round 1: ST-EC-ID has nothing left to select by, though sf still learns
    assert summary.status == "stopped"
    assert "st-ec selects by id, which has stopped" in summary.message
    state = load_state(run_dir)
    assert state.done and state.iteration == 1 and state.ended_early
    assert state.stopping["sf"]["stopped_at"] is None
    assert len(_selections(run_dir)) == 1


def test_a_resume_with_other_stopping_rules_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(Crash):
        _loop(run_dir, _config(*PLATEAU), trainer=PlateauTrainer(), callbacks=[Recorder(8)]).run()
    assert load_state(run_dir).stopping_rules["rules"] == [
        {"criterion": "dev-plateau", "per_task": True, "threshold": 0.01, "window": 1}
    ]
    for other in (
        ["al.iterations=4"],  # stopping removed: id would silently be annotated again
        ["al.iterations=4", "al.stopping={criterion: dev-plateau, threshold: 0.02, window: 1}"],
    ):
        with pytest.raises(MtalError, match=r"started with al\.stopping dev-plateau\(0\.01\)"):
            _loop(run_dir, _config(*other), trainer=PlateauTrainer()).run()
    # a state written before the rules were recorded adopts the current ones
    path = run_dir / "state.json"
    data = json.loads(path.read_text())
    del data["stopping_rules"]
    path.write_text(json.dumps(data))
    summary = _loop(run_dir, _config(*PLATEAU), trainer=PlateauTrainer()).run()
    assert summary.status == "finished"
    assert load_state(run_dir).stopping_rules is not None


def test_the_round_table_and_status_show_each_task_s_stopping(tmp_path):
    from mtal_ray.cli.status import read_status, render
    from mtal_ray.cli.tables import render_rounds

    run_dir = tmp_path / "run"
    summary = _loop(run_dir, _config(*PLATEAU), trainer=PlateauTrainer()).run()
    rows = summary.rows
    assert [r["stopped"] for r in rows] == ["", "id", "id", "id"]
    assert rows[1]["stop.id"] == pytest.approx(0.0) and rows[1]["stop.sf"] > 0.01
    assert rows[3]["stop.sf"] is None
    text = "\n".join(
        str(cell) for t in render_rounds(rows) for col in t.columns for cell in col._cells
    )
    assert "id" in text and "0.0000" in text
    lines = render(read_status(run_dir))
    assert "stopping: id stopped at iteration 1, sf still annotated" in lines
    stopped_dir = tmp_path / "stopped"
    _loop(stopped_dir, _config(*PLATEAU), trainer=FlatTrainer()).run()
    head = render(read_status(stopped_dir))[1]
    assert head == "ended early after iteration 1 of 3 (al.stopping: every task stopped)"


@pytest.mark.parametrize(
    ("rule", "stopped_at", "selections"),
    [
        # 6 labeled to start, 4 per round: 10 sentences after the first selection
        ("{criterion: budget, threshold: 10, unit: sentences}", 1, 1),
        # the fake scorer's confidences are uniform on [0, 1): mean uncertainty ~0.5
        ("{criterion: overall-uncertainty, threshold: 0.6}", 0, 0),
        ("{criterion: max-uncertainty, threshold: 0.6}", None, 3),
    ],
)
def test_budget_and_uncertainty_rules_in_the_loop(tmp_path, rule, stopped_at, selections):
    run_dir = tmp_path / "run"
    summary = _loop(run_dir, _config("al.iterations=4", f"al.stopping={rule}")).run()
    state = load_state(run_dir)
    assert {e["stopped_at"] for e in state.stopping.values()} == {stopped_at}
    assert summary.status == ("finished" if stopped_at is None else "stopped")
    assert len(_selections(run_dir)) == selections


def test_a_default_spelled_out_is_the_same_rule_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    implicit = "al.stopping={criterion: stabilizing-predictions, stop_set: 10}"
    explicit = (
        "al.stopping={criterion: stabilizing-predictions, threshold: 0.99, window: 3,"
        " stop_set: 10, per_task: true}"
    )
    with pytest.raises(Crash):
        ports = LoopPorts(FakeTrainer(), FakeScorer(), OracleAnnotator(), StablePredictor())
        ActiveLearningLoop(
            _config(implicit), run_dir, ports=ports, callbacks=[Recorder(crash_before=6)]
        ).run()
    ports = LoopPorts(FakeTrainer(), FakeScorer(), OracleAnnotator(), StablePredictor())
    summary = ActiveLearningLoop(_config(explicit), run_dir, ports=ports, callbacks=[]).run()
    assert summary.status == "finished"


def test_the_learning_curve_marks_where_a_task_stopped(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    from mtal_ray.driver.plots import plot_learning_curve

    marks: list[tuple[float, str]] = []
    original = Axes.axvline

    def spy(self, x=0, *args, **kwargs):
        marks.append((x, kwargs.get("label", "")))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(Axes, "axvline", spy)
    scores = {"sf": {"dev": [0.5, 0.6, 0.7]}, "id": {"dev": [0.9, 0.9, 0.9]}}
    path = plot_learning_curve([10, 20, 30], scores, tmp_path / "curve.png", stops={"id": 20})
    assert marks == [(20, "stopped")]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_kill_between_the_stop_predictions_and_the_state_keeps_the_stop_set(tmp_path):
    """Round 0's select writes the stop-set predictions, then saves the state with the stop
    set: a kill in between left a state without it, and every resume failed in round 1
    (a new stop set, drawn from a smaller pool, that round 0's predictions do not cover).
    The resumed run takes the stop set back from the predictions."""
    import pyarrow.parquet as pq

    from mtal_ray.data import take_ids
    from mtal_ray.driver.loop import load_run_data

    run_dir = tmp_path / "run"
    rules = "al.stopping={criterion: stabilizing-predictions, window: 2, stop_set: 10}"
    config = _config("al.iterations=5", rules)
    with pytest.raises(Crash):  # killed before round 0's select
        _loop(run_dir, config, callbacks=[Recorder(crash_before=2)]).run()
    state = load_state(run_dir)
    assert state is not None and not state.stop_set
    # ... which did write its predictions before the kill, on a stop set it never saved
    train = load_run_data(config, tmp_path).train
    pool = state.pool_of(train).column("id").to_pylist()
    written = sorted(pool[-10:])
    predictor = StablePredictor()
    path = run_dir / "rounds" / "round_0" / "stop_predictions.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(predictor.predict(None, take_ids(train, written)), path)

    predictor.seen.clear()
    ports = LoopPorts(FakeTrainer(), FakeScorer(), OracleAnnotator(), predictor)
    summary = ActiveLearningLoop(config, run_dir, ports=ports, callbacks=[]).run()
    assert summary.status == "stopped"
    state = load_state(run_dir)
    assert state.stop_set == written
    assert predictor.seen and all(ids == written for ids in predictor.seen)
