"""A Label Studio campaign against a real server: tasks with pre-annotations go out, a
scripted annotator submits corrected annotations through the REST API, the run resumes
with exactly those annotations (SF+ID on the synthetic corpus, DP+NER on EWT sentences).

The loop runs in-process with the fake trainer and scorer of ``test_driver_loop`` and a
fake predictor (the pre-annotations); only the annotation tool is real. Label Studio runs
from its own cached virtual environment (``.ci/install_label_studio.sh``); the test
builds it when missing and never skips in CI (``CI`` set).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtal_ray.cli import main as cli
from mtal_ray.config import load_config
from mtal_ray.data import load_corpus, take_ids
from mtal_ray.driver.annotation import IMPORTED, read_manifest, round_dir
from mtal_ray.driver.loop import ActiveLearningLoop
from mtal_ray.driver.state import load_state
from mtal_ray.errors import MtalError
from mtal_ray.label_studio.annotator import (
    LabelStudioAnnotator,
    check_label_studio,
    pull_round,
    run_key,
)
from mtal_ray.label_studio.client import LabelStudioClient
from mtal_ray.label_studio.convert import prediction_result
from mtal_ray.ports import LoopPorts
from mtal_ray.taskspec import TASK_SPECS
from tests.label_studio_server import Server, label_studio_bin, label_studio_server
from tests.test_driver_loop import FakeScorer, FakeTrainer

pytestmark = pytest.mark.integration

TOKEN_ENV = "MTAL_TEST_LABEL_STUDIO_TOKEN"
EWT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ewt_dp_ner"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    try:
        label_studio_bin()
    except RuntimeError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Label Studio's virtual environment cannot be built here: {err}")
    started = time.perf_counter()
    with label_studio_server() as running:
        print(f"label-studio answered after {time.perf_counter() - started:.0f}s")
        yield running


@pytest.fixture
def token(server: Server, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(TOKEN_ENV, server.token)
    return server.token


class GoldPredictor:
    """The model's predictions: the gold rows with one deliberate mistake per sentence."""

    def __init__(self, gold: pa.Table, tasks: list[str]) -> None:
        self.gold = {r["id"]: r for r in gold.to_pylist()}
        self.tasks = tasks
        self.calls = 0

    def predict(self, checkpoint: str, rows: pa.Table) -> pa.Table:
        self.calls += 1
        out = []
        for sid in rows.column("id").to_pylist():
            row = dict(self.gold[sid])
            for task in self.tasks:
                if TASK_SPECS[task].kind == "tagging" and row.get(f"{task}.tags"):
                    row[f"{task}.tags"] = ["O"] * len(row["tokens"])  # missed every entity
            out.append(row)
        return pa.Table.from_pylist(out)


def _config(tmp_path: Path, server: Server, *overrides: str):
    return load_config(
        None,
        [
            "data.initial_count=6",
            "selection.n=4",
            "al.iterations=3",
            "tracking.enabled=false",
            "annotation.mode=label-studio",
            f"annotation.label_studio.url={server.url}",
            f"annotation.label_studio.token_env={TOKEN_ENV}",
            f"annotation.label_studio.project=test {tmp_path.name}",
            *overrides,
        ],
    )


def _loop(config, run_dir, annotator, trainer=None) -> ActiveLearningLoop:
    ports = LoopPorts(trainer=trainer or FakeTrainer(), scorer=FakeScorer(), annotator=annotator)
    return ActiveLearningLoop(config, run_dir, ports=ports, callbacks=[])


def _round_tasks(client: LabelStudioClient, run_dir: Path, iteration: int) -> list[dict]:
    project = read_manifest(run_dir, iteration)["label_studio"]["project"]
    key = run_key(run_dir)
    return [
        t
        for t in client.tasks(project)
        if t["data"]["mtal_run"] == key and t["data"]["mtal_round"] == iteration
    ]


