"""A trained model of a run as an MLflow model (``pyfunc`` flavor).

:class:`MtalPyfuncModel` wraps an exported checkpoint (:mod:`mtal_ray.training.checkpoint`:
``model.pt``, ``meta.json``, ``encoder/``; the artifact ``checkpoint``). It takes sentences
— a DataFrame with a ``tokens`` column (one list of words per row, and optionally an ``id``
column), or a plain list of token lists — and returns one row per sentence: ``id``,
``tokens`` and every task's predicted columns (the data contract's names: ``sf.tags``,
``id.label``, ``dep.heads``…), exactly what :func:`mtal_ray.models.inference.predict`
gives in process. So a model found in the MLflow UI loads anywhere mtal_ray is installed::

    model = mlflow.pyfunc.load_model("models:/NAME/1")
    model.predict(pd.DataFrame({"tokens": [["show", "flights", "to", "boston"]]}))

:func:`log_checkpoint_model` logs one (signature, input example, pinned requirements) on
a run, optionally registering it; ``mtal-ray predict`` applies one to a corpus file.
This module imports MLflow; import it only where a model is logged or loaded.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

log = logging.getLogger("mtal_ray.mlflow")

#: The pyfunc artifact that holds the checkpoint folder.
CHECKPOINT_ARTIFACT = "checkpoint"
#: ``model_type`` of the logged models.
MODEL_TYPE = "mtal_ray.multitask"


def _token_lists(model_input: Any) -> tuple[list[str], list[list[str]]]:
    """``(ids, tokens)`` from a DataFrame (``tokens``, optional ``id``), a dict of columns,
    or a list of token lists."""
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if isinstance(model_input, pd.DataFrame):
        if "tokens" not in model_input.columns:
            raise ValueError("the input needs a 'tokens' column (a list of words per row)")
        tokens = [[str(w) for w in list(t)] for t in model_input["tokens"]]
        if "id" in model_input.columns:
            ids = [str(i) if i is not None else str(n) for n, i in enumerate(model_input["id"])]
        else:
            ids = [str(n) for n in range(len(tokens))]
        return ids, tokens
    rows = list(model_input)
    return [str(n) for n in range(len(rows))], [[str(w) for w in row] for row in rows]


def predictions_frame(loaded: Any, model_input: Any, batch_size: int = 64) -> pd.DataFrame:
    """Predictions of a loaded checkpoint ``(model, collator, info)`` as a DataFrame."""
    from mtal_ray.data.schema import make_table
    from mtal_ray.models.inference import predict

    model, collator, _ = loaded
    ids, tokens = _token_lists(model_input)
    table = make_table({"id": ids, "tokens": tokens})
    predicted = predict(model, collator, table, batch_size=batch_size)
    return pd.DataFrame(predicted.to_pylist(), columns=predicted.column_names)


class MtalPyfuncModel(mlflow.pyfunc.PythonModel):
    """Sentences (token lists) in, per-task predictions out (see the module docstring)."""

    def load_context(self, context: Any) -> None:
        from mtal_ray.training.checkpoint import load_checkpoint

        self._loaded = load_checkpoint(context.artifacts[CHECKPOINT_ARTIFACT])

    # No type hints here: MLflow reads them as a signature and would check inputs against it.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """DataFrame (``tokens``, optional ``id``) or token lists -> predictions DataFrame."""
        batch_size = int((params or {}).get("batch_size", 64))
        return predictions_frame(self._loaded, model_input, batch_size=batch_size)


def export_checkpoint(checkpoint: str | Path, folder: Path) -> Path:
    """The parts of ``checkpoint`` a model needs (weights, meta, encoder files) in ``folder``;
    training state (optimizer, DeepSpeed shards) stays behind."""
    from mtal_ray.training.checkpoint import (
        ENCODER_DIR,
        META_FILE,
        MODEL_FILE,
        load_checkpoint,
        save_checkpoint,
    )

    source = Path(checkpoint)
    folder.mkdir(parents=True, exist_ok=True)
    if (source / MODEL_FILE).exists():
        shutil.copy2(source / MODEL_FILE, folder / MODEL_FILE)
        shutil.copy2(source / META_FILE, folder / META_FILE)
        shutil.copytree(source / ENCODER_DIR, folder / ENCODER_DIR)
    else:  # weights only as ZeRO shards: rebuild them once
        model, collator, info = load_checkpoint(source)
        save_checkpoint(folder, model, collator, info)
    return folder


def requirements() -> list[str]:
    """Pinned requirements of the model's environment (mtal_ray itself must be installed:
    it is not on PyPI, so serve with ``--env-manager local`` in its environment)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mtal_ray", "torch", "transformers", "pyarrow", "pandas", "mlflow"):
        try:
            pins.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def log_checkpoint_model(
    tracking_uri: str,
    run_id: str,
    checkpoint: str | Path,
    *,
    name: str,
    examples: Sequence[Sequence[str]],
    step: int = 0,
    registered_name: str | None = None,
    tags: dict[str, str] | None = None,
) -> Any:
    """Log ``checkpoint`` as a pyfunc model of ``run_id`` (a LoggedModel named ``name`` at
    ``step``, its metrics of that step linked); register it when ``registered_name``.

    Returns MLflow's ``ModelInfo`` (``model_uri`` is ``models:/<model id>``;
    ``registered_model_version`` is set when registered).
    """
    from mlflow.entities import LoggedModelStatus
    from mlflow.models import Model, ModelSignature, infer_signature
    from mlflow.tracking import MlflowClient
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    from mtal_ray.training.checkpoint import load_checkpoint

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory(prefix="mtal-model-") as tmp:
        folder = export_checkpoint(checkpoint, Path(tmp) / CHECKPOINT_ARTIFACT)
        example = pd.DataFrame({"tokens": [list(map(str, t)) for t in examples if t][:2]})
        if example.empty:
            example = pd.DataFrame({"tokens": [["example", "sentence"]]})
        inferred = infer_signature(example, predictions_frame(load_checkpoint(folder), example))
        inputs = Schema(
            [
                ColSpec(Array(DataType.string), "tokens"),
                ColSpec(DataType.string, "id", required=False),
            ]
        )
        signature = ModelSignature(inputs=inputs, outputs=inferred.outputs)
        with _use_tracking_uri(tracking_uri):  # Model.log resolves the store from it
            logged = client.create_logged_model(
                experiment_id=run.info.experiment_id,
                name=name,
                source_run_id=run_id,
                tags=tags,
                model_type=MODEL_TYPE,
            )
            info = Model.log(
                artifact_path=None,
                flavor=mlflow.pyfunc,
                name=name,
                run_id=run_id,
                model_id=logged.model_id,
                step=step,
                python_model=str(Path(__file__).with_name("mlflow_pyfunc_entry.py")),
                artifacts={CHECKPOINT_ARTIFACT: str(folder)},
                signature=signature,
                input_example=example,
                pip_requirements=requirements(),
                registered_model_name=registered_name,
            )
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return info


