"""The AL loop with in-memory fakes for its ports: no Ray, no torch model, a few seconds.

Covers every step, a resume from every step boundary (and from inside a step), human mode
(stop, import, continue) and a selection error. The fakes are deterministic, so a run that
was interrupted must end with exactly the selections of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtal_ray.config import load_config
from mtal_ray.data import take_ids, write_split
from mtal_ray.driver.annotation import import_annotations, round_dir
from mtal_ray.driver.annotators import FileAnnotator, OracleAnnotator
from mtal_ray.driver.callbacks import LoopCallback, RunInfo, RunOutcome, StepReport
from mtal_ray.driver.loop import ActiveLearningLoop
from mtal_ray.driver.observers import ConsoleCallback
from mtal_ray.driver.state import Step, load_state
from mtal_ray.errors import MtalError, SelectionError
from mtal_ray.ports import LoopPorts, TrainOutcome

BASE = [
    "data.synthetic.n_train=60",
    "data.synthetic.n_dev=10",
    "data.synthetic.n_test=10",
    "data.initial_count=6",
    "selection.n=4",
    "al.iterations=3",
    "tracking.enabled=false",
]
#: Steps of a 3-iteration run, in order.
ALL_STEPS = ["train", "score", "select", "annotate", "update"] * 2 + ["train"]


class Crash(Exception):
    """A simulated kill of the process."""


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FakeTrainer:
    """Scores that grow with the labeled set; the checkpoint is a folder with a marker."""

    def __init__(self, crash_at_call: int | None = None) -> None:
        self.calls: list[pa.Table] = []
        self.crash_at_call = crash_at_call

    def train(self, labeled, dev, test, tasks, training, output_dir):
        self.calls.append(labeled)
        if self.crash_at_call == len(self.calls):
            raise Crash("killed during training")
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "model.txt").write_text(f"seed {training.seed}\n")
        dev_scores = {t: labeled.num_rows / 100 for t in tasks}
        test_scores = {t: labeled.num_rows / 120 for t in tasks}
        return TrainOutcome(str(output_dir), dev_scores, test_scores, 0.5, 0.4)


class FakeScorer:
    """Confidences from a hash of (id, task, checkpoint); progress in two halves."""

    def __init__(
        self, crash_mid_pool: bool = False, nan: bool = False, entities: bool = False
    ) -> None:
        self.calls = 0
        self.ec_only: list[bool] = []
        self.crash_mid_pool = crash_mid_pool
        self.nan = nan
        self.entities = entities  # predicted entity counts of the span tasks (costs)

    def calibrate(self, checkpoint, dev, tasks):
        return dict.fromkeys(tasks, 1.5)

    def score(self, pool, checkpoint, output, scoring, progress=None):
        self.calls += 1
        self.ec_only.append(scoring.ec_only)
        ids = pool.column("id").to_pylist()
        if progress is not None:
            progress(len(ids) // 2, len(ids), 0.5)
        if self.crash_mid_pool:
            raise Crash("killed while scoring")
        columns: dict[str, list] = {"id": ids}
        columns["n_tokens"] = [len(t) for t in pool.column("tokens").to_pylist()]
        for task in scoring.tasks:
            values = [_unit(i, task, Path(checkpoint).name) for i in ids]
            columns[f"{task}.ec"] = [float("nan")] * len(ids) if self.nan else values
            if not scoring.ec_only:
                columns[f"{task}.da"] = [_unit(i, task, "da") for i in ids]
            if self.entities and task in ("sf", "ner"):
                columns[f"{task}.n_entities"] = [int(4 * _unit(i, "ents")) for i in ids]
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), output)
        if progress is not None:
            progress(len(ids), len(ids), 1.0)


class Recorder(LoopCallback):
    """Records the hooks' calls (and can crash the run before a given step)."""

    def __init__(self, crash_before: int | None = None) -> None:
        self.events: list[tuple] = []
        self.steps: list[str] = []
        self.crash_before = crash_before

    def on_run_start(self, run: RunInfo) -> None:
        self.events.append(("start", run.resumed, run.state.iteration, str(run.state.step)))

    def on_step_start(self, run: RunInfo, step: Step) -> None:
        if self.crash_before is not None and len(self.steps) == self.crash_before:
            raise Crash(f"killed before {step}")
        self.steps.append(str(step))

    def on_step_end(self, run: RunInfo, report: StepReport) -> None:
        self.events.append(("step", str(report.step), report.iteration, dict(report.metrics)))

    def on_round_end(self, run: RunInfo, record) -> None:
        self.events.append(("round", record.iteration))

    def on_run_end(self, run: RunInfo, outcome: RunOutcome) -> None:
        self.events.append(("end", outcome.status, type(outcome.error).__name__))


