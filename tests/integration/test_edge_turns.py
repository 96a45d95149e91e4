"""The edge's end of turn: semantic_vad (the VAD service's turn model) beside server_vad."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import numpy as np
import pytest

from tests.support.processes import ServiceProcess, start_edge
from tests.support.speech import piper_voice, resample
from tests.support.tooling import metric_value
from tests.support.transcribe import spoken_words
from tests.support.turn_samples import PAUSED_AFTER_MAYBE, phrase_cut, piper_said
from tests.support.webrtc_client import RATE, RealtimeCall


def _said(*parts: str | float) -> np.ndarray:
    """Piper speech at the call's rate; floats are pauses in seconds."""
    return piper_said(*parts, rate=RATE)


def _semantic(eagerness: str = "auto") -> dict[str, object]:
    return {
        "type": "realtime",
        "parley": {"mode": "half_duplex"},
        "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": eagerness}}},
    }


async def _metrics(edge: ServiceProcess) -> str:
    async with aiohttp.ClientSession() as http, http.get(edge.url + "metrics") as response:
        return await response.text()


async def test_a_finished_question_is_answered_on_the_turn_models_word(edge_service: ServiceProcess) -> None:
    call = RealtimeCall(edge_service.url)
    try:
        await call.connect(_semantic())
        created = await call.wait_for("session.created")
        call.microphone.play(_said("What is the capital of France?", 2.5))
        done = await call.wait_for("response.done", timeout=60)
        await call.wait_for("output_audio_buffer.stopped", timeout=30)
    finally:
        await call.close()
    detection = created["session"]["audio"]["input"]["turn_detection"]
    assert detection["type"] == "semantic_vad" and detection["eagerness"] == "auto"
    end_of_turn = done["response"]["parley"]["end_of_turn"]
    assert end_of_turn["detection"] == "semantic_vad" and end_of_turn["reason"] == "complete", end_of_turn
    assert 0.5 <= end_of_turn["probability"] <= 1 and end_of_turn["scorings"] == 1
    assert "end_of_speech_wait" in done["response"]["parley"]["timings_ms"]
    assert "Paris" in done["response"]["output"][0]["content"][0]["transcript"]
    metrics = await _metrics(edge_service)
    assert metric_value(metrics, 'parley_edge_end_of_turn_total{detection="semantic_vad",reason="complete"}') >= 1


async def test_a_pause_the_turn_model_calls_unfinished_does_not_end_the_turn(edge_service: ServiceProcess) -> None:
    """A second of silence after a trailing "maybe" would end a server_vad turn twice over; the
    turn model hears that the speaker is not done, so the whole utterance is one turn.

    Its only pause is that one: the sound alone calls it unfinished at every window phase
    (test_vad_turns.py), as it must for a test whose clip reaches the VAD at a phase that moves
    from run to run. A lone filler's pause ("Um,") it calls finished at most phases (0.56-0.96):
    there only the words can hold the turn, and the scripted LLM here scores none."""
    call = RealtimeCall(edge_service.url)
    try:
        await call.connect(_semantic())
        await call.wait_for("session.created")
        call.microphone.play(_said(*PAUSED_AFTER_MAYBE))
        done = await call.wait_for("response.done", timeout=60)
        transcript = (await call.wait_for("conversation.item.input_audio_transcription.completed"))["transcript"]
        await call.wait_for("output_audio_buffer.stopped", timeout=30)
    finally:
        await call.close()
    assert len(call.of_type("input_audio_buffer.speech_started")) == 1
    assert len(call.of_type("response.created")) == 1, "one answer, to the whole utterance"
    assert {"thinking", "france"} <= set(spoken_words(transcript)), transcript
    assert done["response"]["parley"]["end_of_turn"]["scorings"] >= 2