def load_predictor(model: str, tracking_uri: str | None = None) -> Any:
    """A callable ``table -> predictions table`` for ``model``: an MLflow model URI
    (``models:/NAME/1``, ``runs:/…``, ``models:/<id>``) or a run directory (its final model)
    or a checkpoint folder."""
    import pyarrow as pa

    path = Path(model)
    if "://" not in model and not model.startswith("models:/") and path.exists():
        from mtal_ray.models.inference import predict
        from mtal_ray.training.checkpoint import load_checkpoint

        loaded = load_checkpoint(final_checkpoint(path))

        def local(table: pa.Table) -> pa.Table:
            return predict(loaded.model, loaded.collator, table)

        return local
    from mlflow.exceptions import MlflowException
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    from mtal_ray.data.schema import make_table
    from mtal_ray.errors import MtalError

    try:
        if tracking_uri:
            with _use_tracking_uri(tracking_uri):
                pyfunc = mlflow.pyfunc.load_model(model)
        else:
            pyfunc = mlflow.pyfunc.load_model(model)
    except MlflowException as err:
        reason = str(err.message).strip().splitlines()[0] if str(err.message).strip() else ""
        where = (
            ""
            if "://" in model or model.startswith(("models:/", "runs:/"))
            else ("no such run directory or checkpoint, and ")
        )
        raise MtalError(f"{model}: {where}MLflow cannot load it as a model ({reason})") from None

    def remote(table: pa.Table) -> pa.Table:
        frame = pd.DataFrame(
            {"id": table.column("id").to_pylist(), "tokens": table.column("tokens").to_pylist()}
        )
        out = pyfunc.predict(frame)
        columns = {c: _plain(out[c].tolist()) for c in out.columns}
        columns["id"] = frame["id"].tolist()  # rows come back in input order
        return make_table(columns)

    return remote


def _plain(values: list[Any]) -> list[Any]:
    """Numpy arrays inside a column (after a DataFrame round trip) as python lists."""
    return [v.tolist() if hasattr(v, "tolist") else v for v in values]


def final_checkpoint(path: Path) -> Path:
    """The checkpoint of a run directory's last trained round (or ``path`` itself when it
    is a checkpoint folder)."""
    from mtal_ray.driver.state import STATE_FILE, load_state
    from mtal_ray.errors import MtalError
    from mtal_ray.training.checkpoint import META_FILE

    if (path / META_FILE).exists():
        return path
    if not (path / STATE_FILE).exists():
        raise MtalError(f"{path}: neither a run directory (no {STATE_FILE}) nor a checkpoint")
    state = load_state(path)
    trained = [r.checkpoint for r in state.rounds if r.checkpoint]
    if not trained:
        raise MtalError(f"{path}: the run has no trained model yet")
    return Path(trained[-1])


def logged_model_id(tracking_uri: str, run_id: str, name: str, step: int) -> str | None:
    """The id of a model ``name`` that run ``run_id`` already logged at ``step``, if any."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    for output in (run.outputs.model_outputs if run.outputs else None) or []:
        if output.step != step:
            continue
        model = client.get_logged_model(output.model_id)
        if model.name == name:
            return model.model_id
    return None
