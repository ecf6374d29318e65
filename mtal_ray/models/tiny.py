"""A tiny, randomly initialized BERT for fast tests (not for real use).

It reuses the packaged MiniLM tokenizer (so inputs look real) with 2 layers of width 32;
a forward+backward pass is ~100x cheaper than MiniLM's. Tests of other components can
train real models in seconds with ``ModelConfig(encoder=make_tiny_encoder(tmp_path))``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from mtal_ray.models.encoder import load_tokenizer


def make_tiny_encoder(
    directory: str | Path, layers: int = 3, hidden: int = 32, seed: int = 0
) -> str:
    """Write a tiny random BERT (+ the MiniLM tokenizer) to ``directory``; returns its path."""
    directory = Path(directory)
    if (directory / "config.json").exists():
        return str(directory)
    tokenizer = load_tokenizer(None)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    model = BertModel(config, add_pooling_layer=False)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)
