import numpy as np
import pytest

from services.common.audio import AudioFormatError, float32_to_pcm16, pcm16_to_float32


def test_pcm16_round_trip_keeps_samples() -> None:
    samples = np.array([0.0, 0.5, -0.5, -1.0, 0.999], dtype=np.float32)
    decoded = pcm16_to_float32(float32_to_pcm16(samples))
    assert np.allclose(decoded, samples, atol=1 / 32768)


def test_out_of_range_samples_are_clipped_not_wrapped() -> None:
    decoded = pcm16_to_float32(float32_to_pcm16(np.array([2.0, -2.0], dtype=np.float32)))
    assert decoded[0] > 0.99 and decoded[1] == -1.0


def test_odd_byte_count_is_refused() -> None:
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        pcm16_to_float32(b"\x00\x01\x02")
