"""MLflow the way its users expect (issue 21): kind tag, source tags, dataset lineage, the
model as a pyfunc (registered, loadable, predicting what the run's model predicts), round
tables, and ``mtal-ray predict`` round-tripping a corpus.

Cheap unit tests first (a SQLite store, no training); then ONE tiny real run (tiny random
encoder, a tiny synthetic corpus, 2 iterations, ``--local``) tracked through a local
``mlflow server`` (on a SQLite store, 127.0.0.1, a free port) shared by the integration
tests, which read the results both through the server and from the SQLite file directly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from mtal_ray.data import load_corpus
from mtal_ray.data.lineage import ids_digest, labeled_summary, table_digest
from mtal_ray.data.synthetic import make_synthetic_corpus, write_synthetic_corpus

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "mtal-lineage-ci"
KIND = "mlflow.experimentKind"


# ---------------------------------------------------------------- unit (no training)
def test_digests_follow_content_not_layout() -> None:
    import pyarrow as pa

    table = make_synthetic_corpus(20, 2, 2, seed=1).split("train")
    rechunked = pa.concat_tables([table.slice(0, 7), table.slice(7)])
    assert table_digest(rechunked) == table_digest(table)
    assert table_digest(table.slice(1)) != table_digest(table)
    assert ids_digest(["b", "a"]) == ids_digest(["a", "b"]) != ids_digest(["a"])
    summary = labeled_summary({"sf": ["a", "b"], "id": ["a"]})
    assert summary["rows"] == 2 and summary["sizes"] == {"sf": 2, "id": 1}
    assert summary["digests"]["id"] == ids_digest(["a"])


def test_experiment_kind_is_set_on_create_and_never_overridden(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from mtal_ray.mlflow_tracking import MlflowTarget

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri)
    theirs = client.create_experiment("theirs", tags={KIND: "genai_development"})
    art = (tmp_path / "art").as_uri()
    assert MlflowTarget(uri, "theirs", art).experiment_id() == theirs
    assert client.get_experiment(theirs).tags[KIND] == "genai_development"
    ours = MlflowTarget(uri, "ours", art).experiment_id()
    assert client.get_experiment(ours).tags[KIND] == "custom_model_development"


def test_source_tags_name_the_entry_point_and_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    from mtal_ray.mlflow_tracking import ENTRY_POINT_ENV, code_version, source_tags

    monkeypatch.setenv(ENTRY_POINT_ENV, "/somewhere/mtal_ray/launch.py")
    tags = source_tags()
    assert tags["mlflow.source.name"] == "/somewhere/mtal_ray/launch.py"
    assert tags["mlflow.source.type"] == "LOCAL"
    if (REPO / ".git").exists():
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        assert tags["mlflow.source.git.commit"] == head == code_version()


# ---------------------------------------------------------- one tiny tracked run
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """``mlflow server`` on a SQLite store, 127.0.0.1, a free port (stopped after)."""
    folder = tmp_path_factory.mktemp("mlflow")
    db = folder / "mlruns.db"
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{db}",
            "--default-artifact-root", (folder / "mlartifacts").as_uri(),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=(folder / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((folder / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    yield {"url": url, "sqlite": f"sqlite:///{db}", "folder": folder}
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def tracked_run(mlflow_server, encoder, tmp_path_factory: pytest.TempPathFactory):
    """One 2-iteration run (rounds' models logged, the final one registered), launched as
    ``python -m mtal_ray.launch --local`` against the server."""
    folder = tmp_path_factory.mktemp("lineage")
    data = write_synthetic_corpus(folder / "corpus", n_train=48, n_dev=12, n_test=10, seed=2)
    config = {
        "seed": 5,
        "data": {"path": str(data), "tasks": ["sf", "id"], "initial_count": 12,
                 "dev_multiple": 1.0},
        "model": {"encoder": encoder, "sharing": "smt"},
        # local mode: the lineage does not depend on where a round trains
        "training": {"num_workers": 0, "batch_size": 8, "max_steps": 6, "eval_every": 3,
                     "patience": 2},
        "scoring": {"k": 2, "concurrency": 1, "cpus_per_actor": 0.5, "batch_size": 16},
        "selection": {"method": "mt-avg", "n": 6},
        "al": {"iterations": 2},
        "tracking": {"tracking_uri": mlflow_server["url"], "experiment": "lineage-ci",
                     "log_models": "rounds", "register_model": MODEL_NAME},
    }  # fmt: skip
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run_dir = folder / "run"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mtal_ray.launch", "--config", str(path),
         "--run-dir", str(run_dir), "--local"],
        cwd=REPO,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-5000:]
    print(f"tracked run: {time.monotonic() - started:.0f}s")
    state = json.loads((run_dir / "state.json").read_text())
    return {
        **mlflow_server,
        "data": data,
        "run_dir": run_dir,
        "state": state,
        "run_id": state["mlflow_run_id"],
        "output": out,
    }


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.mark.integration
def test_experiment_kind_and_source_tags(tracked_run) -> None:
    for uri in (tracked_run["url"], tracked_run["sqlite"]):  # the server and its store
        client = _client(uri)
        experiment = client.get_experiment_by_name("lineage-ci")
        assert experiment.tags[KIND] == "custom_model_development"
        run = client.get_run(tracked_run["run_id"])
        assert run.info.status == "FINISHED"
        tags = run.data.tags
        assert tags["mlflow.source.name"].endswith(str(Path("mtal_ray", "launch.py")))
        assert tags["mlflow.source.type"] == "LOCAL"
        if (REPO / ".git").exists():
            assert len(tags["mlflow.source.git.commit"]) == 40


@pytest.mark.integration
def test_dataset_inputs_carry_digests_sizes_and_contexts(tracked_run) -> None:
    run = _client(tracked_run["url"]).get_run(tracked_run["run_id"])
    inputs = {}
    for item in run.inputs.dataset_inputs:
        context = {t.key: t.value for t in item.tags}["mlflow.data.context"]
        inputs.setdefault(context, []).append(item.dataset)
    assert set(inputs) == {"train", "dev", "test", "pool", "labeled"}
    corpus = load_corpus(tracked_run["data"])
    for context in ("train", "test"):
        (dataset,) = inputs[context]
        split = corpus.splits[context]
        assert dataset.name == f"corpus/{context}"
        assert dataset.digest == table_digest(split)
        assert json.loads(dataset.source)["uri"] == str(tracked_run["data"] / context)
        profile = json.loads(dataset.profile)
        assert profile["num_rows"] == split.num_rows
        assert profile["tasks"] == ["sf", "id"]
    state = tracked_run["state"]
    (dev,) = inputs["dev"]
    assert json.loads(dev.profile)["num_rows"] == len(state["dev"])
    (pool,) = inputs["pool"]
    assert json.loads(pool.profile)["num_rows"] == state["pool_size"] + 6  # the initial pool
    labeled = sorted(inputs["labeled"], key=lambda d: d.name)
    assert [d.name for d in labeled] == ["corpus/labeled-round-0", "corpus/labeled-round-1"]
    sizes = [json.loads(d.profile)["sizes"] for d in labeled]
    assert sizes == [{"sf": 12, "id": 12}, {"sf": 18, "id": 18}]
    final = {t: ids for t, ids in state["labeled"].items()}
    assert labeled[1].digest == labeled_summary(final)["digest"]


@pytest.mark.integration
def test_round_tables_are_logged(tracked_run) -> None:
    client = _client(tracked_run["url"])
    folder = "rounds/round_0"
    names = {Path(f.path).name for f in client.list_artifacts(tracked_run["run_id"], folder)}
    assert {"confidence_summary.json", "selection_table.json", "selection.json"} <= names
    local = client.download_artifacts(
        tracked_run["run_id"], f"{folder}/confidence_summary.json", str(tracked_run["folder"])
    )
    table = json.loads(Path(local).read_text())
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]
    assert {(r["task"], r["confidence"]) for r in rows} >= {("sf", "ec"), ("id", "ec")}
    assert all(r["selected_n"] == 6 for r in rows if r["confidence"] == "ec")


def _final_predictions(tracked_run):
    from mtal_ray.models.inference import predict
    from mtal_ray.training.checkpoint import load_checkpoint

    checkpoint = tracked_run["state"]["rounds"][-1]["checkpoint"]
    model, collator, _ = load_checkpoint(checkpoint)
    test = load_corpus(tracked_run["data"]).splits["test"]
    return test, predict(model, collator, test)


@pytest.mark.integration
def test_logged_model_is_registered_and_predicts_like_the_run(tracked_run) -> None:
    import mlflow
    import pandas as pd
    from mlflow.entities import LoggedModelStatus

    client = _client(tracked_run["url"])
    run = client.get_run(tracked_run["run_id"])
    models = {
        client.get_logged_model(o.model_id).name: (o.step, o.model_id)
        for o in run.outputs.model_outputs
    }
    assert models.keys() == {"round_0", "model"}
    assert models["model"][0] == 1 and models["round_0"][0] == 0
    version = client.get_model_version(MODEL_NAME, "1")
    assert version.run_id == tracked_run["run_id"]
    assert models["model"][1] in (version.model_id, version.source.rpartition("/")[2])
    logged = client.get_logged_model(models["model"][1])
    assert logged.status == LoggedModelStatus.READY
    assert "dev.sf" in {m.key for m in logged.metrics or []}  # the round's metrics, linked

    mlflow.set_tracking_uri(tracked_run["url"])
    try:
        pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    finally:
        mlflow.set_tracking_uri(None)
    signature = pyfunc.metadata.signature
    assert signature.inputs.input_names()[0] == "tokens"
    assert {"sf.tags", "id.label"} <= set(signature.outputs.input_names())
    assert pyfunc.metadata.saved_input_example_info is not None
    test, expected = _final_predictions(tracked_run)
    got = pyfunc.predict(pd.DataFrame({"tokens": test.column("tokens").to_pylist()}))
    assert [list(t) for t in got["sf.tags"]] == expected.column("sf.tags").to_pylist()
    assert got["id.label"].tolist() == expected.column("id.label").to_pylist()


@pytest.mark.integration
def test_predict_command_round_trips_a_corpus(tracked_run, tmp_path: Path) -> None:
    from mtal_ray.cli import main

    source = tracked_run["data"] / "test"
    _, expected = _final_predictions(tracked_run)
    outputs = {}
    for label, model in (("registry", f"models:/{MODEL_NAME}/1"), ("run", tracked_run["run_dir"])):
        out = tmp_path / label
        argv = ["predict", "--model", str(model), "--data", str(source), "--output", str(out)]
        assert main([*argv, "--tracking-uri", tracked_run["url"]]) == 0
        written = load_corpus(out)
        (table,) = written.splits.values()
        assert written.format == "slu"
        assert table.num_rows == expected.num_rows  # slu files carry no ids: rows in order
        assert table.column("tokens").to_pylist() == expected.column("tokens").to_pylist()
        assert table.column("sf.tags").to_pylist() == expected.column("sf.tags").to_pylist()
        assert table.column("id.label").to_pylist() == expected.column("id.label").to_pylist()
        outputs[label] = {p.name: p.read_text() for p in out.iterdir()}
    assert outputs["registry"] == outputs["run"]


def test_a_run_killed_before_its_id_was_saved_is_reopened_not_duplicated(tmp_path: Path) -> None:
    """The MLflow run exists but state.json never got its id (killed between the two): the
    resumed run finds it by the state's run key instead of creating a second run."""
    from mlflow.tracking import MlflowClient

    from mtal_ray.driver.callbacks import RunInfo
    from mtal_ray.driver.observers import MlflowCallback
    from mtal_ray.driver.state import LoopState
    from mtal_ray.mlflow_tracking import RUN_KEY_TAG, MlflowTarget

    class Config:
        def model_dump(self, mode: str = "json") -> dict:
            return {"seed": 0}

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    target = MlflowTarget(uri, "resume", (tmp_path / "art").as_uri())
    state = LoopState(config_digest="d", iterations=1)
    saved = state.to_json()  # what state.json holds: no run id yet
    first = MlflowCallback(target)
    first.on_run_start(RunInfo(tmp_path / "run", Config(), ["sf"], state, resumed=False))
    created = state.mlflow_run_id
    assert created is not None

    again = LoopState.from_dict(json.loads(saved))  # the relaunch reads the old state.json
    assert again.mlflow_run_id is None and again.run_key == state.run_key
    second = MlflowCallback(target)
    second.on_run_start(RunInfo(tmp_path / "run", Config(), ["sf"], again, resumed=True))
    assert again.mlflow_run_id == created
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([target.experiment_id()])
    assert [r.info.run_id for r in runs] == [created]
    assert runs[0].data.tags[RUN_KEY_TAG] == state.run_key

    other = LoopState(config_digest="d", iterations=1)  # another run: its own MLflow run
    assert other.run_key != state.run_key
    MlflowCallback(target).on_run_start(
        RunInfo(tmp_path / "other", Config(), ["sf"], other, resumed=False)
    )
    assert other.mlflow_run_id not in (None, created)


def test_a_run_whose_mlflow_store_moved_logs_to_a_new_run(tmp_path: Path, caplog) -> None:
    """state.json names an MLflow run the store does not hold (the store was deleted, or
    tracking.tracking_uri now points elsewhere): a warning and a new run, not MLflow's
    traceback on every launch."""
    from mtal_ray.driver.callbacks import RunInfo
    from mtal_ray.driver.observers import MlflowCallback
    from mtal_ray.driver.state import LoopState
    from mtal_ray.mlflow_tracking import MlflowTarget, run_exists

    class Config:
        def model_dump(self, mode: str = "json") -> dict:
            return {"seed": 0}

    old = MlflowTarget(f"sqlite:///{tmp_path / 'old.db'}", "moved", (tmp_path / "a").as_uri())
    state = LoopState(config_digest="d", iterations=1)
    MlflowCallback(old).on_run_start(RunInfo(tmp_path / "run", Config(), ["sf"], state, False))
    stale = state.mlflow_run_id
    assert stale is not None and run_exists(old, stale)

    new = MlflowTarget(f"sqlite:///{tmp_path / 'new.db'}", "moved", (tmp_path / "b").as_uri())
    assert not run_exists(new, stale)
    with caplog.at_level("WARNING", logger="mtal_ray.driver"):
        MlflowCallback(new).on_run_start(RunInfo(tmp_path / "run", Config(), ["sf"], state, True))
    assert state.mlflow_run_id not in (None, stale) and run_exists(new, state.mlflow_run_id)
    assert f"MLflow run {stale} of" in caplog.text and "logging to a new run" in caplog.text


def test_concurrent_runs_logging_the_same_datasets_all_succeed(tmp_path: Path) -> None:
    """Sweep trials of one experiment log the same splits at the same moment: MLflow looks a
    dataset up and then inserts it, so two runs can both insert it and one gets the store's
    unique-constraint error (the failure CI met). Each run must end up linked to every
    dataset, once."""
    import threading

    from mlflow.tracking import MlflowClient

    from mtal_ray.data.lineage import SplitSummary
    from mtal_ray.mlflow_tracking import MlflowTarget, log_datasets

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    target = MlflowTarget(uri, "race", (tmp_path / "art").as_uri())
    client = MlflowClient(tracking_uri=uri)
    experiment = target.experiment_id()
    runs = [client.create_run(experiment).info.run_id for _ in range(6)]
    rounds = 8
    barrier = threading.Barrier(len(runs))
    errors: list[BaseException] = []

    def trial(run_id: str) -> None:
        try:
            for r in range(rounds):
                split = SplitSummary(
                    name=f"corpus/labeled-{r}",
                    context="labeled",
                    source="corpus",
                    rows=r + 1,
                    digest=f"{r:012x}",
                )
                barrier.wait(timeout=60)  # every run inserts the new dataset at once
                log_datasets(target, run_id, [(split, split.context)])
        except BaseException as error:  # reported below
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=trial, args=(run_id,)) for run_id in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[0]
    for run_id in runs:
        inputs = client.get_run(run_id).inputs.dataset_inputs
        assert sorted(i.dataset.name for i in inputs) == [
            f"corpus/labeled-{r}" for r in range(rounds)
        ]
