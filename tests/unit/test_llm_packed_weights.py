"""Packed weights: a layer stored in 4 bits (as Q4_1 stores it) is computed from its own 4-bit
values; a layer that is not is left alone; the int8 output layer stays close to its weights."""

import torch

from services.llm.backends.int4 import GROUP, Int4Linear, Int8Linear, pack, quantize_linears


def q4_1_weight(out_features: int, in_features: int, seed: int = 0) -> torch.Tensor:
    """Weights as a Q4_1 file holds them: per block of 32, d * q + m with q 0..15, both ends used."""
    generator = torch.Generator().manual_seed(seed)
    blocks = (out_features, in_features // GROUP)
    d = torch.rand(blocks, generator=generator) * 0.015 + 0.005
    m = (torch.randn(blocks, generator=generator) - 7.5) * d  # blocks around zero, as trained weights are
    q = torch.randint(0, 16, (*blocks, GROUP), generator=generator).float()
    q[..., 0], q[..., 1] = 0, 15
    return (d[..., None] * q + m[..., None]).reshape(out_features, in_features).to(torch.bfloat16)


def test_a_4_bit_layer_is_packed_and_computes_the_same() -> None:
    weight = q4_1_weight(64, 128)
    layer, error = pack(weight)
    assert error < 0.1
    x = torch.randn(3, 128, dtype=torch.bfloat16)
    expected = x.float() @ weight.float().t()
    assert torch.allclose(layer(x).float(), expected, atol=0.05 * float(expected.abs().max()))


def test_only_layers_stored_in_4_bits_are_replaced() -> None:
    model = torch.nn.Sequential(
        torch.nn.Linear(128, 64, bias=False), torch.nn.Linear(64, 64, bias=False), torch.nn.Linear(64, 32)
    ).to(torch.bfloat16)
    with torch.no_grad():
        model[0].weight.copy_(q4_1_weight(64, 128))  # 4-bit values
        model[1].weight.copy_(torch.randn(64, 64))  # full precision: packing would lose detail
    assert quantize_linears(model) == 1
    assert isinstance(model[0], Int4Linear)
    assert isinstance(model[1], torch.nn.Linear) and isinstance(model[2], torch.nn.Linear)


def test_int8_output_layer_is_close_to_its_weights() -> None:
    weight = torch.randn(256, 64, dtype=torch.bfloat16)
    x = torch.randn(2, 5, 64, dtype=torch.bfloat16)
    out = Int8Linear(weight)(x)
    expected = x.float() @ weight.float().t()
    assert out.shape == (2, 5, 256)
    assert float((out.float() - expected).abs().max()) < 0.02 * float(expected.abs().max())
