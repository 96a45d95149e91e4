"""Full-duplex voice over WebRTC (aiortc client): barge-in, truncation to what was heard, echo."""

from __future__ import annotations

import urllib.request

import aiohttp
import numpy as np

from tests.support.processes import ServiceProcess
from tests.support.speech import speak
from tests.support.tooling import metric_value
from tests.support.transcribe import spoken_words
from tests.support.webrtc_client import RATE, RealtimeCall

LONG_ANSWER = "Answer in at least five long sentences."


def _full_duplex(instructions: str = LONG_ANSWER) -> dict[str, object]:
    return {"type": "realtime", "parley": {"mode": "full_duplex"}, "instructions": instructions}


def _said(text: str) -> np.ndarray:
    return np.concatenate((np.zeros(RATE // 5, np.float32), speak(text, RATE)))


async def _metric(edge: ServiceProcess, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(edge.url + "metrics") as response:
        return metric_value(await response.text(), name)


async def test_speaking_over_the_assistant_stops_it_and_the_new_question_is_answered(
    edge_service: ServiceProcess,
) -> None:
    barge_ins = await _metric(edge_service, "parley_edge_barge_ins_total")
    call = RealtimeCall(edge_service.url, receive_prefetch=1)
    try:
        await call.connect(_full_duplex())
        await call.wait_for("session.created")
        call.microphone.play(_said("Tell me about the history of the city of Paris."))
        first = await call.wait_for("response.created", timeout=60)
        first_item = (await call.wait_for("response.output_item.added"))["item"]["id"]
        await call.wait_for("output_audio_buffer.started", timeout=30)
        await call.wait_until(lambda: call.loud_seconds() >= 1.5, timeout=30)  # well into the reply
        before = len(call.events)
        clips = len(call.microphone.clip_started)
        call.microphone.play(_said("What is the capital of Germany?"))
        truncated = await call.wait_for("conversation.item.truncated", after=before, timeout=15)
        second = await call.wait_for("response.created", after=before, timeout=60)
        await call.wait_until(
            lambda: any(d["response"]["id"] == second["response"]["id"] for d in call.of_type("response.done")), 60
        )
        done = {d["response"]["id"]: d["response"] for d in call.of_type("response.done")}
        transcripts = call.of_type("conversation.item.input_audio_transcription.completed")
        await call.wait_for("output_audio_buffer.stopped", after=call.events.index(second), timeout=30)
    finally:
        await call.close()
    spoke_over_at = call.microphone.clip_started[clips]
    # The first reply goes silent at once and stays silent until the second reply.
    second_reply_heard = call.first_loud_time(after=call.microphone.clip_ended[-1])
    assert second_reply_heard is not None
    last_of_first = call.last_loud_time(after=spoke_over_at, before=second_reply_heard - 0.1)
    assert last_of_first is None or last_of_first - spoke_over_at < 1.0, last_of_first - spoke_over_at
    # The first reply is cut to what was heard: a beginning of what was generated.
    generated = "".join(
        e["delta"]
        for e in call.events
        if e["type"] == "response.output_audio_transcript.delta" and e["item_id"] == first_item
    )
    heard = truncated["parley"]["transcript"]
    assert truncated["item_id"] == first_item and truncated["audio_end_ms"] > 1000
    assert spoken_words(heard) and spoken_words(heard) == spoken_words(generated)[: len(spoken_words(heard))]
    assert len(spoken_words(heard)) < len(spoken_words(generated)), (heard, generated)
    first_done = done[first["response"]["id"]]
    first_text = first_done["output"][0]["content"][0]["transcript"]
    if first_done["status"] == "cancelled":  # still generating when interrupted
        assert first_done["status_details"]["reason"] == "turn_detected"
        assert first_text == heard
    # The interrupting question, from its first word, is answered.
    assert {"what", "capital", "germany"} <= set(spoken_words(transcripts[-1]["transcript"])), transcripts[-1]
    assert "Berlin" in done[second["response"]["id"]]["output"][0]["content"][0]["transcript"]
    assert await _metric(edge_service, "parley_edge_barge_ins_total") >= barge_ins + 1


async def test_the_assistants_own_voice_coming_back_does_not_interrupt_it(edge_service: ServiceProcess) -> None:
    """The client plays the reply back into its microphone at a quarter of its amplitude
    (-12 dB, as a laptop's loudspeaker and microphone without echo cancellation)."""
    rejected = await _metric(edge_service, "parley_edge_echo_rejected_total")
    barge_ins = await _metric(edge_service, "parley_edge_barge_ins_total")
    call = RealtimeCall(edge_service.url, receive_prefetch=1, echo_gain=0.25, echo_delay_ms=60)
    try:
        await call.connect(_full_duplex())
        await call.wait_for("session.created")
        call.microphone.play(_said("Tell me about the history of the city of Paris."))
        done = await call.wait_for("response.done", timeout=90)
        await call.wait_for("output_audio_buffer.stopped", timeout=60)
    finally:
        await call.close()
    # Played to its end (the small model may stop at the token limit: "incomplete").
    assert done["response"]["status"] in ("completed", "incomplete"), done["response"].get("status_details")
    assert call.of_type("conversation.item.truncated") == []
    assert len(call.of_type("response.created")) == 1
    assert call.loud_seconds() > 3, "a long reply was played (and echoed)"
    assert await _metric(edge_service, "parley_edge_barge_ins_total") == barge_ins
    # The echo was loud enough to sound like speech, and was recognised as the assistant's.
    assert await _metric(edge_service, "parley_edge_echo_rejected_total") > rejected


async def test_omni_sends_camera_pictures_with_the_users_speech(
    edge_service: ServiceProcess, scripted_llm: ServiceProcess
) -> None:
    """The bundled model reads text only: it says so, which it does only for a turn that came
    with images; the LLM service counts the pictures it received."""
    images_before = _llm_images(scripted_llm)
    call = RealtimeCall(edge_service.url, receive_prefetch=1, camera=True)
    try:
        await call.connect({"type": "realtime", "parley": {"mode": "omni"}})
        await call.wait_for("session.created")
        call.microphone.play(np.concatenate((np.zeros(RATE, np.float32), _said("What do you see in front of you?"))))
        done = await call.wait_for("response.done", timeout=90)
        await call.wait_for("output_audio_buffer.stopped", timeout=60)
    finally:
        await call.close()
    reply = done["response"]["output"][0]["content"][0]["transcript"]
    assert reply.startswith("I can't see images"), reply
    received = _llm_images(scripted_llm) - images_before
    assert 1 <= received <= 4, f"{received} pictures: one as the turn opens, then one a second of speech"


def _llm_images(llm: ServiceProcess) -> float:
    with urllib.request.urlopen(llm.metrics_url, timeout=10) as response:
        return metric_value(response.read().decode(), "parley_llm_images_total")


async def test_with_interrupt_response_false_speech_over_the_reply_is_answered_after_it(
    edge_service: ServiceProcess,
) -> None:
    """turn_detection.interrupt_response false: the user's words over a reply open their turn,
    the reply plays to its end (not paused, not cut), and their question is answered after it."""
    session = {
        **_full_duplex(),
        "audio": {"input": {"turn_detection": {"type": "server_vad", "interrupt_response": False}}},
    }
    call = RealtimeCall(edge_service.url, receive_prefetch=1)
    try:
        await call.connect(session)
        await call.wait_for("session.created")
        call.microphone.play(_said("Tell me about the history of the city of Paris."))
        first = await call.wait_for("response.created", timeout=60)
        await call.wait_for("output_audio_buffer.started", timeout=30)
        await call.wait_until(lambda: call.loud_seconds() >= 1.5, timeout=30)  # well into the reply
        before = len(call.events)
        call.microphone.play(_said("What is the capital of Germany?"))
        await call.wait_for("input_audio_buffer.committed", after=before, timeout=30)
        second = await call.wait_for("response.created", after=before, timeout=90)
        await call.wait_until(
            lambda: any(d["response"]["id"] == second["response"]["id"] for d in call.of_type("response.done")), 60
        )
        done = {d["response"]["id"]: d["response"] for d in call.of_type("response.done")}
        types = [e["type"] for e in call.events]
    finally:
        await call.close()
    assert "conversation.item.truncated" not in types and "output_audio_buffer.cleared" not in types
    first_done = done[first["response"]["id"]]
    assert first_done["status"] == "completed", first_done["status_details"]
    first_stopped = next(
        i
        for i, e in enumerate(call.events)
        if e["type"] == "output_audio_buffer.stopped" and e["response_id"] == first["response"]["id"]
    )
    assert first_stopped < call.events.index(second), "the answer waited until the reply was heard out"
    reply = done[second["response"]["id"]]["output"][0]["content"][0]["transcript"]
    assert "Berlin" in reply, reply