def _config(*overrides: str):
    return load_config(None, [*BASE, *overrides])


def _loop(run_dir, config, *, trainer=None, scorer=None, annotator=None, callbacks=()):
    ports = LoopPorts(
        trainer=trainer or FakeTrainer(),
        scorer=scorer or FakeScorer(),
        annotator=annotator or OracleAnnotator(),
    )
    return ActiveLearningLoop(config, run_dir, ports=ports, callbacks=list(callbacks))


def _outcome(run_dir: Path) -> dict:
    """What a finished run decided: each round's selection and the final labeled sets."""
    state = json.loads((run_dir / "state.json").read_text())
    selections = [
        json.loads((run_dir / "rounds" / f"round_{i}" / "selection.json").read_text())
        for i in range(state["iterations"] - 1)
    ]
    return {
        "selected": [s["ids"] for s in selections],
        "labeled": state["labeled"],
        "excluded": state["excluded"],
        "pool_size": state["pool_size"],
        "scores": [(r["dev"], r["test"]) for r in state["rounds"]],
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    recorder = Recorder()
    lines: list[str] = []
    trainer, scorer = FakeTrainer(), FakeScorer()
    summary = _loop(
        run_dir,
        _config(),
        trainer=trainer,
        scorer=scorer,
        callbacks=[recorder, ConsoleCallback(lines.append)],
    ).run()
    return {
        "run_dir": run_dir,
        "summary": summary,
        "recorder": recorder,
        "lines": lines,
        "trainer": trainer,
        "scorer": scorer,
        "outcome": _outcome(run_dir),
    }


def test_every_step_runs_in_order_and_the_run_finishes(reference):
    run_dir, summary, recorder = reference["run_dir"], reference["summary"], reference["recorder"]
    assert recorder.steps == ALL_STEPS
    assert summary.status == "finished"
    assert [r["iteration"] for r in summary.rows] == [0, 1, 2]
    assert [r["labeled"] for r in summary.rows] == [6, 10, 14]
    state = load_state(run_dir)
    assert state.done and state.iteration == 2
    # each round selected 4 new sentences, none twice, and they left the pool
    selected = reference["outcome"]["selected"]
    assert [len(s) for s in selected] == [4, 4]
    assert len(set(selected[0]) | set(selected[1])) == 8
    assert state.excluded == [] and state.pool_size == 60 - 6 - 8  # dev: its own split
    assert "pool" not in json.loads((run_dir / "state.json").read_text())  # never listed
    for task in ("sf", "id"):
        assert set(selected[0] + selected[1]) <= set(state.labeled[task])
    # the trainer saw the growing labeled set; MT-AVG needs no MC dropout
    assert [t.num_rows for t in reference["trainer"].calls] == [6, 10, 14]
    assert reference["scorer"].ec_only == [True, True]
    for name in ("summary.json", "learning_curve.png", "config.json", "launch.json"):
        assert (run_dir / name).exists()
    # observers: a round ends after each update and after the last training
    rounds = [e[1] for e in recorder.events if e[0] == "round"]
    assert rounds == [0, 1, 2]
    assert recorder.events[0] == ("start", False, 0, "train")
    assert recorder.events[-1] == ("end", "finished", "NoneType")
    train_metrics = [e[3] for e in recorder.events if e[0] == "step" and e[1] == "train"]
    assert train_metrics[0]["labeled.total"] == 6 and train_metrics[0]["dev.sf"] == 0.06
    # every timed phase of state.json's round (tracking aside) is an MLflow metric too
    score_metrics = [e[3] for e in recorder.events if e[0] == "step" and e[1] == "score"]
    spent = state.rounds[0].seconds
    assert score_metrics[0]["seconds.score.pool"] == spent["score.pool"]


def test_console_lines(reference):
    lines = reference["lines"]
    assert lines[0].startswith(f"new run {reference['run_dir']}: 6 labeled")
    assert "iteration 0/2: train" in lines
    assert (  # test scores as soon as they are computed (issue 20)
        "  trained on 6 sentences in 0s: dev sf 0.0600, dev id 0.0600; "
        "test sf 0.0500, test id 0.0500" in lines
    )
    assert any(line.startswith("  scoring: ") for line in lines)
    assert any(line.startswith("  selected 4 sentences with mt-avg") for line in lines)


def test_selections_are_deterministic(tmp_path, reference):
    _loop(tmp_path / "again", _config()).run()
    assert _outcome(tmp_path / "again") == reference["outcome"]


@pytest.mark.parametrize("boundary", range(len(ALL_STEPS)))
def test_resume_from_every_step_boundary(tmp_path, reference, boundary):
    run_dir = tmp_path / "run"
    first = Recorder(crash_before=boundary)
    with pytest.raises(Crash):
        _loop(run_dir, _config(), callbacks=[first]).run()
    assert first.steps == ALL_STEPS[:boundary]
    assert first.events[-1] == ("end", "failed", "Crash")
    state = load_state(run_dir)
    assert str(state.step) == ALL_STEPS[boundary]
    second = Recorder()
    trainer = FakeTrainer()
    summary = _loop(run_dir, _config(), trainer=trainer, callbacks=[second]).run()
    assert summary.status == "finished"
    assert second.steps == ALL_STEPS[boundary:]  # nothing finished runs twice
    assert second.events[0][:2] == ("start", True)
    assert _outcome(run_dir) == reference["outcome"]


def test_resume_after_a_crash_inside_training_and_scoring(tmp_path, reference):
    run_dir = tmp_path / "run"
    with pytest.raises(Crash):
        _loop(run_dir, _config(), trainer=FakeTrainer(crash_at_call=2)).run()
    assert str(load_state(run_dir).step) == "train" and load_state(run_dir).iteration == 1
    with pytest.raises(Crash):
        _loop(run_dir, _config(), scorer=FakeScorer(crash_mid_pool=True)).run()
    assert str(load_state(run_dir).step) == "score"
    _loop(run_dir, _config()).run()
    assert _outcome(run_dir) == reference["outcome"]


def test_da_methods_ask_for_mc_dropout_and_calibration_is_logged(tmp_path):
    scorer, recorder = FakeScorer(), Recorder()
    config = _config("selection.method=mt-avgda", "scoring.calibrate=true")
    _loop(tmp_path / "run", config, scorer=scorer, callbacks=[recorder]).run()
    assert scorer.ec_only == [False, False]
    score_metrics = [e[3] for e in recorder.events if e[0] == "step" and e[1] == "score"]
    assert score_metrics[0]["calibration.temperature.sf"] == 1.5


@pytest.mark.parametrize("method", ["mt-r", "st-r"])
def test_random_methods_skip_scoring_and_select_deterministically(tmp_path, method):
    """MT-R / ST-R read no confidence: the scorer is never called, the round's table holds
    ``id`` and ``n_tokens`` only, and two runs select the same sentences."""
    overrides = [f"selection.method={method}"]
    if method == "st-r":
        overrides += ["selection.task=id", "model.sharing=st"]
    scorer, lines, recorder = FakeScorer(), [], Recorder()
    callbacks = [recorder, ConsoleCallback(lines.append)]
    _loop(tmp_path / "a", _config(*overrides), scorer=scorer, callbacks=callbacks).run()
    again = FakeScorer()
    _loop(tmp_path / "b", _config(*overrides), scorer=again).run()
    assert scorer.calls == 0 and again.calls == 0
    first = _outcome(tmp_path / "a")
    assert first == _outcome(tmp_path / "b")
    assert [len(s) for s in first["selected"]] == [4, 4]
    table = pq.read_table(tmp_path / "a" / "rounds" / "round_0" / "confidence.parquet")
    assert table.column_names == ["id", "n_tokens"] and table.num_rows == 60 - 6
    assert min(table.column("n_tokens").to_pylist()) > 0
    assert any(f"scoring skipped: {method} reads no confidence" in line for line in lines)
    score_metrics = [e[3] for e in recorder.events if e[0] == "step" and e[1] == "score"]
    assert score_metrics[0]["pool.size"] == 60 - 6 and "seconds.score" not in score_metrics[0]
    selection = json.loads((tmp_path / "a" / "rounds" / "round_0" / "selection.json").read_text())
    if method == "st-r":  # annotated on its task only; a sentence-level cost needs no model
        assert all(tasks == ["id"] for tasks in selection["tasks"].values())
        assert selection["cost"] > 0
    else:  # the SF cost counts predicted entities: no model ran, so no cost is claimed
        assert selection["cost"] is None


@pytest.mark.parametrize("method", ["mt-r", "mt-avg"])
def test_each_round_records_the_cost_of_the_labels_given(tmp_path, method):
    """Random selection claims no predicted cost (no model ran) but its annotation is
    priced like any other on the labels the oracle gave: the paper's cost model (§7) on
    the gold rows, hand-summed here: words + slots (SF) + ts = 3 (ID), words read once."""
    from mtal_ray.data import make_synthetic_corpus

    recorder = Recorder()
    _loop(tmp_path, _config(f"selection.method={method}"), callbacks=[recorder]).run()
    gold = {
        r["id"]: r for r in make_synthetic_corpus(60, 10, 10, seed=0).splits["train"].to_pylist()
    }
    state = json.loads((tmp_path / "state.json").read_text())
    expected = []
    for i in range(2):
        ids = json.loads((tmp_path / "rounds" / f"round_{i}" / "selection.json").read_text())["ids"]
        expected.append(sum(
            len(gold[sid]["tokens"])
            + sum(tag.startswith("B-") for tag in gold[sid]["sf.tags"])
            + 3.0
            for sid in ids
        ))  # fmt: skip
    assert [r["annotated_cost"] for r in state["rounds"][:2]] == expected
    assert state["annotated_cost_spent"] == sum(expected) > 0
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    assert [r["cost_annotated"] for r in rows] == [*expected, None]
    spent = [e[3]["cost.annotated.spent"] for e in recorder.events if e[:2] == ("step", "train")]
    assert spent == [0.0, expected[0], sum(expected)]  # before each training


def test_random_selection_under_a_budget_over_span_tasks_still_scores(tmp_path):
    """A budget over SF needs the entity counts a model predicts: scored (EC only)."""
    scorer = FakeScorer()
    config = _config("selection.method=mt-r", "selection.n=null", "selection.budget=40")
    _loop(tmp_path / "run", config, scorer=scorer).run()
    assert scorer.ec_only == [True, True]


class TimedOracle(OracleAnnotator):
    """Gold labels, with the times an annotation tool would record: 0.5 s per word, 2 s per
    slot entity, 4 s per intent (the file Label Studio's import writes)."""

    def annotate(self, request):
        from mtal_ray.driver.annotation import ANNOTATION_TIME, label_count

        rows = []
        for row in request.rows.to_pylist():
            tasks = list(request.tasks_per_id[row["id"]])
            labels = {t: label_count(t, row) for t in tasks}
            seconds = 0.5 * len(row["tokens"]) + 2.0 * labels.get("sf", 0)
            seconds += 4.0 if "id" in tasks else 0.0
            rows.append(
                {
                    "id": row["id"],
                    "tasks": tasks,
                    "seconds": seconds,
                    "n_tokens": len(row["tokens"]),
                    **{f"labels.{t}": labels.get(t) for t in ("sf", "id")},
                }
            )
        folder = round_dir(request.run_dir, request.iteration)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), folder / ANNOTATION_TIME)
        return None


