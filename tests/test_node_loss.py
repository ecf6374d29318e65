"""Node loss for real (issue 15): several raylets on this machine (``ray.cluster_utils.Cluster``)
and a node removed in the middle of the work it hosts.

* A scoring actor's node, in the middle of a pool: every pool row must come back exactly
  once, with the scores of an undisturbed run (dropout masks are seeded per batch, so a
  batch retried on another node scores the same).
* A training worker's node, in the middle of a training: Ray Train restarts the worker
  group on the nodes left, from the last checkpoint, and the training ends with the model
  of an undisturbed run (dropout is seeded per step, the data order per epoch).
* A sweep trial's node, in the middle of its AL loop: Tune starts the trial again on a node
  left, the trial resumes its run directory where it stopped and makes the selections of
  an undisturbed run; the sweep's other trial runs once, untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
import ray.cloudpickle
import torch
from models_sample_rows import sf_id_table
from test_sweep_integration import TINY

from mtal_ray.data.vocab import LabelVocab
from mtal_ray.models import ModelConfig, build_model
from mtal_ray.scoring.buckets import bucket_table
from mtal_ray.scoring.config import ScoringConfig
from mtal_ray.scoring.mc_dropout import MCDropoutScorer
from mtal_ray.scoring.pool import score_pool
from mtal_ray.tasks.registry import build_tasks
from mtal_ray.training import TrainingConfig, load_checkpoint, train_model
from mtal_ray.training.checkpoint import PREDICTIONS_FILE, CheckpointInfo, save_checkpoint

pytestmark = pytest.mark.integration

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

LABELS = {"ner": ["O", "B-PER", "I-PER", "B-LOC"], "id": ["greet", "ask", "book"]}
WORDS = ["john", "lives", "in", "paris", "mary", "works", "at", "book", "a", "flight"]
CONFIG = {"k": 2, "concurrency": 2, "batch_size": 4, "cpus_per_actor": 0.5}


def _scorer_reporting_to(folder: Path) -> type[MCDropoutScorer]:
    """A scorer that notes the node of every batch it starts, then takes a second over it
    (time for the test to remove that node while the batch is in flight)."""

    class NodeReportingScorer(MCDropoutScorer):
        def __call__(self, batch: pa.Table) -> pa.Table:
            node = ray.get_runtime_context().get_node_id()
            first = batch.column("id")[0].as_py()
            (folder / f"{time.monotonic_ns():020d}-{first}").write_text(node)
            time.sleep(1.0)
            return super().__call__(batch)

    return NodeReportingScorer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model, collator = build_model(build_tasks(["ner", "id"], LABELS), ModelConfig())
    vocabs = {t: LabelVocab(t, tuple(labels)) for t, labels in LABELS.items()}
    info = CheckpointInfo(tasks=["ner", "id"], vocabs=vocabs, model=ModelConfig())
    return save_checkpoint(tmp_path_factory.mktemp("ckpt"), model, collator, info)


@pytest.fixture(scope="module")
def pool() -> pa.Table:
    rng = np.random.default_rng(1)
    tokens = [list(rng.choice(WORDS, size=int(rng.integers(1, 10)))) for _ in range(24)]
    return pa.table({"id": [f"s{i:02d}" for i in range(24)], "tokens": tokens})


def _in_process(checkpoint: Path, pool: pa.Table) -> pa.Table:
    cfg = ScoringConfig(**CONFIG)
    scorer = MCDropoutScorer(
        str(checkpoint), k=cfg.k, threads=1, seed=cfg.seed, max_tokens=cfg.max_tokens
    )
    blocks = bucket_table(pool.select(["id", "tokens"]), cfg.batch_size, cfg.max_tokens)
    table = pa.concat_tables([scorer(b) for b in blocks])
    return table.take(pa.compute.index_in(pool.column("id"), value_set=table.column("id")))


@pytest.fixture(scope="module")
def _multi_node():  # type: ignore[no-untyped-def]
    """A head without CPUs (the driver's node) and 1-CPU worker raylets, for the module."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture()
def cluster(_multi_node):  # type: ignore[no-untyped-def]
    """The module's cluster with three live 1-CPU worker raylets (a node an earlier test
    removed is replaced), and this process connected to it."""
    while len(list(_multi_node.worker_nodes)) < 3:
        _multi_node.add_node(num_cpus=1)
    _multi_node.wait_for_nodes(timeout=180)
    if not ray.is_initialized():
        ray.init(address=_multi_node.address, log_to_driver=False)
    return _multi_node, list(_multi_node.worker_nodes)


def test_losing_the_node_of_a_scoring_actor_scores_every_row_once(  # type: ignore[no-untyped-def]
    cluster, checkpoint: Path, pool: pa.Table, tmp_path: Path
) -> None:
    cluster_, workers = cluster
    folder = tmp_path / "batches"
    folder.mkdir()
    removed: list[tuple[str, str]] = []  # (node id, first id of the batch in flight there)

    def remove_a_busy_node() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not removed:
            started = sorted(folder.iterdir())  # by start time
            if len(started) >= 2:  # the latest batch is in flight (1 s) on its node
                node_id = started[-1].read_text()
                victim = next(w for w in workers if w.node_id == node_id)
                cluster_.remove_node(victim, allow_graceful=False)
                removed.append((node_id, started[-1].name.split("-", 1)[1]))
            time.sleep(0.1)

    remover = threading.Thread(target=remove_a_busy_node, daemon=True)
    remover.start()
    out = score_pool(
        pool, checkpoint, ScoringConfig(**CONFIG), scorer_cls=_scorer_reporting_to(folder)
    )
    remover.join(timeout=10)
    assert removed, "no node was removed while the pool was scored"
    assert out.column("id").to_pylist() == pool.column("id").to_pylist()  # each once, in order
    lost_node, lost_batch = removed[0]
    starts = [(p.name.split("-", 1)[1], p.read_text()) for p in sorted(folder.iterdir())]
    assert (lost_batch, lost_node) in starts
    retried_on = [node for first, node in starts if first == lost_batch and node != lost_node]
    assert retried_on, f"the batch lost with its node was not scored elsewhere: {starts}"
    expected = _in_process(checkpoint, pool)
    for col in ("ner.ec", "ner.da", "id.ec", "id.da"):
        np.testing.assert_allclose(out[col].to_numpy(), expected[col].to_numpy(), atol=1e-6)


def _worker_nodes_of_the_training() -> tuple[set[str], set[str]]:
    """(nodes hosting a live Ray Train worker, nodes hosting any other live Train actor)."""
    from ray.util.state import list_actors

    workers, others = set(), set()
    for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000):
        if actor.class_name == "RayTrainWorker":
            workers.add(actor.node_id)
        else:
            others.add(actor.node_id)
    return workers, others


