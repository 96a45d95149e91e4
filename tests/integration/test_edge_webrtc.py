"""The WebRTC path without a browser: an aiortc client calls the edge over loopback."""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np
import pytest

from tests.support.counts import edge_sessions, llm_sessions, wait_for_edge_sessions, wait_for_llm_sessions
from tests.support.processes import ServiceProcess
from tests.support.speech import piper_voice_at, speak
from tests.support.tooling import metric_value
from tests.support.transcribe import spoken_words
from tests.support.webrtc_client import RATE, RealtimeCall


def _question(text: str, silence_after: float = 1.5) -> np.ndarray:
    return np.concatenate(
        (np.zeros(RATE // 5, np.float32), piper_voice_at(text, RATE), np.zeros(int(RATE * silence_after), np.float32))
    )


async def test_half_duplex_voice_turn_is_answered_on_the_audio_track(edge_service: ServiceProcess) -> None:
    call = RealtimeCall(edge_service.url)
    try:
        await call.connect({"type": "realtime", "parley": {"mode": "half_duplex"}})
        created = await call.wait_for("session.created")
        assert created["session"]["parley"]["mode"] == "half_duplex"
        assert created["session"]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        # The question and the silence after it as two clips: the first clip's end is the end of speech.
        call.microphone.play(_question("What is the capital of France?", silence_after=0))
        call.microphone.play(np.zeros(int(RATE * 1.5), np.float32))
        done = await call.wait_for("response.done", timeout=60)
        await call.wait_for("output_audio_buffer.stopped", timeout=30)
        transcript = (await call.wait_for("conversation.item.input_audio_transcription.completed"))["transcript"]
        reply = (await call.wait_for("response.output_audio_transcript.done"))["transcript"]
        started = await call.wait_for("output_audio_buffer.started")
    finally:
        await call.close()
    assert done["response"]["status"] == "completed"
    assert started["response_id"] == done["response"]["id"]
    assert {"capital", "france"} <= set(spoken_words(transcript)), transcript
    assert "Paris" in reply
    assert call.loud_seconds() > 0.8, "the assistant's answer is heard on the remote track"
    speech_end = call.microphone.clip_ended[0]
    first_loud = call.first_loud_time(after=0.0, threshold=2000)
    assert first_loud is not None and first_loud > speech_end, "no assistant audio before the question ended"
    timings = done["response"]["parley"]["timings_ms"]
    assert {"voice_to_voice", "end_of_speech_wait", "llm_first_token", "text_to_first_audio"} <= set(timings)


async def test_half_duplex_ignores_the_microphone_while_the_assistant_speaks(edge_service: ServiceProcess) -> None:
    call = RealtimeCall(edge_service.url)
    try:
        await call.connect()  # the server's default mode: half-duplex
        await call.wait_for("session.created")
        call.microphone.play(_question("What is the capital of France?", silence_after=0.6))
        await call.wait_for("output_audio_buffer.started", timeout=60)
        # A short interjection while the answer (about two seconds) plays: half-duplex does not hear it.
        call.microphone.play(_question("Hello there.", silence_after=0.1))
        await asyncio.wait_for(call.microphone.played_out(), 10)
        assert not call.of_type("output_audio_buffer.stopped"), "the interjection ended while the answer played"
        stopped = await call.wait_for("output_audio_buffer.stopped", timeout=60)
        index = call.events.index(stopped)
        assert len(call.of_type("input_audio_buffer.speech_started")) == 1
        # Once the assistant has finished (and the echo guard has passed), it listens again.
        call.microphone.play(_question("What is two plus two?"))
        await call.wait_for("input_audio_buffer.speech_started", after=index + 1, timeout=30)
        second = await call.wait_for(
            "conversation.item.input_audio_transcription.completed", after=index + 1, timeout=60
        )
    finally:
        await call.close()
    assert "two" in spoken_words(second["transcript"]), second["transcript"]


async def test_chat_mode_text_and_push_to_talk_turns(edge_service: ServiceProcess) -> None:
    call = RealtimeCall(edge_service.url)
    try:
        await call.connect({"type": "realtime", "parley": {"mode": "chat"}})
        created = await call.wait_for("session.created")
        assert created["session"]["audio"]["input"]["turn_detection"] is None
        call.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello."}]},
            }
        )
        call.send({"type": "response.create"})
        first = await call.wait_for("response.done", timeout=60)
        assert first["response"]["status"] == "completed"
        assert first["response"]["output"][0]["content"][0]["transcript"]
        # Push-to-talk: clear, speak, commit, ask for the response. No server VAD in chat mode.
        count = len(call.events)
        call.send({"type": "input_audio_buffer.clear"})
        await call.wait_for("input_audio_buffer.cleared", after=count)
        call.microphone.play(piper_voice_at("What is the capital of France?", RATE))
        await asyncio.wait_for(call.microphone.played_out(), 30)
        call.send({"type": "input_audio_buffer.commit"})
        call.send({"type": "response.create"})
        committed = await call.wait_for("input_audio_buffer.committed", after=count)
        transcript = await call.wait_for(
            "conversation.item.input_audio_transcription.completed", after=count, timeout=60
        )
        second = await call.wait_for("response.done", after=count, timeout=60)
    finally:
        await call.close()
    assert not call.of_type("input_audio_buffer.speech_started"), "chat mode runs no server VAD"
    assert transcript["item_id"] == committed["item_id"]
    assert {"capital", "france"} <= set(spoken_words(transcript["transcript"])), transcript["transcript"]
    assert "Paris" in second["response"]["output"][0]["content"][0]["transcript"]