def test_measured_cost_model_is_fitted_to_earlier_rounds_and_used(tmp_path):
    """selection.cost_model: measured (issue 19): round 0 selects with the paper's costs,
    round 1 with the formula fitted to round 0's times; the update reports fitted vs
    measured time."""
    run_dir = tmp_path / "run"
    lines: list[str] = []
    config = _config(
        "selection.n=null",
        "selection.budget=60",
        "selection.cost_model=measured",
        "al.iterations=4",
    )
    _loop(
        run_dir,
        config,
        scorer=FakeScorer(entities=True),
        annotator=TimedOracle(),
        callbacks=[ConsoleCallback(lines.append)],
    ).run()
    rounds = [
        json.loads((run_dir / "rounds" / f"round_{i}" / "selection.json").read_text())
        for i in range(3)
    ]
    assert "cost_fit" not in rounds[0]
    assert "  cost model: paper costs (no annotation time measured yet)" in lines
    fit = rounds[1]["cost_fit"]
    assert fit["seconds_per_word"] == pytest.approx(0.5)
    assert fit["seconds_per_label"] == pytest.approx({"sf": 2.0, "id": 4.0})
    assert fit["label_costs"] == pytest.approx({"sf": 4.0, "id": 8.0})  # in words
    assert fit["r2"] == pytest.approx(1.0)
    assert rounds[2]["cost_fit"]["n_sentences"] == len(rounds[0]["ids"]) + len(rounds[1]["ids"])
    assert any(line.startswith("  costs fitted on ") for line in lines)
    # the round's cost is priced with the fitted formula: m + 4·entities + 8 per sentence
    table = pq.read_table(load_state(run_dir).rounds[1].confidence_table).to_pylist()
    by_id = {r["id"]: r for r in table}
    expected = sum(
        by_id[i]["n_tokens"] + 4.0 * by_id[i]["sf.n_entities"] + 8.0 for i in rounds[1]["ids"]
    )
    assert rounds[1]["cost"] == pytest.approx(expected)
    assert rounds[1]["cost"] <= 60
    # noise-free times: the fit predicts round 1's measured time exactly
    record = load_state(run_dir).rounds[1]
    assert record.annotation_seconds["fitted"] == pytest.approx(record.annotation_seconds["total"])
    assert any("the costs fitted before this round predicted" in line for line in lines)


