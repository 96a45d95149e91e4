"""TurnTranscriber: recognition starts while the user talks; a pause's decode is reused as final."""

import asyncio

import numpy as np

from services.llm.asr import RATE, TurnTranscriber


class FakeRecognizer:
    """Records what it was asked to transcribe; answers with the number of samples it got."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.release = asyncio.Event()
        self.release.set()

    async def transcribe(self, audio: np.ndarray) -> str:
        self.calls.append(len(audio))
        await self.release.wait()
        return f"{len(audio)} samples"


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)  # let the background decode task run (no time passes)


async def test_pause_after_speech_starts_a_decode_that_becomes_final() -> None:
    recognizer = FakeRecognizer()
    transcriber = TurnTranscriber(recognizer, partial_interval_ms=0)  # type: ignore[arg-type]
    transcriber.feed(tone(1.0))
    await settle()
    assert recognizer.calls == []  # still talking, no partials asked for
    for _ in range(15):  # 300 ms of silence in 20 ms chunks
        transcriber.feed(silence(0.02))
    await settle()
    assert len(recognizer.calls) == 1
    decoded = recognizer.calls[0]
    transcriber.feed(silence(0.3))  # more silence: nothing new to decode
    assert await transcriber.final() == f"{decoded} samples"
    assert len(recognizer.calls) == 1


async def test_speech_after_the_early_decode_is_decoded_again_at_the_end() -> None:
    recognizer = FakeRecognizer()
    transcriber = TurnTranscriber(recognizer, partial_interval_ms=0)  # type: ignore[arg-type]
    transcriber.feed(tone(1.0))
    transcriber.feed(silence(0.3))
    await settle()
    transcriber.feed(tone(0.5))
    transcriber.feed(silence(0.1))
    final = await transcriber.final()
    assert final == f"{transcriber.samples} samples"


async def test_partials_arrive_every_interval_of_speech() -> None:
    recognizer = FakeRecognizer()
    partials: list[str] = []
    transcriber = TurnTranscriber(recognizer, partial_interval_ms=500, on_partial=partials.append)  # type: ignore[arg-type]
    for _ in range(10):
        transcriber.feed(tone(0.25))
        await settle()
    assert len(partials) >= 3
    assert partials == sorted(partials, key=lambda p: int(p.split()[0]))


async def test_silence_only_is_an_empty_transcript_without_decoding() -> None:
    recognizer = FakeRecognizer()
    transcriber = TurnTranscriber(recognizer, partial_interval_ms=500)  # type: ignore[arg-type]
    transcriber.feed(silence(2.0))
    assert await transcriber.final() == ""
    assert recognizer.calls == []


async def test_final_waits_for_a_running_decode_instead_of_starting_another() -> None:
    recognizer = FakeRecognizer()
    recognizer.release.clear()
    transcriber = TurnTranscriber(recognizer, partial_interval_ms=0)  # type: ignore[arg-type]
    transcriber.feed(tone(1.0))
    transcriber.feed(silence(0.3))
    await settle()
    assert len(recognizer.calls) == 1
    final = asyncio.create_task(transcriber.final())
    await settle()
    assert not final.done()
    recognizer.release.set()
    assert await final == f"{recognizer.calls[0]} samples"
    assert len(recognizer.calls) == 1


async def test_a_pause_does_not_wait_for_a_partial_decode_in_flight() -> None:
    recognizer = FakeRecognizer()
    recognizer.release.clear()  # decodes hang until released
    transcriber = TurnTranscriber(recognizer, partial_interval_ms=500)  # type: ignore[arg-type]
    transcriber.feed(tone(0.6))  # the partial decode starts here and does not finish
    await settle()
    assert len(recognizer.calls) == 1
    transcriber.feed(tone(0.3))
    transcriber.feed(silence(0.3))  # a pause: a second decode starts beside the first
    await settle()
    assert len(recognizer.calls) == 2
    final = asyncio.create_task(transcriber.final())
    recognizer.release.set()
    assert await final == f"{recognizer.calls[1]} samples"
    assert len(recognizer.calls) == 2