def test_losing_the_node_of_a_training_worker_restores_and_ends_with_the_same_model(  # type: ignore[no-untyped-def]
    cluster, encoder: str, tmp_path: Path
) -> None:
    cluster_, workers = cluster
    table = sf_id_table(48)
    train, dev = table.slice(0, 32), table.slice(32)
    config = TrainingConfig(
        num_workers=2,
        batch_size=8,
        eval_every=8,
        max_steps=96,
        lr=1e-3,
        max_failures=2,
        checkpoint_when="every-eval",  # the node goes once two checkpoints are on disk
    )
    model = ModelConfig(encoder=encoder)
    undisturbed = train_model(train, dev, ["sf", "id"], model, config, tmp_path / "undisturbed")
    assert undisturbed.resumed_from_step == 0

    storage = tmp_path / "disturbed"
    removed: list[tuple[str, int]] = []  # (node id, checkpoints on disk when it went)

    def remove_a_training_node() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not removed:
            checkpoints = list(storage.glob("train/**/checkpoint_*"))
            if len(checkpoints) >= 2:
                # the controller registers a reported checkpoint at its next poll of the
                # workers (every 0.2 s: trainer.HEALTH_CHECK_INTERVAL_S): the first one has
                # been registered by now; 80 steps are left, so a fast machine cannot
                # finish the training before the node goes
                time.sleep(1.0)
                busy, others = _worker_nodes_of_the_training()
                victims = [w for w in workers if w.node_id in busy - others]
                if victims:
                    cluster_.remove_node(victims[0], allow_graceful=False)
                    removed.append((victims[0].node_id, len(checkpoints)))
            time.sleep(0.1)

    remover = threading.Thread(target=remove_a_training_node, daemon=True)
    remover.start()
    started = time.monotonic()
    disturbed = train_model(train, dev, ["sf", "id"], model, config, storage)
    remover.join(timeout=10)
    assert removed, "no training node was removed while the model trained"
    assert disturbed.resumed_from_step > 0, "the restarted workers did not restore a checkpoint"
    assert disturbed.resumed_from_step < config.max_steps
    assert disturbed.steps == undisturbed.steps
    assert disturbed.best_step == undisturbed.best_step
    assert disturbed.dev_gmean == pytest.approx(undisturbed.dev_gmean, abs=1e-9)
    before = pq.read_table(undisturbed.checkpoint_dir / PREDICTIONS_FILE)
    after = pq.read_table(disturbed.checkpoint_dir / PREDICTIONS_FILE)
    assert after.equals(before), "the restored training predicts otherwise"
    weights_before = load_checkpoint(undisturbed.checkpoint_dir)[0].state_dict()
    weights_after = load_checkpoint(disturbed.checkpoint_dir)[0].state_dict()
    differing = [k for k, v in weights_before.items() if not torch.equal(v, weights_after[k])]
    assert not differing, f"the restored training ended with other weights: {differing[:5]}"
    print(
        f"node removed; resumed from step {disturbed.resumed_from_step}, "
        f"{time.monotonic() - started:.0f}s"
    )