async def test_a_pause_shorter_than_the_turn_silence_does_not_cut_the_user_off(edge_service: ServiceProcess) -> None:
    """The edge starts answering at a 200 ms pause but holds the answer back; speech resuming
    within the turn's 500 ms silence drops that answer and the whole question is answered once.

    Silero hears the faint end of espeak's "capital" as silence, so a 100 ms gap in the audio
    is a pause of about 400 ms to the VAD: past the tentative 200 ms, short of the turn's 500 ms.
    """
    first, second = speak("What is the capital", RATE), speak("of France?", RATE)
    pause = np.zeros(int(RATE * 0.1), np.float32)
    call = RealtimeCall(edge_service.url)
    try:
        await call.connect({"type": "realtime", "parley": {"mode": "half_duplex"}})
        await call.wait_for("session.created")
        call.microphone.play(
            np.concatenate((np.zeros(RATE // 5, np.float32), first, pause, second, np.zeros(RATE, np.float32)))
        )
        done = await call.wait_for("response.done", timeout=60)
        transcript = (await call.wait_for("conversation.item.input_audio_transcription.completed"))["transcript"]
        await call.wait_for("output_audio_buffer.stopped", timeout=30)
    finally:
        await call.close()
    assert len(call.of_type("input_audio_buffer.speech_started")) == 1
    assert len(call.of_type("response.created")) == 1, "one answer, to the whole question"
    assert {"capital", "france"} <= set(spoken_words(transcript)), transcript
    assert "Paris" in done["response"]["output"][0]["content"][0]["transcript"]
    async with aiohttp.ClientSession() as http, http.get(edge_service.url + "metrics") as response:
        metrics = await response.text()
    assert metric_value(metrics, 'parley_edge_speculative_turns_total{outcome="dropped"}') >= 1
    assert metric_value(metrics, "parley_edge_voice_to_voice_seconds_count") >= 1


@pytest.mark.parametrize("ending", ["hangup", "peer closed"])
async def test_ending_a_call_frees_its_session_everywhere(
    edge_service: ServiceProcess, scripted_llm: ServiceProcess, ending: str
) -> None:
    await wait_for_edge_sessions(edge_service, 0)
    llm_before = await llm_sessions(scripted_llm)
    call = RealtimeCall(edge_service.url)
    await call.connect({"type": "realtime", "parley": {"mode": "chat"}, "output_modalities": ["text"]})
    await call.wait_for("session.created")
    call.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi."}]},
        }
    )
    call.send({"type": "response.create"})
    await call.wait_for("response.done", timeout=60)
    assert await edge_sessions(edge_service) == 1
    assert await llm_sessions(scripted_llm) == llm_before + 1
    if ending == "hangup":
        url = f"{edge_service.url}v1/realtime/calls/{call.call_id}/hangup"
        async with aiohttp.ClientSession() as http, http.post(url) as response:
            assert response.status == 200
        await call.close()
    else:
        await call.close()  # the browser went away: its peer connection and data channel close
    await wait_for_edge_sessions(edge_service, 0)
    await wait_for_llm_sessions(scripted_llm, llm_before)
    async with aiohttp.ClientSession() as http:
        # Hanging up an ended call again is fine (a page's hangup may cross the edge's own close);
        # an id the edge never had is not.
        async with http.post(f"{edge_service.url}v1/realtime/calls/{call.call_id}/hangup") as again:
            assert again.status == 200
        async with http.post(f"{edge_service.url}v1/realtime/calls/sess_unknown/hangup") as unknown:
            assert unknown.status == 404
            assert (await unknown.json())["error"]["code"] == "call_not_found"
