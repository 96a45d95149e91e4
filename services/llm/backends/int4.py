"""Packed weights for the transformers engine on CPU: decoding reads a quarter of the bytes.

Decoding one token reads every weight once, so on a CPU its speed is set by memory traffic: the
bundled SmolLM2-135M dequantised to bf16 is about 270 MB a token. Its GGUF holds the linear layers
in Q4_1 (blocks of 32 weights, ``w = d * q + m`` with q in 0..15 and each block's minimum and
maximum exactly representable), so re-quantising the dequantised weights block by block with the
same min/max rule gives back the file's own 4-bit values, and torch's packed int4 kernel
(``w = (q - 8) * scale + zero``, groups of 32 along the input) computes with them directly.

``quantize_linears`` checks what it packs: a layer whose 4-bit form differs from its weights by
more than a rounding step is left as it is (a model not stored in 4 bits loses nothing silently).
The output layer (tied to the embeddings, Q8_0 in the file) is read once a token too and is the
largest single matrix; ``quantize_output_layer`` stores it in int8 with one scale per row.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

log = logging.getLogger(__name__)

GROUP = 32  # Q4_1's block, and a group size torch's int4 kernel supports
LEVELS = 15
# A layer is packed only if every weight comes back within this share of its group's step: the
# Q4_1 weights of the bundled model come back within bf16 rounding of them (up to about 0.06 of a
# step); weights of a model not stored in 4 bits are off by up to half a step.
MAX_ERROR_IN_STEPS = 0.25


class Int4Linear(torch.nn.Module):
    """A bias-free linear layer computed from packed 4-bit weights with a bf16 scale and zero per group."""

    def __init__(self, packed: torch.Tensor, scales_and_zeros: torch.Tensor, out_features: int, in_features: int):
        super().__init__()
        self.register_buffer("packed", packed)
        self.register_buffer("scales_and_zeros", scales_and_zeros)
        self.out_features, self.in_features = out_features, in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(rows, self.packed, GROUP, self.scales_and_zeros)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


def pack(weight: torch.Tensor) -> tuple[Int4Linear, float]:
    """The weight's 4-bit form by Q4_1's rule (per group: step = (max - min) / 15, zero point at the
    minimum), and how far the packed weights are from the given ones, in steps."""
    out_features, in_features = weight.shape
    groups = weight.float().reshape(out_features, in_features // GROUP, GROUP)
    low, high = groups.amin(dim=-1), groups.amax(dim=-1)
    step = (high - low) / LEVELS
    safe_step = torch.where(step > 0, step, torch.ones_like(step))
    q = torch.round((groups - low[..., None]) / safe_step[..., None]).clamp(0, LEVELS)
    # torch's kernel: w = (q - 8) * scale + zero, with scale and zero in bf16.
    scale, zero = step.to(torch.bfloat16), (low + 8 * step).to(torch.bfloat16)
    rebuilt = (q - 8) * scale.float()[..., None] + zero.float()[..., None]
    error = float(((rebuilt - groups).abs() / safe_step[..., None]).max())
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.reshape(out_features, in_features).to(torch.int32), 1)
    scales_and_zeros = torch.stack((scale.t(), zero.t()), dim=-1).contiguous()  # (groups, out, 2)
    return Int4Linear(packed, scales_and_zeros, out_features, in_features), error


class Int8Linear(torch.nn.Module):
    """A bias-free linear layer computed from int8 weights with one bf16 scale per output row."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        weight = weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127).clamp_min(torch.finfo(torch.float32).tiny)
        self.register_buffer("weight_int8", torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scales.to(torch.bfloat16))
        self.out_features, self.in_features = weight.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        out = torch.ops.aten._weight_int8pack_mm(rows.to(torch.bfloat16), self.weight_int8, self.scales)
        return out.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


def quantize_output_layer(model: Any) -> None:
    """The output layer (``lm_head``) of a transformers model in int8; its embedding twin stays as it is."""
    head = model.get_output_embeddings()
    if isinstance(head, torch.nn.Linear) and head.bias is None:
        model.set_output_embeddings(Int8Linear(head.weight))


def quantize_linears(model: torch.nn.Module, skip: tuple[str, ...] = ("lm_head",)) -> int:
    """Replace the model's bias-free linear layers whose weights are 4-bit values by Int4Linear;
    returns how many were replaced."""
    replaced = kept = 0
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            full = f"{parent_name}.{name}" if parent_name else name
            if not isinstance(child, torch.nn.Linear) or child.bias is not None or name in skip:
                continue
            if child.in_features % GROUP or child.out_features % 8:
                kept += 1
                continue
            layer, error = pack(child.weight.detach())
            if error > MAX_ERROR_IN_STEPS:
                kept += 1
                log.debug("%s is not in 4 bits (error %.2f steps): kept as it is", full, error)
                continue
            setattr(parent, name, layer)
            replaced += 1
    if kept:
        log.info("4-bit weights: %d linear layers packed, %d kept (their weights are not 4-bit values)", replaced, kept)
    return replaced