def _corrected(gold: dict[str, Any], sid: str, tasks: list[str], k: int, labels) -> dict:
    """What the scripted annotator submits: gold, with a deliberate edit on some sentences."""
    row = {c: v for c, v in gold[sid].items() if c in ("id", "tokens")}
    for task in tasks:
        for name in TASK_SPECS[task].column_names:
            row[name] = gold[sid].get(name)
    if k == 0 and "id" in tasks:  # another intent
        row["id.label"] = next(x for x in sorted(labels["id"]) if x != row["id.label"])
    if k == 1:  # one entity / slot dropped (or, when there is none, one added)
        for task in ("ner", "sf"):
            if task in tasks:
                tags = list(row[f"{task}.tags"])
                if any(t != "O" for t in tags):
                    first = next(i for i, t in enumerate(tags) if t.startswith("B-"))
                    tags[first] = "O"
                    j = first + 1
                    while j < len(tags) and tags[j].startswith("I-"):
                        tags[j] = "O"
                        j += 1
                else:
                    tags[0] = next(t for t in sorted(labels[task]) if t.startswith("B-"))
                row[f"{task}.tags"] = tags
    if k == 2 and "dp" in tasks:  # another relation label on the root's dependent
        deprels = list(row["dp.deprel"])
        i = next(i for i, h in enumerate(row["dp.head"]) if h != 0)
        deprels[i] = next(d for d in sorted(labels["dp"]) if d not in (deprels[i], "root"))
        row["dp.deprel"] = deprels
    return row


def _annotate(
    client: LabelStudioClient,
    tasks: list[dict],
    gold: dict,
    labels,
    expected: dict[str, dict],
    *,
    pause: float = 0.0,
    start: int = 0,
) -> None:
    for k, task in enumerate(sorted(tasks, key=lambda t: t["data"]["mtal_id"]), start):
        sid, asked = task["data"]["mtal_id"], task["data"]["mtal_tasks"]
        row = _corrected(gold, sid, asked, k, labels)
        expected[sid] = row
        client.annotate(
            task["id"], prediction_result(row, asked), lead_time=10.0 + k, was_cancelled=False
        )
        time.sleep(pause)


def _campaign(tmp_path: Path, server: Server, config, gold_table: pa.Table, tasks: list[str]):
    run_dir = tmp_path / "run"
    client = LabelStudioClient(server.url, server.token)
    gold = {r["id"]: r for r in gold_table.to_pylist()}
    predictor = GoldPredictor(gold_table, tasks)
    check_label_studio(config)  # what the launcher does before Ray starts
    annotator = LabelStudioAnnotator(config.annotation.label_studio, predictor)

    # round 0: the selection becomes tasks with scored pre-annotations; the run stops
    summary = _loop(config, run_dir, annotator).run()
    assert summary.status == "awaiting_annotation"
    assert "mtal-ray import" in summary.message and "--from label-studio" in summary.message
    tasks0 = _round_tasks(client, run_dir, 0)
    manifest = read_manifest(run_dir, 0)
    assert sorted(t["data"]["mtal_id"] for t in tasks0) == sorted(manifest["ids"])
    confidence = pq.read_table(run_dir / "rounds" / "round_0" / "confidence.parquet").to_pylist()
    conf = {r["id"]: r for r in confidence}
    for task in tasks0:
        sid, asked = task["data"]["mtal_id"], task["data"]["mtal_tasks"]
        assert asked == manifest["tasks"][sid]
        (prediction,) = task["predictions"]
        mean = sum(conf[sid][f"{t}.ec"] for t in asked) / len(asked)
        assert prediction["score"] == pytest.approx(mean, abs=1e-5)
        shown = {r["from_name"] for r in prediction["result"] if "from_name" in r}
        assert shown <= set(asked)
    # waiting again imports nothing twice
    assert _loop(config, run_dir, annotator).run().status == "awaiting_annotation"
    assert len(_round_tasks(client, run_dir, 0)) == len(tasks0)
    assert predictor.calls == 1

    labels = json.loads((run_dir / "labels.json").read_text())
    expected: dict[str, dict] = {}
    # a partial round never enters the labeled set
    _annotate(client, tasks0[:-1], gold, labels, expected)
    assert cli(["import", str(run_dir), "--from", "label-studio", "--no-resume"]) == 2
    assert not (round_dir(run_dir, 0) / IMPORTED).exists()
    status = pull_round(client, run_dir, 0)
    assert (status.done, status.total, status.imported) == (len(tasks0) - 1, len(tasks0), None)
    _annotate(client, tasks0[-1:], gold, labels, expected, start=len(tasks0) - 1)
    # complete: imported (validated), then a second import changes nothing
    started = time.perf_counter()
    assert cli(["import", str(run_dir), "--from", "label-studio", "--no-resume"]) == 0
    print(f"import of {len(tasks0)} tasks: {time.perf_counter() - started:.1f}s")
    first = pq.read_table(round_dir(run_dir, 0) / IMPORTED)
    assert cli(["import", str(run_dir), "--from", "label-studio", "--no-resume"]) == 2
    again = pull_round(client, run_dir, 0).imported
    assert again is not None and again.equals(first)
    _check_rows(first, expected, tasks)

    # the run resumes and trains on exactly those annotations
    trainer = FakeTrainer()
    summary = _loop(config, run_dir, annotator, trainer).run()
    assert summary.status == "awaiting_annotation" and load_state(run_dir).iteration == 1
    _check_rows(take_ids(trainer.calls[0], list(expected)), expected, tasks)
    timed = load_state(run_dir).round(0).annotation_seconds
    assert timed["total"] == pytest.approx(sum(10.0 + k for k in range(len(tasks0))))

    # round 1 with annotation.wait=poll: the driver polls while people annotate
    lines: list[str] = []
    poller = LabelStudioAnnotator(
        config.annotation.label_studio, predictor, wait="poll", poll_seconds=0.5, echo=lines.append
    )
    tasks1 = _round_tasks(client, run_dir, 1)
    expected1: dict[str, dict] = {}
    worker = threading.Thread(
        target=_annotate, args=(client, tasks1, gold, labels, expected1), kwargs={"pause": 1.5}
    )
    worker.start()
    trainer = FakeTrainer()
    summary = _loop(config, run_dir, poller, trainer).run()
    worker.join()
    assert summary.status == "finished"
    n = len(tasks1)
    assert f"round 1: {n}/{n} sentences annotated: imported" in lines
    assert any(f"/{n} sentences annotated" in line and f"{n}/{n}" not in line for line in lines)
    _check_rows(take_ids(trainer.calls[0], list(expected1)), expected1, tasks)
    return run_dir


