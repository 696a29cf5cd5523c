"""fairseq's ``transformer_iwslt_de_en`` as a Hugging Face ``MarianMTModel``, from random weights.

The architecture (fairseq ``transformer_iwslt_de_en``): 6 encoder and 6 decoder layers, d_model
512, feed-forward 1024, 4 attention heads, ReLU, post-norm residual blocks, sinusoidal positions,
embeddings scaled by sqrt(d_model) and shared by encoder, decoder and output projection (one
joined vocabulary), dropout 0.3, no attention or activation dropout. ``MarianConfig`` expresses all
of it. fairseq starts every decoder sequence with ``</s>``, so ``decoder_start_token_id`` is ``</s>``.

fairseq's initialisation replaces Marian's ``normal(0, 0.02)``: embeddings ``normal(0, d^-0.5)``
with the padding row zero, Xavier-uniform linear layers (gain ``1/sqrt(2)`` for the q, k, v
projections), zero biases. Trained from scratch, this is what the recipe's learning rate assumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationConfig, MarianConfig, MarianMTModel, PreTrainedTokenizerFast


@dataclass
class ArchitectureSizes:
    """The sizes that tests shrink; the defaults are ``transformer_iwslt_de_en``'s."""

    d_model: int = 512
    layers: int = 6
    ffn_dim: int = 1024
    attention_heads: int = 4
    dropout: float = 0.3
    max_positions: int = 1024


def iwslt_config(tokenizer: PreTrainedTokenizerFast, sizes: ArchitectureSizes) -> MarianConfig:
    """A ``MarianConfig`` for the architecture above over ``tokenizer``'s joined vocabulary."""
    eos = tokenizer.eos_token_id
    return MarianConfig(
        vocab_size=len(tokenizer),
        d_model=sizes.d_model,
        max_position_embeddings=sizes.max_positions,
        encoder_layers=sizes.layers,
        decoder_layers=sizes.layers,
        encoder_ffn_dim=sizes.ffn_dim,
        decoder_ffn_dim=sizes.ffn_dim,
        encoder_attention_heads=sizes.attention_heads,
        decoder_attention_heads=sizes.attention_heads,
        activation_function="relu",
        dropout=sizes.dropout,
        attention_dropout=0.0,
        activation_dropout=0.0,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos,
        decoder_start_token_id=eos,
        forced_eos_token_id=eos,
    )


def generation_config(config: MarianConfig, num_beams: int = 5, max_length: int = 200) -> GenerationConfig:
    """Beam search as fairseq-generate runs it: beam 5, length-normalised scores, stop at ``beam`` finished
    hypotheses, ``</s>`` forced at the length limit, ``<pad>`` never generated."""
    return GenerationConfig(
        num_beams=num_beams,
        max_length=max_length,
        early_stopping=True,
        length_penalty=1.0,
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        forced_eos_token_id=config.eos_token_id,
        suppress_tokens=[config.pad_token_id],
    )


@torch.no_grad()
def fairseq_initialise(model: MarianMTModel) -> MarianMTModel:
    """Re-initialise ``model``'s trainable weights as fairseq's Transformer does (see the module docstring)."""
    shared = model.get_input_embeddings()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.weight is not shared.weight:
            gain = 1 / math.sqrt(2) if name.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj") else 1.0
            nn.init.xavier_uniform_(module.weight, gain=gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    nn.init.normal_(shared.weight, mean=0.0, std=model.config.d_model**-0.5)
    shared.weight[model.config.pad_token_id].zero_()
    return model


def build_model(
    tokenizer: PreTrainedTokenizerFast, sizes: ArchitectureSizes, num_beams: int = 5, max_length: int = 200
) -> MarianMTModel:
    """A randomly initialised (fairseq-style) ``MarianMTModel`` with fairseq-like beam search settings."""
    config = iwslt_config(tokenizer, sizes)
    model = fairseq_initialise(MarianMTModel(config))
    model.generation_config = generation_config(config, num_beams, max_length)
    return model
