"""TurnTranscriber: recognition starts while the user talks; a pause's decode is reused as final."""

import asyncio

import numpy as np

from services.llm.asr import RATE, TurnTranscriber


class FakeRecognizer:
    """Records what it was asked to transcribe; answers with the number of samples it got.

    Foreground and background decodes each finish only while their event is set.
    """

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.background_calls: list[int] = []
        self.release = asyncio.Event()
        self.release.set()
        self.release_background = asyncio.Event()
        self.release_background.set()

    async def transcribe(
        self, audio: np.ndarray, background: bool = False, prompt: str = "", language: str = ""
    ) -> str:
        self.calls.append(len(audio))
        if background:
            self.background_calls.append(len(audio))
        await (self.release_background if background else self.release).wait()
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


async def test_partials_are_background_work_and_pause_decodes_foreground() -> None:
    recognizer = FakeRecognizer()
    recognizer.release_background.clear()  # the partial is still running when the pause comes
    transcriber = TurnTranscriber(recognizer, partial_interval_ms=500)  # type: ignore[arg-type]
    transcriber.feed(tone(0.6))  # an interval of speech: a partial
    await settle()
    transcriber.feed(silence(0.3))  # a pause: the likely final transcript
    await settle()
    assert len(recognizer.calls) == 2
    assert recognizer.background_calls == recognizer.calls[:1]
    assert await transcriber.final() == f"{recognizer.calls[1]} samples"


async def test_the_final_transcript_does_not_wait_for_a_partial_in_flight() -> None:
    recognizer = FakeRecognizer()
    recognizer.release_background.clear()  # partials never finish
    transcriber = TurnTranscriber(recognizer, partial_interval_ms=500)  # type: ignore[arg-type]
    transcriber.feed(tone(0.6))
    await settle()
    assert recognizer.background_calls == [transcriber.samples]  # the partial is in flight
    partial = next(iter(transcriber._running))
    transcriber.feed(tone(0.1))  # the turn ends without a pause long enough for a decode
    assert await transcriber.final() == f"{transcriber.samples} samples"
    await settle()
    assert partial.cancelled()
    assert len(recognizer.calls) == 2 and len(recognizer.background_calls) == 1


async def test_a_partial_covering_all_the_speech_is_not_waited_for_either() -> None:
    recognizer = FakeRecognizer()
    recognizer.release_background.clear()
    transcriber = TurnTranscriber(recognizer, partial_interval_ms=500)  # type: ignore[arg-type]
    transcriber.feed(tone(0.4))
    transcriber.feed(silence(0.15))  # speech over; the partial interval is reached in the silence
    await settle()
    assert recognizer.background_calls == [transcriber.samples]
    assert await transcriber.final() == f"{transcriber.samples} samples"
    assert len(recognizer.calls) == 2  # decoded again in the foreground, not awaited in the background
