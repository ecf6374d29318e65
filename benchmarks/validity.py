"""Do the selections beat random annotation? The paper's comparisons on our own sweeps.

For each scenario (``atis``: SF + ID, ``conll04``: NER + RE, ``ewt``: DP + NER from
``../shared/data``) this script writes one sweep config and runs it with ``mtal-ray sweep``
(Ray Tune + MLflow; a sweep resumes, so re-running this script continues where it
stopped). Every trial of a scenario shares the pool, the seeds and hence the initial
labeled sets and dev sets; the trials are

* **selectors** (paper §6, Table 10 shape): MT-R, MT-AVG, MT-MAX, MT-MIN, MT-PAR, MT-RRF,
  MT-IND (greedy, uniform task weights);
* **ST-AL** (Table 4 shape): ST-EC on each task with a single-task model
  (``model.sharing: st``, ``data.tasks: [t]``). Cross-task: after the sweep, a model for
  the other task is trained on the sentences ST-EC-t selected (the paper's protocol; for
  CoNLL04 only ST-EC-NER exists, and its RE model is an NER+RE model, RE needing NER);
* **CE** (Table 6 shape): MT-AVG trained with cross entropy (label smoothing 0), against
  the selectors' MT-AVG (label smoothing, the default); after the sweep the overconfidence
  error (OE, §5.5) of both final models is measured per task on the final unlabeled pool;
* **length** (ours, opt-in: not one of the paper's comparisons): MT-RRF with
  ``selection.uncertainty: total`` (a sentence's EC summed, not averaged, over its words),
  the remedy tried for the MT methods' short first selections; judged on dev first;
* **budget** (ATIS only, Table 8 shape): GRD_AL (``mt-min``, ``mt-rrf`` walking the
  ranking until ``--budget`` is spent) vs BLP_AL (``blp-joint-min``, ``blp-joint-rrf``),
  the same budget per round (paper §7 cost model: tp = 1, ts = 3);
* **budget-length** (ATIS only; ours, opt-in): the RRF budget pair with
  ``selection.uncertainty: total``. The paper's knapsack adds one mean uncertainty per
  sentence against a cost that grows with its length, so it buys short sentences; summed
  uncertainty grows with length too, which takes that bias out of the objective.

Protocol: each round's training converges: ``training.epochs`` (the budget follows the
labeled set) with an evaluation every ``--eval-every-epochs`` and early stopping after
``--patience`` evaluations without a better dev score (``training.min_steps`` /
``max_steps`` bound it). Initial set and per-round additions: 2 % of the pool (CoNLL04:
5 %, its 922 sentences would give 18), ``--rounds`` trainings (paper: 5). The pool is a
fixed random subset (seed 0, the same for every seed and method) of ``--pool-size``
sentences of the training split when given (EWT: 4000 by default), else the whole split.

Output: ``benchmarks/results/validity.json`` (scenario → method → seed → labeled sizes and
per-iteration test (and dev) scores per task and their geometric mean, plus OE /
cross-task scores; each scenario's protocol, and the file-wide one of the last command) and
the tables on stdout. The sweeps' own reports (``report.md`` with the paired comparison
with MT-R, ``gain_over_random.png``) are in ``--work-dir``.

    python benchmarks/validity.py --quick                    # a tiny end-to-end smoke run
    python benchmarks/validity.py                            # the full study (long)
    python benchmarks/validity.py --scenarios atis --seeds 0 1 2 --pool-size 2000
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import trial_archive  # benchmarks/trial_archive.py

from mtal_ray.data.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results" / "validity.json"

SELECTORS = ["mt-r", "mt-avg", "mt-max", "mt-min", "mt-par", "mt-rrf", "mt-ind"]
GRD_BLP = [("mt-min", "blp-joint-min"), ("mt-rrf", "blp-joint-rrf")]
#: The budget pair of ``--comparisons budget-length`` (with ``selection.uncertainty: total``):
#: RRF, as its ranks are not skewed by the per-task scaling of the total (MT-MIN's are).
GRD_BLP_TOTAL = GRD_BLP[1]
#: Label smoothing α of the LS arm (the defaults, paper §5.4 / §7.3); CE sets them to 0.
LS = {"dp": 0.2, "ner": 0.2, "re": 0.1, "sf": 0.1, "id": 0.1}


@dataclass
class Scenario:
    """A corpus of ``../shared/data`` and its tasks."""

    folder: str
    format: str
    tasks: list[str]
    st_tasks: list[str]
    initial_fraction: float = 0.02
    pool_size: int | None = None
    budget: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


SCENARIOS = {
    "atis": Scenario("atis", "slu", ["sf", "id"], ["sf", "id"], budget=True),
    "conll04": Scenario("conll04", "jsonl", ["ner", "re"], ["ner"], initial_fraction=0.05),
    "ewt": Scenario("ewt_dp_ner", "conllu", ["dp", "ner"], ["dp", "ner"], pool_size=4000),
}


# --------------------------------------------------------------------------- the pool


def _units(path: Path, fmt: str) -> list[str]:
    """The sentences of a split as text units (CoNLL-U blocks, JSON lines)."""
    text = path.read_text(encoding="utf-8")
    if fmt == "conllu":
        return [b.strip("\n") + "\n" for b in text.split("\n\n") if b.strip()]
    return [line for line in text.splitlines() if line.strip()]


def pool_corpus(scenario: Scenario, size: int | None, work: Path) -> Path:
    """The scenario's corpus folder; with ``size``, a copy whose train split is a fixed
    random subset (seed 0, file order kept) of ``size`` sentences, dev/test linked."""
    source = DATA / scenario.folder
    if size is None:
        return source
    target = work / "data" / f"{scenario.folder}_pool{size}"
    done = target / ".complete"
    if done.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    if scenario.format == "slu":
        files = ["seq.in", "seq.out", "label"]
        lines = {f: (source / "train" / f).read_text(encoding="utf-8").splitlines() for f in files}
        n = len(lines["seq.in"])
        keep = np.sort(np.random.default_rng(0).permutation(n)[: min(size, n)])
        (target / "train").mkdir(exist_ok=True)
        for f in files:
            picked = [lines[f][i] for i in keep]
            (target / "train" / f).write_text("\n".join(picked) + "\n", encoding="utf-8")
        splits = ["dev", "test"]
    else:
        suffix = ".conllu" if scenario.format == "conllu" else ".json"
        units = _units(source / f"train{suffix}", scenario.format)
        keep = np.sort(np.random.default_rng(0).permutation(len(units))[: min(size, len(units))])
        body = "\n".join(units[i] for i in keep) + "\n"
        (target / f"train{suffix}").write_text(body, encoding="utf-8")
        splits = [f"dev{suffix}", f"test{suffix}"]
    for name in splits:
        link = target / name
        if not link.exists():
            link.symlink_to(source / name)
    done.write_text("ok\n")
    return target


# --------------------------------------------------------------------------- sweep configs


def protocol(args: argparse.Namespace) -> dict[str, Any]:
    """The settings every trial shares (recorded in validity.json)."""
    return {
        "rounds": args.rounds,
        "seeds": args.seeds,
        "pool_size": args.pool_size,
        "limit_eval": args.limit_eval,
        "epochs": args.epochs,
        "eval_every_epochs": args.eval_every_epochs,
        "patience": args.patience,
        "min_steps": args.min_steps,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "head_lr": args.head_lr,
        "model": args.sharing,
        "scoring_k": args.k,
        "budget": args.budget,
        "initial": args.initial_count or "2 % of the pool (CoNLL04: 5 %)",
        "methods": args.methods,
        "comparisons": args.comparisons,
    }


def sweep_config(name: str, scenario: Scenario, corpus: Path, args: argparse.Namespace) -> dict:
    """The sweep config of one scenario (every comparison's trials in one sweep)."""
    seeds = list(args.seeds)
    grids: list[dict[str, list[Any]]] = [{"selection.method": list(args.methods), "seed": seeds}]
    if "st" in args.comparisons:
        for task in scenario.st_tasks[: args.st_tasks]:
            grids.append(
                {
                    "selection.method": ["st-ec"],
                    "selection.task": [task],
                    "data.tasks": [[task]],
                    "model.sharing": ["st"],
                    "seed": list(seeds),
                }
            )
    if "ce" in args.comparisons:
        ce = {f"training.label_smoothing.{t}": [0.0] for t in scenario.tasks}
        grids.append({"selection.method": ["mt-avg"], **ce, "seed": list(seeds)})
    if "length" in args.comparisons:  # ours: the EC summed over a sentence's words
        grids.append(
            {
                "selection.method": ["mt-rrf"],
                "selection.uncertainty": ["total"],
                "seed": list(seeds),
            }
        )
    if "budget" in args.comparisons and scenario.budget:
        methods = [m for pair in GRD_BLP[: args.budget_pairs] for m in pair]
        grids.append(
            {"selection.method": methods, "selection.budget": [args.budget], "seed": list(seeds)}
        )
    if "budget-length" in args.comparisons and scenario.budget:  # ours: the BLP's length bias
        grids.append(
            {
                "selection.method": list(GRD_BLP_TOTAL),
                "selection.budget": [args.budget],
                "selection.uncertainty": ["total"],
                "seed": list(seeds),
            }
        )
    return base_config(name, scenario, corpus, args, grids)


def base_config(
    name: str,
    scenario: Scenario,
    corpus: Path,
    args: argparse.Namespace,
    grids: list[dict[str, list[Any]]],
) -> dict:
    """A sweep config over ``grids`` with the shared protocol (``add_protocol_args``)."""
    data: dict[str, Any] = {
        "path": str(corpus),
        "format": scenario.format,
        "tasks": scenario.tasks,
        "dev_multiple": 2.0,
        **scenario.extra,
    }
    if args.initial_count:
        data["initial_count"] = args.initial_count
        data["initial_fraction"] = None
    else:
        data["initial_fraction"] = scenario.initial_fraction
    if args.limit_eval:
        data["limit_eval"] = args.limit_eval
    return {
        "seed": 0,
        "data": data,
        "model": {"sharing": args.sharing},
        "training": {
            "num_workers": 1,
            "cpus_per_worker": 0.99,  # + trial_cpus: two trials fit on 2 cores
            "batch_size": args.batch_size,
            "lr": args.lr,
            "head_lr": args.head_lr,
            "epochs": args.epochs,
            "eval_every_epochs": args.eval_every_epochs,
            "patience": args.patience,
            "min_steps": args.min_steps,
            "max_steps": args.max_steps,
            "label_smoothing": {t: LS[t] for t in scenario.tasks},
        },
        "scoring": {"k": args.k, "concurrency": 1, "cpus_per_actor": 0.99},
        "selection": {"method": "mt-avg", "tp": 1.0, "ts": 3.0},
        "al": {"iterations": args.rounds},
        "annotation": {"mode": "oracle"},
        "tracking": {"experiment": name},
        "sweep": {
            "name": name,
            "grid": grids,
            "trial_cpus": 0.01,
            **({"max_concurrent_trials": args.concurrent} if args.concurrent else {}),
        },
    }


def run_sweep(
    name: str,
    config: dict,
    work: Path,
    verbose: bool,
    archive: Path | None = None,
    archive_every_s: float = 120.0,
) -> int:
    """``mtal-ray sweep`` on ``config`` (resumes a sweep directory that exists). With
    ``archive``, every finished trial is copied there while the sweep runs (checked every
    ``archive_every_s``), so a machine lost mid-sweep loses only the trials in flight."""
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    sweep_dir = work / "sweeps" / name
    log = work / f"{name}.log"
    command = [sys.executable, "-m", "mtal_ray.cli", "sweep", "--config", str(path),
               "--sweep-dir", str(sweep_dir)]  # fmt: skip
    print(f"[{name}] sweep {sweep_dir} (log: {log})", flush=True)
    with log.open("a") as out:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=None if verbose else out, stderr=subprocess.STDOUT
        )
        tick = archiving(name, sweep_dir, archive) if archive is not None else lambda: None
        return wait_ticking(process, archive_every_s, tick)