async def test_server_vad_turns_say_they_ended_on_silence(edge_service: ServiceProcess) -> None:
    call = RealtimeCall(edge_service.url)
    try:
        await call.connect({"type": "realtime", "parley": {"mode": "half_duplex"}})
        await call.wait_for("session.created")
        call.microphone.play(_said("What is the capital of France?", 1.5))
        done = await call.wait_for("response.done", timeout=60)
        await call.wait_for("output_audio_buffer.stopped", timeout=30)
    finally:
        await call.close()
    assert done["response"]["parley"]["end_of_turn"] == {"detection": "server_vad", "reason": "silence"}


async def test_a_live_session_update_of_turn_detection_keeps_the_turn_in_progress(
    edge_service: ServiceProcess,
) -> None:
    """A client lengthening the silence while its user speaks (as LiveKit's update_options does):
    the turn in progress is not dropped, and its 0.8 s pause, which would have ended it under
    the 500 ms it began with, no longer does."""
    call = RealtimeCall(edge_service.url)
    try:
        await call.connect({"type": "realtime", "parley": {"mode": "half_duplex"}})
        await call.wait_for("session.created")
        call.microphone.play(_said("What is the capital", 0.8, "of France?", 2.5))
        await call.wait_for("input_audio_buffer.speech_started", timeout=30)
        call.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": {"silence_duration_ms": 1500}}}},
            }
        )
        updated = await call.wait_for("session.updated")
        done = await call.wait_for("response.done", timeout=60)
        transcript = (await call.wait_for("conversation.item.input_audio_transcription.completed"))["transcript"]
        await call.wait_for("output_audio_buffer.stopped", timeout=30)
    finally:
        await call.close()
    assert updated["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 1500
    assert len(call.of_type("input_audio_buffer.speech_started")) == 1
    assert len(call.of_type("response.created")) == 1, "one answer, to the whole question"
    assert {"capital", "france"} <= set(spoken_words(transcript)), transcript
    assert done["response"]["status"] == "completed"


@pytest.fixture(scope="module")
def edge_hearing_words(
    vad_service: ServiceProcess, llm_service: ServiceProcess, tts_service: ServiceProcess
) -> Iterator[ServiceProcess]:
    """The edge in front of the bundled language model, which scores the words of a pause (the
    scripted one cannot: there the sound decides alone)."""
    service = start_edge(vad_service, llm_service, tts_service)
    yield service
    assert service.stop() == 0, f"edge exited badly; log: {service.logs[-10:]}"


async def test_a_table_booking_with_a_pause_after_for_is_one_turn(edge_hearing_words: ServiceProcess) -> None:
    """Cut at "for" out of the whole sentence's recording (its voice still mid-sentence), the
    pause is one the turn model mostly calls finished (the labelled set's xfail in
    test_vad_turns.py); the words ("... a table for") say it is not, and the turn waits."""
    whole = piper_voice("I'd like to book a table for two people tonight.")
    cut = phrase_cut(whole, piper_voice("I'd like to book a table for"))
    pause = np.zeros(int(16000 * 1.2), np.float32)  # the voice's rate
    question = np.concatenate((np.zeros(16000 // 5, np.float32), whole[:cut], pause, whole[cut:], pause, pause))
    call = RealtimeCall(edge_hearing_words.url)
    try:
        await call.connect(_semantic())
        await call.wait_for("session.created")
        call.microphone.play(resample(question, 16000, RATE))
        done = await call.wait_for("response.done", timeout=90)
        transcript = (await call.wait_for("conversation.item.input_audio_transcription.completed"))["transcript"]
        await call.wait_for("output_audio_buffer.stopped", timeout=60)
    finally:
        await call.close()
    assert len(call.of_type("response.created")) == 1, "one answer, to the whole booking"
    assert {"table", "two", "tonight"} <= set(spoken_words(transcript)), transcript
    end_of_turn = done["response"]["parley"]["end_of_turn"]
    assert end_of_turn["detection"] == "semantic_vad" and "text_probability" in end_of_turn, end_of_turn
    # Where the sound called the pause after "for" finished (on this machine kind it does), the
    # words held it: parley_edge_end_of_turn_words_total{decision="hold"}. With the words off
    # (PARLEY_EDGE_SEMANTIC_WORDS=false) this test fails: the answer is to "a table for".
