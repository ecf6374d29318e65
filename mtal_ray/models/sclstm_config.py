"""``SCLSTMConfig``: the ``model.sclstm`` sub-section (no torch import here).

Used when ``model.sharing: sclstm`` (:mod:`mtal_ray.models.sclstm`). Example YAML::

    model:
      sharing: sclstm
      sclstm:
        hidden_size: 256         # per direction
        layers: 2                # stacked; the top one is the shared-cell layer (eq. 2-3)
        bidirectional: true
        input: transformer       # transformer (encoder output) | embeddings (its input
                                 # embedding table only: a cheap encoder for CPUs/large pools)
        freeze_encoder: false    # true: the Transformer / embeddings are not updated
        dropout: 0.1             # on the input, between layers and on the output
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SCLSTMConfig(BaseModel):
    """Shape of the shared-cell LSTM encoder (Lu et al., SC-LSTM)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(default=256, ge=1, description="LSTM units per direction.")
    layers: int = Field(
        default=2, ge=1, description="Stacked layers; the top one holds the task cells."
    )
    bidirectional: bool = True
    input: Literal["transformer", "embeddings"] = Field(
        default="transformer",
        description="transformer: the encoder's last hidden states; embeddings: only its "
        "input (sub-word) embedding table, without the Transformer layers.",
    )
    freeze_encoder: bool = Field(
        default=False, description="Keep the Transformer / embedding weights fixed."
    )
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="Dropout in the LSTM stack.")
