"""The code MLflow runs to build a logged mtal_ray model (MLflow's "models from code").

:func:`mtal_ray.mlflow_model.log_checkpoint_model` logs this file as the model's code, so
loading a model runs it instead of unpickling an object; it needs mtal_ray installed.
"""

import mlflow.models

from mtal_ray.mlflow_model import MtalPyfuncModel

mlflow.models.set_model(MtalPyfuncModel())
