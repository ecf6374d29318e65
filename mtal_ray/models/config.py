"""``ModelConfig``: the ``model`` section of the experiment config (no torch import here).

Example YAML::

    model:
      encoder: null            # HF name or local path; null = packaged all-MiniLM-L6-v2
      sharing: cmt             # st | smt | cmt (registry: mtal_ray.models.schemes)
      cmt_shared_layers: 4     # CMT split point: bottom layers shared (paper: 8 of 12)
      dropout: 0.1             # dropout in the task heads
      max_subwords: 512        # longer sentences: the last words share the last sub-word
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mtal_ray.models.schemes import SHARING_SCHEMES


class ModelConfig(BaseModel):
    """Encoder and parameter-sharing scheme of the multi-task model."""

    model_config = ConfigDict(extra="forbid")

    encoder: str | None = Field(
        default=None,
        description="Hugging Face model name or local path; None = packaged all-MiniLM-L6-v2.",
    )
    sharing: str = Field(default="smt", description="Parameter sharing scheme: st, smt or cmt.")
    cmt_shared_layers: int | None = Field(
        default=None,
        ge=0,
        description="CMT: number of bottom encoder layers shared by all tasks; the top "
        "layers are replicated t+1 times. None = round(2/3 of the layers) (8/12, 4/6).",
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