def _check_rows(table: pa.Table, expected: dict[str, dict], tasks: list[str]) -> None:
    rows = {r["id"]: r for r in table.to_pylist()}
    assert set(rows) == set(expected)
    for sid, want in expected.items():
        for task in tasks:
            for name in TASK_SPECS[task].column_names:
                assert rows[sid].get(name) == want.get(name), (sid, name)


def test_sf_id_campaign(tmp_path: Path, server: Server, token: str) -> None:
    config = _config(
        tmp_path,
        server,
        "data.synthetic.n_train=60",
        "data.synthetic.n_dev=10",
        "data.synthetic.n_test=10",
    )
    from mtal_ray.data import make_synthetic_corpus

    train = make_synthetic_corpus(60, 10, 10, seed=0).splits["train"]
    _campaign(tmp_path, server, config, train, ["sf", "id"])


def test_dp_ner_campaign(tmp_path: Path, server: Server, token: str) -> None:
    if not EWT.is_dir():
        if os.environ.get("CI"):
            raise AssertionError(f"{EWT} is missing (CI provides ../shared/data)")
        pytest.skip(f"{EWT} is missing")
    corpus = tmp_path / "ewt"
    corpus.mkdir()
    for split, n in (("train", 40), ("dev", 8), ("test", 8)):
        blocks = (EWT / f"{split}.conllu").read_text(encoding="utf-8").split("\n\n")[:n]
        (corpus / f"{split}.conllu").write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    config = _config(
        tmp_path, server, f"data.path={corpus}", "data.format=conllu", "selection.method=mt-ind"
    )
    train = load_corpus(corpus, "conllu").splits["train"]
    _campaign(tmp_path, server, config, train, ["dp", "ner"])


def test_a_wrong_token_or_no_server_is_one_line_before_ray(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, server)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(MtalError, match=TOKEN_ENV):
        check_label_studio(config)
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    with pytest.raises(MtalError, match="refused") as err:
        check_label_studio(config)
    assert "not-the-token" not in str(err.value)
    down = _config(tmp_path, server, "annotation.label_studio.url=http://127.0.0.1:9")
    with pytest.raises(MtalError, match="not reachable"):
        check_label_studio(down)