def _gold_files(
    folder: Path, run_dir: Path, iteration: int, train: pa.Table, *, no_slots: bool = False
) -> list[Path]:
    """The batch's gold labels as files (``no_slots``: every slot tag ``O``)."""
    manifest = json.loads((round_dir(run_dir, iteration) / "manifest.json").read_text())
    target = folder / f"round_{iteration}"
    rows = take_ids(train, manifest["ids"])
    if no_slots:
        tags = [["O"] * len(t) for t in rows.column("tokens").to_pylist()]
        rows = rows.set_column(
            rows.schema.get_field_index("sf.tags"), "sf.tags", pa.array(tags, pa.list_(pa.string()))
        )
    write_split(rows, target, "slu")
    return [target]


def test_human_mode_stops_imports_and_continues(tmp_path, reference):
    from mtal_ray.data import make_synthetic_corpus

    train = make_synthetic_corpus(60, 10, 10, seed=0).splits["train"]
    run_dir = tmp_path / "run"
    config = _config("annotation.mode=human")
    recorder = Recorder()

    def human_loop(trainer=None):
        return _loop(
            run_dir, config, trainer=trainer, annotator=FileAnnotator(), callbacks=[recorder]
        )

    summary = human_loop().run()
    assert summary.status == "awaiting_annotation"
    assert "mtal-ray import" in summary.message
    assert recorder.events[-1] == ("end", "awaiting_annotation", "NoneType")
    state = load_state(run_dir)
    assert (str(state.step), state.iteration) == ("annotate", 0)
    # waiting again does nothing new
    assert human_loop().run().status == "awaiting_annotation"
    # people return the batch (here: the gold labels); the run goes on to the next batch
    import_annotations(run_dir, 0, _gold_files(tmp_path / "returned", run_dir, 0, train))
    trainer = FakeTrainer()
    assert human_loop(trainer).run().status == "awaiting_annotation"
    assert load_state(run_dir).iteration == 1
    human_rows = take_ids(trainer.calls[0], reference_ids := reference["outcome"]["selected"][0])
    assert human_rows.column("id.label").null_count == 0  # the imported labels train the model
    # round 1's annotator marks no slot at all
    returned = _gold_files(tmp_path / "returned", run_dir, 1, train, no_slots=True)
    import_annotations(run_dir, 1, returned)
    summary = human_loop().run()
    assert summary.status == "finished"
    # the labels returned do not change what is selected (the scores are by id)
    assert _outcome(run_dir)["selected"] == reference["outcome"]["selected"]
    assert reference_ids == _outcome(run_dir)["selected"][0]
    # the annotated cost counts the labels people gave: words + slots + 3 for the intent
    gold = {r["id"]: r for r in train.to_pylist()}
    words = [sum(len(gold[i]["tokens"]) for i in ids) for ids in _outcome(run_dir)["selected"]]
    slots = sum(
        sum(t.startswith("B-") for t in gold[i]["sf.tags"])
        for i in _outcome(run_dir)["selected"][0]
    )
    rounds = load_state(run_dir).rounds
    ids_of_round_1 = _outcome(run_dir)["selected"][1]
    assert rounds[0].annotated_cost == words[0] + slots + 3 * 4
    assert rounds[1].annotated_cost == words[1] + 0 + 3 * 4  # no slot given ...
    gold_slots = [sum(t.startswith("B-") for t in gold[i]["sf.tags"]) for i in ids_of_round_1]
    assert sum(gold_slots) > 0  # ... where the gold labels have some