def archiving(name: str, sweep_dir: Path, archive: Path) -> Callable[[], None]:
    """The sweep's tick: archive its finished trials; an error is printed, not raised (a
    copy that fails must not end a sweep of hours; the next tick tries again)."""

    def tick() -> None:
        try:
            archive_finished(name, sweep_dir, archive)
        except Exception as err:
            print(f"[{name}] archiving failed (tried again later): {err}", flush=True)

    return tick


def wait_ticking(process: subprocess.Popen, every_s: float, tick: Callable[[], Any]) -> int:
    """``process``'s exit code, calling ``tick`` every ``every_s`` while it runs. When the
    wait is interrupted (Ctrl-C, an error in ``tick``) the process is terminated, not
    left running without its parent."""
    try:
        while True:
            try:
                return process.wait(timeout=every_s)
            except subprocess.TimeoutExpired:
                tick()
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait()


def archive_finished(name: str, sweep_dir: Path, archive: Path) -> list[str]:
    """Copy the finished trials of ``sweep_dir`` that ``archive`` lacks; print their names."""
    saved = trial_archive.save(sweep_dir, archive)
    for trial in saved:
        print(f"[{name}] archived {trial} in {archive}", flush=True)
    return saved


# --------------------------------------------------------------------------- results


def method_key(params: dict[str, Any]) -> str:
    """``mt-avg``, ``mt-avg-ce``, ``mt-rrf-total``, ``st-ec-sf``, ``grd-mt-min``,
    ``blp-joint-min``, ``grd-mt-rrf-total`` or ``blp-joint-rrf-total``."""
    method = str(params.get("selection.method"))
    total = "-total" if params.get("selection.uncertainty") == "total" else ""
    if method == "st-ec":
        return f"st-ec-{params.get('selection.task')}{total}"
    if any(k.startswith("training.label_smoothing.") for k in params):
        return f"{method}-ce{total}"
    if "selection.budget" in params and not method.startswith("blp"):
        return f"grd-{method}{total}"
    return f"{method}{total}"


