"""One decoding step for several replies at once, each with its own KV cache (Llama models).

On a CPU a decoding step costs what reading every weight once costs, whether it computes one
token or four: the int4 matmuls of four rows take about what one takes, the rest of a step is
per-call overhead. So the replies of several sessions go through the model together, as one
sequence of their tokens ("ragged": no padding), and only attention runs per reply, against
that reply's own cache. Here four replies decode in 42 ms a step where four steps one after the
other took 116 ms, with the same logits to the bit as each reply computed alone
(docs/benchmarks.md).

Only models with Llama's layer structure (the bundled SmolLM2 among them) go this way; for any
other the engine computes the replies' tokens one after the other (``one_by_one``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional


def supports(model: Any) -> bool:
    """Whether ``decode_step`` computes exactly what ``model`` would (its layers are Llama's)."""
    return getattr(model.config, "model_type", None) == "llama" and hasattr(getattr(model, "model", None), "layers")


def decode_step(model: Any, tokens: list[int], caches: list[Any]) -> torch.Tensor:
    """Compute each reply's next token into its cache (``tokens[i]`` follows what ``caches[i]``
    holds); the float logits of what follows each, one row per reply."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    inner = model.model
    count = len(tokens)
    positions = torch.tensor([[cache.get_seq_length() for cache in caches]])
    hidden = inner.embed_tokens(torch.tensor([tokens]))
    cos, sin = inner.rotary_emb(hidden, positions)
    for index, layer in enumerate(inner.layers):
        attention = layer.self_attn
        head_dim = attention.head_dim
        normed = layer.input_layernorm(hidden)
        query = attention.q_proj(normed).view(1, count, -1, head_dim).transpose(1, 2)
        key = attention.k_proj(normed).view(1, count, -1, head_dim).transpose(1, 2)
        value = attention.v_proj(normed).view(1, count, -1, head_dim).transpose(1, 2)
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        outputs = []
        for row, cache in enumerate(caches):
            keys, values = cache.update(key[:, :, row : row + 1], value[:, :, row : row + 1], index)
            outputs.append(
                functional.scaled_dot_product_attention(
                    query[:, :, row : row + 1], keys, values, scale=attention.scaling, enable_gqa=True
                )
            )
        attended = torch.cat(outputs, dim=2).transpose(1, 2).reshape(1, count, -1)
        hidden = hidden + attention.o_proj(attended)
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return model.lm_head(inner.norm(hidden))[0].float()


def one_by_one(model: Any, tokens: list[int], caches: list[Any]) -> torch.Tensor:
    """What ``decode_step`` computes, by the model's own forward pass, one reply after the other."""
    rows = [
        model(input_ids=torch.tensor([[token]]), past_key_values=cache, use_cache=True, logits_to_keep=1).logits[0, -1]
        for token, cache in zip(tokens, caches, strict=True)
    ]
    return torch.stack(rows).float()
