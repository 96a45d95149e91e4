"""One decoding step for several replies at once, each with its own KV cache (Llama models).

On a CPU a decoding step costs what reading every weight once costs, whether it computes one
token or four: the int4 matmuls of four rows take about what one takes, the rest of a step is
per-call overhead. So the replies of several sessions go through the model together, as one
sequence of their tokens ("ragged": no padding), and only attention runs per reply, against
that reply's own cache. Each layer's query, key and value projections are one matmul here, and
its gate and up projections another (their weights laid end to end once, at start; the model's
own layers then read theirs as slices of it, so nothing is stored twice).

Only models with Llama's layer structure (the bundled SmolLM2 among them) go this way; for any
other the engine computes the replies' tokens one after the other, by the model's own forward pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional

from services.llm.backends.int4 import Int4Linear


def supports(model: Any) -> bool:
    """Whether ``LlamaDecoder`` computes what ``model`` would (its layers are Llama's)."""
    return getattr(model.config, "model_type", None) == "llama" and hasattr(getattr(model, "model", None), "layers")


class LlamaDecoder:
    """Decoding steps of a Llama model over several replies' caches at once."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._layers = list(model.model.layers)
        self._qkv = [
            fuse([layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj]) for layer in self._layers
        ]
        self._gate_up = [fuse([layer.mlp.gate_proj, layer.mlp.up_proj]) for layer in self._layers]

    def step(self, tokens: list[int], caches: list[Any]) -> torch.Tensor:
        """Compute each reply's next token into its cache (``tokens[i]`` follows what ``caches[i]``
        holds); the float logits of what follows each, one row per reply."""
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        inner = self._model.model
        count = len(tokens)
        positions = torch.tensor([[cache.get_seq_length() for cache in caches]])
        hidden = inner.embed_tokens(torch.tensor([tokens]))
        cos, sin = inner.rotary_emb(hidden, positions)
        for index, layer in enumerate(self._layers):
            attention, mlp = layer.self_attn, layer.mlp
            head_dim = attention.head_dim
            projections, sizes = self._qkv[index]
            query, key, value = (
                part.view(1, count, -1, head_dim).transpose(1, 2)
                for part in projections(rms_norm(hidden, layer.input_layernorm)).split(sizes, dim=-1)
            )
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
            projections, sizes = self._gate_up[index]
            gate, up = projections(rms_norm(hidden, layer.post_attention_layernorm)).split(sizes, dim=-1)
            hidden = hidden + mlp.down_proj(mlp.act_fn(gate) * up)
        return self._model.lm_head(rms_norm(hidden, inner.norm))[0].float()


def rms_norm(hidden: torch.Tensor, norm: Any) -> torch.Tensor:
    """What transformers' LlamaRMSNorm computes (in float32, scaled after the cast back), in one kernel."""
    normed = functional.rms_norm(hidden.float(), hidden.shape[-1:], eps=norm.variance_epsilon)
    return norm.weight * normed.to(hidden.dtype)


def fuse(linears: list[Any]) -> tuple[torch.nn.Module, list[int]]:
    """One layer computing what ``linears`` (same input) compute, end to end, and their output
    sizes. Their weights are moved into it: each keeps working, on a slice of the new storage."""
    sizes = [linear.out_features for linear in linears]
    if all(isinstance(linear, Int4Linear) for linear in linears):
        packed = torch.cat([linear.packed for linear in linears])
        scales_and_zeros = torch.cat([linear.scales_and_zeros for linear in linears], dim=1)
        fused: torch.nn.Module = Int4Linear(packed, scales_and_zeros, sum(sizes), linears[0].in_features)
        for linear, start in zip(linears, _starts(sizes), strict=True):
            linear.packed = packed[start : start + linear.out_features]
        return fused, sizes
    if all(type(linear) is torch.nn.Linear for linear in linears):
        has_bias = linears[0].bias is not None
        dense = torch.nn.Linear(linears[0].in_features, sum(sizes), bias=has_bias, dtype=linears[0].weight.dtype)
        dense.weight = torch.nn.Parameter(torch.cat([linear.weight for linear in linears]), requires_grad=False)
        if has_bias:
            dense.bias = torch.nn.Parameter(torch.cat([linear.bias for linear in linears]), requires_grad=False)
        for linear, start in zip(linears, _starts(sizes), strict=True):
            end = start + linear.out_features
            linear.weight = torch.nn.Parameter(dense.weight[start:end], requires_grad=False)
            if has_bias:
                linear.bias = torch.nn.Parameter(dense.bias[start:end], requires_grad=False)
        return dense, sizes
    return _Separate(linears), sizes


def _starts(sizes: list[int]) -> list[int]:
    return [sum(sizes[:index]) for index in range(len(sizes))]


class _Separate(torch.nn.Module):
    """Layers of different kinds (one packed, one not): computed one by one, outputs end to end."""

    def __init__(self, linears: list[Any]) -> None:
        super().__init__()
        self._linears = linears

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([linear(x) for linear in self._linears], dim=-1)