def test_a_selection_error_fails_the_run_and_keeps_the_scored_round(tmp_path):
    run_dir = tmp_path / "run"
    recorder = Recorder()
    with pytest.raises(SelectionError):
        _loop(run_dir, _config(), scorer=FakeScorer(nan=True), callbacks=[recorder]).run()
    assert recorder.events[-1] == ("end", "failed", "SelectionError")
    state = load_state(run_dir)
    assert (str(state.step), state.iteration) == ("select", 0)  # scoring is not lost
    assert state.round(0).confidence_table is not None


def test_a_changed_experiment_is_refused(tmp_path, reference):
    run_dir = tmp_path / "run"
    _loop(run_dir, _config("al.iterations=1")).run()
    with pytest.raises(MtalError, match="holds a different experiment"):
        _loop(run_dir, _config("al.iterations=1", "selection.method=mt-max")).run()


def test_unknown_step_in_state_is_one_clear_error(tmp_path):
    run_dir = tmp_path / "run"
    _loop(run_dir, _config("al.iterations=1")).run()
    data = json.loads((run_dir / "state.json").read_text())
    data["step"] = "dance"
    (run_dir / "state.json").write_text(json.dumps(data))
    with pytest.raises(MtalError, match="unknown step 'dance'"):
        _loop(run_dir, _config("al.iterations=1")).run()


