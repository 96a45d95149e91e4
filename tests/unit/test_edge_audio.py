"""The edge's audio plumbing: input history, resampling, the outgoing track and playback clocks."""

import asyncio

import numpy as np

from services.edge.audio import INPUT_RATE, AssistantAudioTrack, InputAudio, PcmResampler, PlaybackClock


def _pcm(values: range | list[int]) -> bytes:
    return np.asarray(list(values), dtype="<i2").tobytes()


def test_input_audio_is_addressed_by_absolute_offsets_and_trims_old_audio() -> None:
    audio = InputAudio(keep_seconds=1)
    for start in range(0, 3 * INPUT_RATE, 1000):
        audio.append(_pcm(range(start % 30000, start % 30000 + 1000)))
    assert audio.total == 3 * INPUT_RATE
    assert audio.first >= audio.total - 2 * INPUT_RATE, "old audio is dropped"
    tail = np.frombuffer(audio.slice(audio.total - 500), dtype="<i2")
    assert len(tail) == 500 and tail[-1] == (audio.total - 1000) % 30000 + 999
    assert audio.slice(0, 100) == b"", "what was dropped is gone, not garbage"
    assert len(audio.slice(audio.first, audio.first + 10)) == 20


def test_resampling_24k_to_16k_keeps_duration_and_pitch() -> None:
    resampler = PcmResampler(24000, INPUT_RATE)
    tone = (np.sin(2 * np.pi * 440 * np.arange(24000) / 24000) * 10000).astype("<i2")
    out = b"".join(resampler.convert(tone[i : i + 480].tobytes()) for i in range(0, 24000, 480))
    samples = np.frombuffer(out, dtype="<i2").astype(np.float64)
    assert INPUT_RATE - len(samples) < 0.03 * INPUT_RATE, "at most the filter's delay (about 20 ms) is held back"
    spectrum = np.abs(np.fft.rfft(samples[2000:14000]))
    assert abs(np.argmax(spectrum) * INPUT_RATE / 12000 - 440) < 5


async def test_track_sends_queued_audio_in_20ms_frames_then_silence() -> None:
    started: list[bool] = []
    track = AssistantAudioTrack(on_started=lambda: started.append(True))
    track.write(_pcm([1000] * 1500))
    assert started == [True]
    frames = [await track.recv() for _ in range(3)]
    assert [f.samples for f in frames] == [960, 960, 960]
    assert [f.pts for f in frames] == [0, 960, 1920]
    data = [f.to_ndarray().reshape(-1) for f in frames]
    assert (data[0] == 1000).all() and (data[1][:540] == 1000).all() and not data[1][540:].any() and not data[2].any()
    assert track.played_samples == 1500
    await asyncio.wait_for(track.drained(), 1)


async def test_track_clear_drops_unplayed_audio() -> None:
    track = AssistantAudioTrack()
    track.write(_pcm([500] * 48000))
    await track.recv()
    assert track.clear() == 48000 - 960
    frame = await track.recv()
    assert not frame.to_ndarray().any()
    await asyncio.wait_for(track.drained(), 1)


def test_playback_clock_counts_what_a_client_has_played() -> None:
    sent: list[bytes] = []
    clock = PlaybackClock(24000, sent.append)
    clock.write(_pcm([0] * 24000))  # one second
    assert sent and clock.played_samples < 24000
    dropped = clock.clear()
    assert 0 < dropped <= 24000
    assert clock.played_samples + dropped == 24000


async def test_a_paused_track_sends_silence_and_keeps_its_queue() -> None:
    played: list[tuple[bytes, int]] = []
    track = AssistantAudioTrack()
    track.on_played = lambda pcm, rate, when: played.append((pcm, rate))
    track.write(_pcm([700] * 2880))  # three frames
    assert (await track.recv()).to_ndarray().all()
    track.pause()
    paused = [await track.recv() for _ in range(2)]
    assert not any(f.to_ndarray().any() for f in paused), "silence while paused"
    assert (track.played_samples, track.queued_samples) == (960, 1920)
    track.resume()
    assert (await track.recv()).to_ndarray().all(), "the reply plays on where it stopped"
    assert track.played_samples == 1920
    # What went out, silence included, reached the echo guard's tap.
    assert [len(pcm) // 2 for pcm, _ in played] == [960] * 4 and {rate for _, rate in played} == {48000}


def test_a_paused_playback_clock_holds_audio_back_until_resumed() -> None:
    sent: list[bytes] = []
    clock = PlaybackClock(24000, sent.append)
    clock.pause()
    clock.write(_pcm([5] * 2400))
    assert sent == [] and clock.queued_samples == 2400
    clock.resume()
    assert len(sent) == 1 and len(sent[0]) == 4800
    clock.pause()
    clock.write(_pcm([5] * 2400))
    assert clock.clear() >= 2400 and clock.queued_samples == 0, "clearing drops what was held back"
