"""``ModelConfig``: the ``model`` section of the experiment config (no torch import here).

Example YAML::

    model:
      encoder: null            # HF name or local path; null = packaged all-MiniLM-L6-v2
      sharing: cmt             # st | smt | cmt | hierarchical | sclstm (mtal_ray.models.schemes)
      cmt_shared_layers: 4     # CMT split point: bottom layers shared (paper: 8 of 12)
      hierarchy: {ner: 4, re: 6}   # hierarchical: read-out layer per task (null = by level)
      hierarchy_shortcut: true # hierarchical: task modules also see the embeddings
      sclstm: {hidden_size: 256, layers: 2}   # sclstm: see mtal_ray.models.sclstm_config
      dropout: 0.1             # dropout in the task heads
      max_subwords: 512        # longer sentences: the last words share the last sub-word
"""

from __future__ import annotations

from pydantic import Field, field_validator

from mtal_ray.models.schemes import SHARING_SCHEMES
from mtal_ray.models.sclstm_config import SCLSTMConfig
from mtal_ray.sections import Section


class ModelConfig(Section):
    """Encoder and parameter-sharing scheme of the multi-task model."""

    section = "model"

    encoder: str | None = Field(
        default=None,
        description="Hugging Face model name or local path; None = packaged all-MiniLM-L6-v2.",
    )
    sharing: str = Field(
        default="smt",
        description="Parameter sharing scheme: st, smt, cmt, hierarchical or sclstm.",
    )
    cmt_shared_layers: int | None = Field(
        default=None,
        ge=0,
        description="CMT: number of bottom encoder layers shared by all tasks; the top "
        "layers are replicated t+1 times. None = round(2/3 of the layers) (8/12, 4/6).",
    )
    hierarchy: dict[str, int] | None = Field(
        default=None,
        description="hierarchical: encoder layer (1 = lowest) each task reads its features "
        "from; tasks not named read the top layer; None = by task level (mtal_ray.models."
        "hierarchical).",
    )
    hierarchy_shortcut: bool = Field(
        default=True,
        description="hierarchical: concatenate the embedding layer's output to each "
        "task's read-out (HMTL's shortcut connections).",
    )
    sclstm: SCLSTMConfig = Field(
        default_factory=SCLSTMConfig, description="sclstm: the shared-cell LSTM encoder."
    )
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="Dropout in task heads.")
    max_subwords: int = Field(default=512, ge=8, description="Sub-word limit per sentence.")

    @field_validator("sharing")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value not in SHARING_SCHEMES:
            known = ", ".join(sorted(SHARING_SCHEMES))
            raise ValueError(f"unknown sharing scheme {value!r} (known: {known})")
        return value

    @field_validator("hierarchy")
    @classmethod
    def _layers_positive(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        for task, layer in (value or {}).items():
            if layer < 1:
                raise ValueError(f"hierarchy.{task}: layer {layer} is below 1 (1 = lowest)")
        return value