def test_the_loop_imports_no_torch_and_no_ray():
    code = (
        "import sys, mtal_ray.driver.loop, mtal_ray.driver.observers, mtal_ray.driver.annotators;"
        "print(sorted(m for m in ('torch', 'ray', 'mlflow', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fake_unit_is_uniform_enough():
    values = np.array([_unit(i) for i in range(200)])
    assert 0.4 < values.mean() < 0.6


# ------------------------------------------------- al.iterations changed between launches


def _trainings(run_dir: Path) -> int:
    state = load_state(run_dir)
    assert state is not None
    return sum(1 for r in state.rounds if r.dev)


@pytest.mark.parametrize(
    ("crash_before", "trainings", "selections", "note"),
    [
        (11, 3, 2, "the run had trained 3 times; it ends"),  # at round 2's score
        (12, 3, 2, "the run had trained 3 times; it ends"),  # at round 2's select
        (13, 4, 3, "round 2's selection is already made, so the run finishes that round"),
        (15, 4, 3, "round 3's annotations are in, so the run trains on them (4 trainings)"),
    ],
)
def test_fewer_iterations_on_resume_never_select_beyond_them(
    tmp_path, crash_before, trainings, selections, note
):
    """Killed in round 2 of 5, resumed with al.iterations=3: with the third training done,
    nothing more is selected (a human batch costs money); a selection already made is
    annotated and trained on, and the user is told."""
    run_dir = tmp_path / "run"
    with pytest.raises(Crash):
        _loop(run_dir, _config("al.iterations=5"), callbacks=[Recorder(crash_before)]).run()
    warnings: list[str] = []

    class Warned(LoopCallback):
        def on_run_start(self, run: RunInfo) -> None:
            warnings.extend(run.warnings)

    summary = _loop(run_dir, _config("al.iterations=3"), callbacks=[Warned()]).run()
    assert summary.status == "finished"
    assert any(note in w for w in warnings), warnings
    assert _trainings(run_dir) == trainings
    assert len(list((run_dir / "rounds").glob("round_*/selection.json"))) == selections
    state = load_state(run_dir)
    assert state is not None and state.done and state.iterations == trainings


def test_more_iterations_continue_a_finished_run_and_config_json_follows(tmp_path):
    run_dir = tmp_path / "run"
    _loop(run_dir, _config("al.iterations=2")).run()
    assert _trainings(run_dir) == 2
    (run_dir / "labels.json").unlink()  # as a kill right after state.json would leave it
    _loop(run_dir, _config("al.iterations=4")).run()
    assert _trainings(run_dir) == 4
    stored = json.loads((run_dir / "config.json").read_text())
    assert stored["al"]["iterations"] == 4  # what mtal-ray import resumes with
    assert (run_dir / "labels.json").exists()