def _gmean(values: list[float]) -> float:
    if not values or min(values) <= 0:
        return 0.0
    return math.exp(sum(math.log(v) for v in values) / len(values))


def collect(sweep_dir: Path, tasks: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """method → seed → labeled sizes, per-iteration test scores, their geometric mean."""
    from mtal_ray.sweep.results import load_trials

    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for trial in load_trials(sweep_dir):
        if trial.record.status != "finished" or not trial.rows:
            continue
        scores = trial.scores("test", fallback=False)  # never dev scores under "test"
        geo = []
        for i in range(len(trial.rows)):
            row = [scores[t][i] for t in tasks if t in scores]
            known = [v for v in row if v is not None]
            geo.append(_gmean(known) if len(known) == len(tasks) else None)
        out[method_key(trial.record.params)][str(trial.record.seed)] = {
            "trial": trial.record.name,
            "labeled": trial.sizes,
            "test": scores,
            "geo_mean": geo,
            "dev": trial.scores("dev"),  # what a setting is chosen on
            "wall_s": round(trial.record.seconds, 1),  # the trial's, over all its attempts
        }
    return out


# --------------------------------------------------------------------------- post hoc


def _trial_data(trial_dir: Path) -> tuple[Any, Any, Any]:
    from mtal_ray.config import ExperimentConfig
    from mtal_ray.driver.loop import load_run_data
    from mtal_ray.driver.state import load_state

    cfg = ExperimentConfig.model_validate(json.loads((trial_dir / "config.json").read_text()))
    run, state = load_run_data(cfg, REPO), load_state(trial_dir)
    state.migrate_pool(run.train)  # a trial whose state file still lists the pool
    return cfg, run, state


def cross_task(trial_dir: Path, scenario: Scenario, task: str) -> dict[str, float]:
    """Train the other task(s) on the sentences ST-EC-``task`` labeled; test scores."""
    from mtal_ray.config import ExperimentConfig
    from mtal_ray.data.splits import take_ids
    from mtal_ray.driver.loop import load_run_data
    from mtal_ray.models import ModelConfig
    from mtal_ray.training import train_model

    cfg, _run, state = _trial_data(trial_dir)
    full = cfg.model_dump(mode="json")  # the trial's config, with every task of the corpus
    full["data"]["tasks"] = scenario.tasks
    full["model"]["sharing"] = "smt"
    full_cfg = ExperimentConfig.model_validate(full)
    data = load_run_data(full_cfg, REPO)
    others = [t for t in scenario.tasks if t != task]
    tasks = scenario.tasks if "re" in others else others  # RE needs NER in its model
    ids = state.labeled[task]
    train = take_ids(data.train, ids)
    dev = take_ids(data.dev_source if data.dev_source is not None else data.train, state.dev)
    sharing = "st" if len(tasks) == 1 else "smt"
    training = cfg.training_for_round(len(state.rounds) - 1).updated(label_smoothing=LS)
    result = train_model(
        train, dev, tasks, ModelConfig(sharing=sharing, encoder=cfg.model.encoder),
        training, trial_dir / "crosstask", test=data.test,
    )  # fmt: skip
    return {t: float(v) for t, v in (result.test_scores or {}).items() if t in others}


def _sentence_oe_items(
    conf: list[float],
    acc: list[float],
    p: np.ndarray,
    gold: np.ndarray,
    mask: np.ndarray,
    candidates: np.ndarray | None = None,
) -> None:
    """Append each sentence's EC (1 − mean normalized entropy over its scored positions) and
    accuracy (share of those positions right) — the per-sentence pairs OE averages."""
    from mtal_ray.confidence.entropy import normalized_entropy

    ent = normalized_entropy(p, candidates)
    for r in range(p.shape[0]):
        m = mask[r]
        if not m.any():
            continue
        conf.append(float(1.0 - ent[r][m].mean()))
        acc.append(float((p[r].argmax(-1) == gold[r])[m].mean()))


def overconfidence(trial_dir: Path) -> dict[str, float]:
    """OE (§5.5) per task of the final model on the final unlabeled pool (EC confidence).

    Relation extraction is judged on the gold mentions (its pairs are then the gold entity
    pairs, each with a gold relation or "no relation"), so its OE measures the relation
    classifier alone, not NER's errors.
    """
    import pyarrow as pa
    import torch

    from mtal_ray.confidence import overconfidence_error
    from mtal_ray.confidence.entropy import normalized_entropy
    from mtal_ray.models.inference import deterministic
    from mtal_ray.scoring.buckets import length_buckets
    from mtal_ray.scoring.calibration import _gold_keys
    from mtal_ray.scoring.model_adapter import load_scoring_model

    _cfg, run, state = _trial_data(trial_dir)
    pool = state.pool_of(run.train)
    scorer = load_scoring_model(state.rounds[-1].checkpoint)
    conf: dict[str, list[float]] = defaultdict(list)
    acc: dict[str, list[float]] = defaultdict(list)
    lengths = [len(t or []) for t in pool.column("tokens").to_pylist()]
    for index in length_buckets(lengths, 64):
        batch = scorer.collator(pool.take(pa.array(index)), with_targets=True).to(scorer.device)
        with deterministic(scorer.model), torch.inference_mode():
            probs = scorer.model.predict_proba(batch)
        for name in scorer.tasks:
            keys = _gold_keys(name, probs[name])
            if keys is None:  # relation extraction: pairs of predicted entities, no OE
                continue
            prob_key, gold_key, mask_key = keys
            target = batch.targets[name]
            p = probs[name][prob_key].float().cpu().numpy()
            gold = target[gold_key].cpu().numpy()
            mask = target[mask_key].cpu().numpy().astype(bool)
            if p.ndim == 2:  # sentence classification
                mask = mask.reshape(-1)
                ent = normalized_entropy(p)
                conf[name] += list((1.0 - ent)[mask])
                acc[name] += list((p.argmax(-1) == gold).astype(float)[mask])
                continue
            candidates = p > 0 if prob_key == "arc_probs" else None
            _sentence_oe_items(conf[name], acc[name], p, gold, mask, candidates)
        if "re" in scorer.tasks:  # on the gold mentions: the pairs the targets label
            with deterministic(scorer.model), torch.inference_mode():
                pairs = scorer.model.predict_proba(batch, entities="gold")["re"]
            target = batch.targets["re"]
            n = min(pairs["pair_probs"].size(1), target["labels"].size(1))
            mask = (target["mask"][:, :n] & pairs["pair_mask"][:, :n]).cpu().numpy()
            _sentence_oe_items(
                conf["re"],
                acc["re"],
                pairs["pair_probs"][:, :n].float().cpu().numpy(),
                target["labels"][:, :n].cpu().numpy(),
                mask.astype(bool),
            )
    return {t: overconfidence_error(conf[t], acc[t]) for t in conf if conf[t]}


def _final_checkpoint(trial_dir: Path) -> bool:
    from mtal_ray.driver.state import load_state

    if not (trial_dir / "state.json").exists():
        return False
    rounds = load_state(trial_dir).rounds
    return bool(rounds) and bool(rounds[-1].checkpoint) and Path(rounds[-1].checkpoint).exists()


def post_hoc(name: str, scenario: Scenario, sweep_dir: Path, archive: Path, results: dict) -> None:
    """Cross-task scores of ST-AL and OE of MT-AVG (LS, CE); kept in the trial archive."""
    cache = trial_archive.load_posthoc(archive)
    for method, seeds in results.items():
        for entry in seeds.values():
            trial_dir = sweep_dir / "trials" / entry["trial"]
            key = f"{entry['trial']}"
            if method.startswith("st-ec-") and f"{key}:cross" not in cache:
                print(f"[{name}] cross-task training for {entry['trial']}", flush=True)
                cache[f"{key}:cross"] = cross_task(trial_dir, scenario, method[len("st-ec-") :])
                trial_archive.save_posthoc(archive, cache)
            measured = cache.get(f"{key}:oe")
            stale = measured is not None and "re" in scenario.tasks and "re" not in measured
            if method in ("mt-avg", "mt-avg-ce") and (measured is None or stale):  # re: added later
                if _final_checkpoint(trial_dir):
                    cache[f"{key}:oe"] = overconfidence(trial_dir)
                    trial_archive.save_posthoc(archive, cache)
                else:  # restored from the archive without its model: OE cannot be measured
                    print(f"[{name}] no OE for {key}: its final checkpoint is not here")
            if f"{key}:cross" in cache:
                entry["cross_task_final"] = cache[f"{key}:cross"]
            if f"{key}:oe" in cache:
                entry["overconfidence"] = cache[f"{key}:oe"]


def label_composition(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What a labeled set covers: its size, mean sentence length, and per label column
    (``<task>.label``: the class; ``<task>.tags``: BIO entity/slot types) the number of
    types seen and the normalized entropy of their distribution (1 = all types alike).

    The diagnostic for skewed selections (issue: MT-AVG's picks once held no sentence of
    two intents that random picks covered)."""
    out: dict[str, Any] = {"sentences": len(rows)}
    if not rows:
        return out
    out["mean_tokens"] = float(np.mean([len(r.get("tokens") or []) for r in rows]))
    for column in sorted(rows[0]):
        if not column.endswith((".label", ".tags")):
            continue
        counts: dict[str, int] = defaultdict(int)
        for row in rows:
            value = row.get(column)
            if column.endswith(".label"):
                if value is not None:
                    counts[str(value)] += 1
                continue
            for tag in value or []:
                if tag and tag[:2] == "B-":  # one mention per B- tag
                    counts[tag[2:]] += 1
        total = sum(counts.values())
        p = np.array([c / total for c in counts.values()]) if total else np.array([])
        entropy = float(-(p * np.log(p)).sum() / math.log(len(p))) if len(p) > 1 else 0.0
        out[column] = {"types": len(counts), "entropy": round(entropy, 4), "count": total}
    return out


def pool_table(corpus: Path, scenario: Scenario) -> Any:
    """The pool (the corpus's train split) as read once for every composition."""
    from mtal_ray.data.corpus import load_corpus

    return load_corpus(corpus, scenario.format).splits["train"]


def trial_composition(trial_dir: Path, pool: Any) -> dict[str, Any] | None:
    """:func:`label_composition` of a trial's final labeled set (any task): its ids from
    ``state.json``, its rows from ``pool`` (None when the state is not there)."""
    from mtal_ray.data.splits import take_ids

    state_path = trial_dir / "state.json"
    if not state_path.exists():
        return None
    labeled = json.loads(state_path.read_text(encoding="utf-8")).get("labeled") or {}
    ids = sorted({i for task_ids in labeled.values() for i in task_ids})
    return label_composition(take_ids(pool, ids).to_pylist())


# --------------------------------------------------------------------------- tables


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _final(entry: dict[str, Any], task: str) -> float | None:
    values = entry["geo_mean"] if task == "geo_mean" else entry["test"].get(task, [])
    return values[-1] if values and values[-1] is not None else None


def print_composition(name: str, results: dict, pool: dict[str, Any]) -> None:
    """Per method (mean over seeds): what its final labeled set covers, against the pool."""
    columns = [c for c in pool if c.endswith((".label", ".tags"))]
    if not columns:
        return
    print(f"\n=== {name}: composition of the final labeled set (mean over seeds; types seen,")
    print("normalized entropy of their distribution); the pool for reference")
    print("| method | sentences | tokens/sentence | " + " | ".join(columns) + " |")
    print("|---|---:|---:|" + "---:|" * len(columns))

    def row(label: str, comps: list[dict[str, Any]]) -> None:
        cells = [
            f"{_mean([c['sentences'] for c in comps]):.0f}",
            f"{_mean([c.get('mean_tokens', 0.0) for c in comps]):.1f}",
        ]
        for column in columns:
            seen = [c[column] for c in comps if column in c]
            types = _mean([s["types"] for s in seen])
            entropy = _mean([s["entropy"] for s in seen])
            cells.append(f"{types:.1f} types, H {entropy:.2f}" if seen else "–")
        print(f"| {label} | " + " | ".join(cells) + " |")

    for method, seeds in results.items():
        comps = [e["composition"] for e in seeds.values() if e.get("composition")]
        if comps:
            row(method, comps)
    row("(pool)", [pool])


def print_tables(
    name: str, scenario: Scenario, results: dict, sweep_dir: Path, pool: dict[str, Any]
) -> None:
    from mtal_ray.sweep.reference import compare_with_reference, gain_text, paired_gain
    from mtal_ray.sweep.report import trial_label, varying_keys
    from mtal_ray.sweep.results import load_trials

    tasks = [*scenario.tasks, "geo_mean"]
    print(
        f"\n=== {name}: final test scores (×100), mean over seeds; Δ vs MT-R paired "
        "(test, and dev: what a setting is chosen on)"
    )
    trials = load_trials(sweep_dir)
    keys = varying_keys([t for t in trials if t.record.status == "finished"])
    label_of = {method_key(t.record.params): trial_label(t, keys) for t in trials}
    geo = {
        split: compare_with_reference(trials, split).curves.get((None, "geo_mean"), {})
        for split in ("test", "dev")
    }
    print(
        "| method | " + " | ".join(tasks) + " | Δ geo-mean final | Δ AUC geo-mean"
        " | dev: Δ final | dev: Δ AUC |"
    )
    print("|---|" + "---:|" * (len(tasks) + 4))
    for method, seeds in results.items():
        cells = []
        for task in tasks:
            values = [v for e in seeds.values() if (v := _final(e, task)) is not None]
            cells.append(f"{100 * _mean(values):.2f}" if values else "–")
        for split in ("test", "dev"):
            curve = geo[split].get(label_of.get(method, ""))
            cells.append(gain_text(curve.gains[-1], 100) if curve else "–")
            cells.append(gain_text(curve.area, 100) if curve else "–")
        print(f"| {method} | " + " | ".join(cells) + " |")

    st = {m: s for m, s in results.items() if m.startswith("st-ec-")}
    mt = {m: s for m, s in results.items() if m in SELECTORS and m != "mt-r"}
    if st and mt:
        print(f"\n=== {name}: MT-AL vs ST-AL, % of (method, seed) comparisons MT-AL wins")
        for method, seeds in st.items():
            task = method[len("st-ec-") :]
            own = partial(_final, task=task)  # ST's own task, for both sides
            within = _wins(mt, seeds, own, own)
            cross = {
                other: _wins(
                    mt,
                    seeds,
                    lambda e, o=other: _final(e, o),
                    lambda e, o=other: (e.get("cross_task_final") or {}).get(o),
                )
                for other in scenario.tasks
                if other != task
            }
            text = ", ".join(f"cross-task {o}: {w}" for o, w in cross.items())
            average = _wins(
                mt,
                seeds,
                lambda e: _task_average(e, scenario.tasks),
                lambda e, t=task: _st_average(e, t, scenario.tasks),
            )
            print(f"ST-EC-{task}: within-task {task}: {within}; {text}; average: {average}")

    oe = {m: s for m, s in results.items() if m in ("mt-avg", "mt-avg-ce")}
    if len(oe) == 2:
        print(f"\n=== {name}: overconfidence error of MT-AVG's final model (mean over seeds)")
        for task in scenario.tasks:
            ce = [e["overconfidence"][task] for e in oe["mt-avg-ce"].values() if _has_oe(e, task)]
            ls = [e["overconfidence"][task] for e in oe["mt-avg"].values() if _has_oe(e, task)]
            if ce and ls:
                pre = 100 * (1 - _mean(ls) / _mean(ce)) if _mean(ce) > 0 else float("nan")
                print(f"{task}: CE {_mean(ce):.4f}, LS {_mean(ls):.4f} (PRE {pre:.1f} %)")

    print_composition(name, results, pool)

    pairs = [(grd, blp, "") for grd, blp in GRD_BLP] + [(*GRD_BLP_TOTAL, "-total")]
    for grd, blp, total in pairs:
        a, b = results.get(f"grd-{grd}{total}"), results.get(f"{blp}{total}")
        if not a or not b:
            continue
        print(
            f"\n=== {name}: {blp}{total} (BLP_AL) − {grd}{total} (GRD_AL), same budget, "
            "paired by seed"
        )
        for task in tasks:
            diffs = [
                fb - fa
                for seed in a
                if seed in b
                and (fa := _final(a[seed], task)) is not None
                and (fb := _final(b[seed], task)) is not None
            ]
            if diffs:  # mean [bootstrap interval] BLP-ahead/behind seeds, * as everywhere
                print(f"{task}: {gain_text(paired_gain(diffs), 100)}")


def _has_oe(entry: dict[str, Any], task: str) -> bool:
    return task in entry.get("overconfidence", {})


def _task_average(entry: dict[str, Any], tasks: list[str]) -> float | None:
    """Mean final test score over ``tasks`` (Table 4's *Average*), None if one is missing."""
    values = [_final(entry, t) for t in tasks]
    return None if any(v is None for v in values) else _mean(values)  # type: ignore[arg-type]


def _st_average(entry: dict[str, Any], task: str, tasks: list[str]) -> float | None:
    """An ST-EC-``task`` trial's mean over every task: its own task's final score, and the
    cross-task model's score on each other task."""
    cross = entry.get("cross_task_final") or {}
    values = [_final(entry, t) if t == task else cross.get(t) for t in tasks]
    return None if any(v is None for v in values) else _mean(values)  # type: ignore[arg-type]


def _wins(mt: dict, st_seeds: dict, mt_score: Any, st_score: Any) -> str:
    """Share of (MT method, seed) pairs whose ``mt_score`` beats the ``st_score`` of the
    same seed's ST-AL trial (pairs where either is missing are left out)."""
    wins = total = 0
    for seeds in mt.values():
        for seed, entry in seeds.items():
            if seed not in st_seeds:
                continue
            a, b = mt_score(entry), st_score(st_seeds[seed])
            if a is None or b is None:
                continue
            total += 1
            wins += a > b
    return f"{100 * wins / total:.0f} % of {total}" if total else "–"


# --------------------------------------------------------------------------- main


def add_protocol_args(parser: argparse.ArgumentParser, rounds: int = 5) -> None:
    """The options every study shares: scenarios, seeds, pool, rounds and training."""
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--pool-size", type=int, default=None,
        help="fixed random subset of the training split as the pool (EWT default: 4000)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=rounds, help="trainings per run")
    parser.add_argument("--initial-count", type=int, default=None, help="instead of 2 %%")
    parser.add_argument("--limit-eval", type=int, default=None, help="dev/test sample size")
    parser.add_argument("--epochs", type=float, default=20.0)
    parser.add_argument("--eval-every-epochs", type=float, default=2.0)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--min-steps", type=int, default=100)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--sharing", default="smt")
    parser.add_argument("--k", type=int, default=5, help="MC-dropout passes (DA methods)")
    parser.add_argument(
        "--concurrent", type=int, default=None, help="trials at once (default: as many as fit)"
    )
    parser.add_argument(
        "--skip-sweeps", action="store_true", help="only archive finished trials, collect, print"
    )
    parser.add_argument(
        "--plan", action="store_true",
        help="only list the command's trials: archived (finished) or to run, and the time "
        "the rest would take at the archived trials' median (runs nothing)",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_protocol_args(parser)
    parser.add_argument("--methods", nargs="+", default=SELECTORS)
    parser.add_argument(
        "--comparisons", nargs="*", default=["st", "ce", "budget"],
        choices=["st", "ce", "budget", "length", "budget-length"],
        help="besides the selectors (none: selectors only; length, budget-length: ours, "
        "not in the paper, opt-in)",
    )  # fmt: skip
    parser.add_argument("--budget", type=float, default=500.0, help="per round (paper: 500)")
    parser.add_argument("--st-tasks", type=int, default=2, help="ST-AL runs per scenario (≤ 2)")
    parser.add_argument("--budget-pairs", type=int, default=2, help="GRD/BLP pairs (MIN, RRF)")
    parser.add_argument("--work-dir", default="runs/validity")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke run: ATIS, 1 seed, 80-sentence pool, 2 rounds, a few steps; MT-R, MT-AVG, "
        "ST-EC-SF, MT-AVG with CE, MT-MIN GRD/BLP: 6 trials (numbers are meaningless)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        quick_protocol(args, rounds=2, results=RESULTS)
        args.methods, args.budget = ["mt-r", "mt-avg"], 120.0
        args.st_tasks, args.budget_pairs = 1, 1
    return args


def quick_protocol(args: argparse.Namespace, rounds: int, results: Path) -> None:
    """The smoke-run settings every study shares (ATIS, 1 seed, 80 sentences, few steps)."""
    args.scenarios, args.seeds, args.pool_size, args.rounds = ["atis"], [0], 80, rounds
    args.initial_count, args.limit_eval = 10, 30
    args.epochs, args.eval_every_epochs, args.min_steps, args.max_steps = 1.0, 1.0, 2, 4
    args.patience, args.batch_size, args.k = 1, 8, 2
    args.work_dir = str(Path(args.work_dir) / "quick")
    if args.output == str(results):
        args.output = str(results.with_name(f"{results.stem}_quick.json"))


@dataclass
class ScenarioSweep:
    """One scenario's sweep, run (or resumed) by :func:`scenario_sweeps`."""

    name: str
    scenario: Scenario
    pool_size: int | None
    sweep_dir: Path
    started: float
    archive: Path
    corpus: Path


def scenario_sweeps(
    args: argparse.Namespace,
    work: Path,
    prefix: str,
    config_for: Callable[[str, Scenario, Path], dict],
    failures: list[str],
) -> Iterator[ScenarioSweep]:
    """For each scenario whose corpus is there: build its pool, run its sweep
    ``<prefix>_<scenario>`` (unless ``--skip-sweeps``; a failed sweep is noted in
    ``failures``) and yield it when it holds trials."""
    for name in args.scenarios:
        scenario = SCENARIOS[name]
        if not (DATA / scenario.folder).exists():
            print(f"[{name}] skipped: {DATA / scenario.folder} is missing")
            continue
        started = time.perf_counter()
        size = args.pool_size if args.pool_size is not None else scenario.pool_size
        corpus = pool_corpus(scenario, size, work)
        sweep_name = f"{prefix}_{name}"
        sweep_dir = work / "sweeps" / sweep_name
        archive = archive_root(args) / sweep_name
        config = config_for(sweep_name, scenario, corpus)
        # restored with --skip-sweeps too: a fresh clone collects what the archive holds
        restored, skipped = trial_archive.restore(archive, sweep_dir, config)
        if restored:
            print(f"[{name}] {len(restored)} finished trial(s) restored from {archive}")
        for line in skipped:
            print(f"[{name}] archived trial not restored (other settings): {line}")
        if not args.skip_sweeps:
            code = run_sweep(sweep_name, config, work, args.verbose, archive)
            if code != 0:
                failures.append(name)
                print(f"[{name}] the sweep exited {code}; see {work / f'{sweep_name}.log'}")
        archive_finished(name, sweep_dir, archive)
        if (sweep_dir / "trials").is_dir():
            yield ScenarioSweep(name, scenario, size, sweep_dir, started, archive, corpus)


def print_plan(
    args: argparse.Namespace,
    work: Path,
    prefix: str,
    config_for: Callable[[str, Scenario, Path], dict],
) -> dict[str, dict[str, Any]]:
    """``--plan``: per scenario, the command's trials that the archive holds (finished,
    under the same settings) and those still to run, with the time they would take at
    the archived trials' median; returned as ``scenario -> {archived, to_run, other,
    median_s}``."""
    from mtal_ray.sweep.config import SweepConfig
    from mtal_ray.sweep.space import grid_points, trial_name

    plans: dict[str, dict[str, Any]] = {}
    for name in args.scenarios:
        scenario = SCENARIOS[name]
        if not (DATA / scenario.folder).exists():
            print(f"[{name}] skipped: {DATA / scenario.folder} is missing")
            continue
        size = args.pool_size if args.pool_size is not None else scenario.pool_size
        sweep_name = f"{prefix}_{name}"
        config = config_for(sweep_name, scenario, pool_corpus(scenario, size, work))
        archive = archive_root(args) / sweep_name
        known = trial_archive.classify(archive, config)
        planned = [trial_name(p) for p in grid_points(SweepConfig.model_validate(config["sweep"]))]
        archived = [t for t in planned if known.get(t) == []]
        other = {t: known[t] for t in planned if known.get(t)}
        to_run = [t for t in planned if t not in archived]
        seconds = [
            float(json.loads((archive / t / "trial.json").read_text())["seconds"])
            for t in known
            if not known[t]
        ]
        median = float(np.median(seconds)) if seconds else None
        plans[name] = {
            "archived": archived, "to_run": to_run, "other": other, "median_s": median,
        }  # fmt: skip
        line = f"[{name}] {len(planned)} trials: {len(archived)} archived, {len(to_run)} to run"
        if to_run and median is not None:
            hours = len(to_run) * median / 3600
            at_once = args.concurrent or 1
            line += (
                f" (~{hours:.1f} h one at a time at the archived median of {median / 60:.0f} min"
                f" per trial; ~{hours / at_once:.1f} h {at_once} at once)"
                if at_once > 1
                else f" (~{hours:.1f} h at the archived median of {median / 60:.0f} min per trial)"
            )
        print(line)
        for trial in to_run:
            keys = other.get(trial)
            why = f" (archived under other settings: {', '.join(keys[:4])})" if keys else ""
            print(f"  to run: {trial}{why}")
    return plans


def archive_root(args: argparse.Namespace) -> Path:
    """Where finished trials are kept (``benchmarks/results/trials/<output stem>``)."""
    output = Path(args.output)
    return output.parent / "trials" / output.stem


def write_results(output: dict[str, Any], path: str, started: float) -> None:
    """``output`` (with the total wall time) as JSON at ``path``."""
    output["wall_s"]["total"] = round(time.perf_counter() - started, 1)
    out = Path(path)
    atomic_write_text(out, json.dumps(output, indent=1, default=str) + "\n")
    print(f"\nwrote {out} in {output['wall_s']['total']:.0f}s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work_dir).absolute()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    output: dict[str, Any] = {"protocol": protocol(args), "scenarios": {}, "wall_s": {}}
    failures: list[str] = []

    def config_for(sweep_name: str, scenario: Scenario, corpus: Path) -> dict:
        return sweep_config(sweep_name, scenario, corpus, args)

    if args.plan:
        print_plan(args, work, "validity", config_for)
        return 0
    for run in scenario_sweeps(args, work, "validity", config_for, failures):
        results = collect(run.sweep_dir, run.scenario.tasks)
        post_hoc(run.name, run.scenario, run.sweep_dir, run.archive, results)
        pool = pool_table(run.corpus, run.scenario)
        for seeds in results.values():
            for entry in seeds.values():
                trial_dir = run.sweep_dir / "trials" / entry["trial"]
                entry["composition"] = trial_composition(trial_dir, pool)
        output["scenarios"][run.name] = {
            "protocol": {  # this scenario's: the methods and seeds it holds
                **protocol(args),
                "pool_size": run.pool_size,
                "methods": sorted(results),
                "seeds": sorted({int(s) for seeds in results.values() for s in seeds}),
            },
            "pool_size": run.pool_size,
            "trials_wall_s": round(  # every trial's own time, resumes included
                sum(e["wall_s"] for seeds in results.values() for e in seeds.values()), 1
            ),
            "pool_composition": label_composition(pool.to_pylist()),
            "methods": results,
        }
        output["wall_s"][run.name] = round(time.perf_counter() - run.started, 1)
        pool = output["scenarios"][run.name]["pool_composition"]
        print_tables(run.name, run.scenario, results, run.sweep_dir, pool)
    keep_previous_scenarios(output, Path(args.output))
    write_results(output, args.output, started)
    return 1 if failures else 0


def keep_previous_scenarios(output: dict[str, Any], path: Path, keep: tuple[str, ...] = ()) -> None:
    """Scenarios of an earlier run of ``path`` that this run collected nothing for stay in
    the file (a run of one scenario must not erase another's results), and so do its
    top-level sections named in ``keep`` (e.g. ``benchmarks/stopping.py``'s read-offs)."""
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return
    for section in keep:
        if section in previous:
            output[section] = previous[section]
    for name, entry in previous.get("scenarios", {}).items():
        if name not in output["scenarios"]:
            output["scenarios"][name] = entry
            print(f"[{name}] kept from the earlier {path.name} (nothing collected this run)")


if __name__ == "__main__":
    sys.exit(main())