REPO = Path(__file__).resolve().parents[1]
SWEEP = [
    # a tiny corpus, 2 iterations
    *(o for o in TINY if not o.startswith(("sweep.grid", "training.num_workers"))),
    # a Ray Train worker inside a Tune trial (the other sweep tests train in the trial actor)
    "training.num_workers=1",
    "training.cpus_per_worker=0.5",
    "scoring.cpus_per_actor=0.5",
    "sweep.max_concurrent_trials=1",
    "sweep.max_failures=2",
    # two trials that compute the same thing (keeping Ray's checkpoints changes no number):
    # the one that runs undisturbed is the other's reference
    "sweep.grid={selection.method: [mt-avg], training.keep_checkpoints: [false, true], seed: [0]}",
]


def _selections(trial_dir: Path) -> list[list[str]]:
    found = sorted(trial_dir.glob("rounds/round_*/selection.json"))
    return [json.loads(p.read_text())["ids"] for p in found]


def _trial_record(trial_dir: Path) -> dict:
    return json.loads((trial_dir / "trial.json").read_text())


def test_losing_the_node_of_a_sweep_trial_resumes_it_and_leaves_the_other_alone(  # type: ignore[no-untyped-def]
    cluster, encoder: str, tmp_path: Path
) -> None:
    from ray.util.state import list_actors

    cluster_, workers = cluster
    sweep_dir = tmp_path / "sweep"
    removed: list[tuple[str, Path]] = []  # (node id, the trial that ran there)

    def remove_a_trials_node() -> None:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and not removed:
            # a trial that trained its first model and has not selected yet
            trained = [
                p.parents[3]
                for p in sweep_dir.glob("trials/*/rounds/round_0/train/best")
                if not (p.parents[3] / "rounds" / "round_0" / "selection.json").exists()
            ]
            if trained:
                trials = list_actors(
                    filters=[("class_name", "=", "ImplicitFunc"), ("state", "=", "ALIVE")]
                )
                nodes = {a.node_id for a in trials}
                victims = [w for w in workers if w.node_id in nodes]
                if len(trials) == 1 and victims:  # one trial at a time: it is that one
                    cluster_.remove_node(victims[0], allow_graceful=False)
                    removed.append((victims[0].node_id, trained[0]))
            time.sleep(0.2)

    remover = threading.Thread(target=remove_a_trials_node, daemon=True)
    remover.start()
    started = time.monotonic()
    command = [
        sys.executable, "-m", "mtal_ray.cli", "sweep",
        "--config", str(REPO / "configs" / "sweep_quickstart.yaml"),
        "--sweep-dir", str(sweep_dir), f"model.encoder={encoder}", *SWEEP,
    ]  # fmt: skip
    env = dict(os.environ, RAY_ADDRESS=cluster_.address, HF_HUB_OFFLINE="1")
    done = subprocess.run(
        command, cwd=tmp_path, env=env, text=True, timeout=1200,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    remover.join(timeout=10)
    assert done.returncode == 0, done.stdout[-3000:]
    assert removed, "no trial's node was removed while the sweep ran"
    victim = removed[0][1]
    (other,) = [p for p in (sweep_dir / "trials").iterdir() if p.is_dir() and p != victim]
    assert _trial_record(victim)["status"] == "finished"
    assert _trial_record(victim)["attempts"] == 2, _trial_record(victim)
    assert _trial_record(other)["status"] == "finished"
    assert _trial_record(other)["attempts"] == 1, _trial_record(other)
    # the retried trial selected after the loss, and as the undisturbed twin did
    assert len(_selections(other)) == 1
    assert _selections(victim) == _selections(other)
    print(f"trial node removed; the sweep finished in {time.monotonic() - started:.0f}s")
