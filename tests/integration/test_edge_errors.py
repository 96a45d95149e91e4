"""Bad input reaches the client as an OpenAI-style error (event or JSON body); the session, the
edge and other sessions keep working."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json

import aiohttp
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from PIL import Image

from tests.support.counts import edge_metric, edge_sessions, wait_for_edge_metric, wait_for_edge_sessions
from tests.support.processes import ServiceProcess, start_edge
from tests.support.realtime_ws import RealtimeSocket, UnreadSocket, realtime_socket
from tests.support.webrtc_client import RealtimeCall

TEXT_QUESTION = {
    "type": "conversation.item.create",
    "item": {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "What is the capital of France?"}],
    },
}


async def _post_offer(
    edge: ServiceProcess, body: bytes | str, content_type: str = "application/sdp"
) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{edge.url}v1/realtime/calls", data=body, headers={"Content-Type": content_type}) as response,
    ):
        return response.status, await response.json()


async def _text_turn_works(socket: RealtimeSocket) -> None:
    await socket.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    await socket.send(TEXT_QUESTION)
    await socket.send({"type": "response.create"})
    done = await socket.next_event("response.done", timeout=60)
    assert done["response"]["status"] == "completed"
    assert "Paris" in done["response"]["output"][0]["content"][0]["text"]


async def test_malformed_sdp_is_refused_with_json(edge_service: ServiceProcess) -> None:
    status, body = await _post_offer(edge_service, "this is not SDP")
    assert status == 400
    assert body["error"]["code"] == "invalid_sdp"
    assert body["error"]["message"]


async def test_sdp_without_audio_is_refused(edge_service: ServiceProcess) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("oai-events")
    await pc.setLocalDescription(await pc.createOffer())
    try:
        status, body = await _post_offer(edge_service, pc.localDescription.sdp)
    finally:
        await pc.close()
    assert status == 400
    assert body["error"]["code"] == "invalid_sdp"
    assert "no audio" in body["error"]["message"]


async def test_oversized_offer_and_wrong_content_type_are_refused(edge_service: ServiceProcess) -> None:
    status, body = await _post_offer(edge_service, b"v=0\r\n" + b"a=x\r\n" * 100_000)
    assert status == 413
    assert body["error"]["code"] == "request_too_large"
    status, body = await _post_offer(edge_service, "v=0", content_type="text/plain")
    assert status == 400
    assert body["error"]["code"] == "unsupported_content_type"


async def test_unknown_api_paths_get_json_404(edge_service: ServiceProcess) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{edge_service.url}v1/nothing-here") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("raw", "code", "message_part"),
    [
        ('{"type": "conversation.fly_to_the_moon"}', "unknown_event_type", "conversation.fly_to_the_moon"),
        ('{"type": "response.create",', "invalid_json", "not valid JSON"),
        ('{"type": "input_audio_buffer.append", "audio": "%%% not base64 %%%"}', "invalid_value", "base64"),
        ('{"type": "session.update", "session": {"parley": {"mode": "simplex"}}}', "invalid_value", "mode"),
        ('{"type": "session.update", "session": {"voice_of_god": true}}', "unknown_parameter", "voice_of_god"),
        ('{"type": "response.cancel"}', "response_cancel_not_active", "no active response"),
        ('{"type": "response.create", "response": {"conversation": "elsewhere"}}', "invalid_value", "conversation"),
        ('{"type": "input_audio_buffer.commit"}', "input_audio_buffer_commit_empty", "100 ms"),
        # Values a turn would refuse are refused where they are set (they used to pass, then fail
        # every turn, or leave a response open for ever).
        ('{"type": "session.update", "session": {"max_output_tokens": -1}}', "invalid_value", "max_output_tokens"),
        ('{"type": "session.update", "session": {"max_output_tokens": 0}}', "invalid_value", "max_output_tokens"),
        ('{"type": "session.update", "session": {"max_output_tokens": 5000}}', "invalid_value", "4096"),
        ('{"type": "session.update", "session": {"max_output_tokens": 3000}}', "invalid_value", "at most 2048"),
        ('{"type": "response.create", "response": {"max_output_tokens": 1099511627776}}', "invalid_value", "4096"),
        ('{"type": "session.update", "session": {"audio": {"output": {"speed": 0.3}}}}', "invalid_value", "speed"),
        # The bundled recogniser knows English only (the replica says so in GetLoad).
        (
            '{"type": "session.update", "session": {"audio": {"input": {"transcription": {"language": "fr"}}}}}',
            "invalid_value",
            "does not transcribe 'fr'; it knows en",
        ),
        (
            '{"type": "session.update", "session": {"audio": {"input": {"transcription": '
            '{"languages": ["en", "de"]}}}}}',
            "invalid_value",
            "'de'",
        ),
    ],
)
async def test_bad_events_get_error_events_and_the_session_goes_on(
    edge_service: ServiceProcess, raw: str, code: str, message_part: str
) -> None:
    async with realtime_socket(edge_service.url) as socket:
        await socket.next_event("session.created")
        await socket.send({"type": "session.update", "session": {"type": "realtime", "parley": {"mode": "chat"}}})
        await socket.next_event("session.updated")
        await socket.send_raw(raw)
        error = (await socket.next_event("error"))["error"]
        assert error["code"] == code
        assert message_part in error["message"]
        await _text_turn_works(socket)


async def test_every_speed_the_tts_can_do_is_accepted_and_spoken(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as socket:
        await socket.next_event("session.created")
        session = {"type": "realtime", "parley": {"mode": "chat"}, "audio": {"output": {"speed": 1.8}}}
        await socket.send({"type": "session.update", "session": session})
        assert (await socket.next_event("session.updated"))["session"]["audio"]["output"]["speed"] == 1.8
        await socket.send(TEXT_QUESTION)
        await socket.send({"type": "response.create", "response": {"max_output_tokens": 2048}})
        done = await socket.next_event("response.done", timeout=60)
    assert done["response"]["status"] == "completed", done["response"]
    assert socket.of_type("response.output_audio.delta"), "the reply was spoken"
    assert not socket.of_type("error")


async def test_the_recognisers_language_is_accepted_and_reported(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as socket:
        created = await socket.next_event("session.created")
        session = {
            "type": "realtime",
            "parley": {"mode": "chat"},
            "audio": {"input": {"transcription": {"language": "en"}}},
        }
        await socket.send({"type": "session.update", "session": session})
        updated = await socket.next_event("session.updated")
        await _text_turn_works(socket)
    assert created["session"]["audio"]["input"]["transcription"]["language"] == "en"  # the recogniser's default
    assert updated["session"]["audio"]["input"]["transcription"]["language"] == "en"
    assert not socket.of_type("error")


def _user_item(*content: dict) -> dict:
    return {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": list(content)}}


async def test_input_piled_up_before_a_response_is_capped_per_session(edge_service: ServiceProcess) -> None:
    """What one LLM turn can take (its replica's limits: 16000 characters, 8 images) is all a
    session may hold for its next response; beyond it, an error, and the session goes on."""
    picture = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(picture, format="PNG")
    image = {
        "type": "input_image",
        "image_url": "data:image/png;base64," + base64.b64encode(picture.getvalue()).decode(),
    }
    async with realtime_socket(edge_service.url) as socket:
        await socket.next_event("session.created")
        await socket.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        await socket.send(_user_item({"type": "input_text", "text": "x" * 9000}))
        await socket.send({**_user_item({"type": "input_text", "text": "y" * 9000}), "event_id": "evt_text"})
        error = (await socket.next_event("error"))["error"]
        assert (error["code"], error["event_id"]) == ("pending_input_limit", "evt_text"), error
        assert "16000 characters" in error["message"]
        for _ in range(8):
            await socket.send(_user_item(image))
        await socket.send(_user_item(image))
        error = (await socket.next_event("error", timeout=30))["error"]
        assert error["code"] == "pending_input_limit" and "8 images" in error["message"], error
        assert len(socket.of_type("conversation.item.added")) == 9, "the items within the limits were kept"
        await socket.send({"type": "response.create"})
        done = await socket.next_event("response.done", timeout=60)
        assert done["response"]["status"] == "completed"
        await _text_turn_works(socket)  # answered input no longer counts


async def test_too_much_audio_in_one_append_is_refused(edge_service: ServiceProcess) -> None:
    eleven_seconds = base64.b64encode(np.zeros(24000 * 11, dtype="<i2").tobytes()).decode()
    async with realtime_socket(edge_service.url) as socket:
        await socket.next_event("session.created")
        await socket.send({"type": "input_audio_buffer.append", "audio": eleven_seconds, "event_id": "evt_big"})
        error = (await socket.next_event("error"))["error"]
        assert error["event_id"] == "evt_big"
        assert "longer than 10 s" in error["message"]
        await _text_turn_works(socket)


async def test_oversized_event_and_bad_image_are_refused(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as socket:
        await socket.next_event("session.created")
        await socket.send_raw(json.dumps({"type": "session.update", "session": {"instructions": "x" * 5_000_000}}))
        assert (await socket.next_event("error"))["error"]["code"] == "event_too_large"
        bad_image = {
            "type": "input_image",
            "image_url": "data:image/jpeg;base64," + base64.b64encode(b"not a jpeg").decode(),
        }
        await socket.send(
            {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [bad_image]}}
        )
        error = (await socket.next_event("error"))["error"]
        assert error["code"] == "invalid_value" and "not a readable image" in error["message"]
        await _text_turn_works(socket)


async def test_a_misbehaving_session_does_not_disturb_another(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as good, realtime_socket(edge_service.url) as bad:
        await good.next_event("session.created")
        await bad.next_event("session.created")

        async def misbehave() -> None:
            for index in range(50):
                await bad.send_raw(json.dumps({"type": "nonsense", "n": index}))
            for _ in range(50):
                await bad.next_event("error")

        await asyncio.gather(misbehave(), _text_turn_works(good))
        assert len(bad.of_type("error")) == 50


@pytest.fixture(scope="module")
def small_edge(vad_service: ServiceProcess, scripted_llm: ServiceProcess, tts_service: ServiceProcess):
    """An edge where one session talks and one waits, that closes idle ones after 3 s and wants a token."""
    service = start_edge(
        vad_service,
        scripted_llm,
        tts_service,
        "--max-sessions=1",
        "--queue-max-length=1",
        "--idle-timeout-seconds=3",
        "--api-token=s3cret",
    )
    yield service
    assert service.stop() == 0


async def test_the_api_token_is_required_when_set(small_edge: ServiceProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{small_edge.url}v1/realtime/calls", data="v=0", headers={"Content-Type": "application/sdp"}
        ) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "invalid_api_key"
        async with http.get(f"{small_edge.url}v1/realtime", headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 401
    async with realtime_socket(small_edge.url, Authorization="Bearer s3cret") as socket:
        assert (await socket.next_event("session.created"))["session"]["id"].startswith("sess_")
    assert not any("s3cret" in json.dumps(record) for record in small_edge.logs), "the token must never be logged"


async def test_a_full_server_says_so_and_an_idle_session_is_closed(small_edge: ServiceProcess) -> None:
    auth = {"Authorization": "Bearer s3cret"}
    await wait_for_edge_sessions(small_edge, 0)  # the previous test's session is released after its close
    async with (
        realtime_socket(small_edge.url, **auth) as first,
        realtime_socket(small_edge.url, **auth) as waiting,
    ):
        await first.next_event("session.created")
        assert (await waiting.next_event("parley.queue.updated"))["position"] == 1
        async with realtime_socket(small_edge.url, **auth) as third:  # beyond the queue's own length
            error = (await third.next_event("error"))["error"]
            assert error["code"] == "server_full" and "1 waiting" in error["message"], error
            with pytest.raises(ConnectionError, match="CLOSE"):
                await third.next_event("session.created")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        try:
            async with aiohttp.ClientSession() as http:
                headers = {"Content-Type": "application/sdp", **auth}
                url = f"{small_edge.url}v1/realtime/calls"
                async with http.post(url, data=pc.localDescription.sdp, headers=headers) as response:
                    assert response.status == 503
                    assert response.headers["Retry-After"]
                    assert (await response.json())["error"]["code"] == "server_full"
        finally:
            await pc.close()
        # The first session only streams silence (not activity): after the idle timeout it is
        # told and closed.
        silence = asyncio.create_task(first.append_audio(np.zeros(24000 * 20, np.float32), real_time=True))
        idle = (await first.next_event("error", timeout=30))["error"]
        silence.cancel()
        assert idle["code"] == "session_idle_timeout"
        with pytest.raises(ConnectionError):
            await first.next_event("session.created", timeout=10)
        # The slot goes to the one waiting.
        assert (await waiting.next_event("parley.queue.admitted", timeout=15))["waited_seconds"] > 0


async def test_a_call_whose_connection_never_comes_up_gives_its_slot_back(edge_service: ServiceProcess) -> None:
    """An offer without ICE candidates (or with unreachable ones) used to hold its slot for the
    idle timeout (180 s); it is ended --ice-connect-seconds (10) after its answer."""
    await wait_for_edge_sessions(edge_service, 0)
    never = await edge_metric(edge_service, "parley_edge_calls_never_connected_total")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio")
    pc.createDataChannel("oai-events")
    await pc.setLocalDescription(await pc.createOffer())
    offer = "\r\n".join(line for line in pc.localDescription.sdp.splitlines() if not line.startswith("a=candidate"))
    await pc.close()  # nothing will ever answer the edge's connectivity checks
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{edge_service.url}v1/realtime/calls", data=offer + "\r\n", headers={"Content-Type": "application/sdp"}
        ) as response,
    ):
        assert response.status == 201, await response.text()
    assert await edge_sessions(edge_service) == 1
    await wait_for_edge_sessions(edge_service, 0, seconds=30)
    assert await edge_metric(edge_service, "parley_edge_calls_never_connected_total") == never + 1


async def test_an_event_far_over_the_limit_gets_an_error_and_the_session_goes_on(edge_service: ServiceProcess) -> None:
    """20 MB (five times the limit) used to close the socket with 1009 and no word of why."""
    async with realtime_socket(edge_service.url) as socket:
        await socket.next_event("session.created")
        await socket.send_raw(json.dumps({"type": "session.update", "session": {"instructions": "x" * 20_000_000}}))
        error = (await socket.next_event("error", timeout=60))["error"]
        assert error["code"] == "event_too_large", error
        await _text_turn_works(socket)


async def test_an_offer_in_typed_multipart_parts_is_read(edge_service: ServiceProcess) -> None:
    """As curl -F "sdp=<offer.sdp;type=application/sdp" -F "session=<s.json;type=application/json"
    sends it: the parts come as files."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio")
    pc.createDataChannel("oai-events")
    await pc.setLocalDescription(await pc.createOffer())
    form = aiohttp.FormData()
    form.add_field("sdp", pc.localDescription.sdp.encode(), content_type="application/sdp", filename="offer.sdp")
    session = json.dumps({"type": "realtime", "parley": {"mode": "chat"}})
    form.add_field("session", session.encode(), content_type="application/json", filename="session.json")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{edge_service.url}v1/realtime/calls", data=form) as response:
                assert response.status == 201, await response.text()
                call = response.headers["Location"]
            async with http.post(f"{edge_service.url}{call.lstrip('/')}/hangup") as hangup:
                assert hangup.status == 200
            # A typed session part is read, not skipped: a bad one is refused.
            bad = aiohttp.FormData()
            bad.add_field("sdp", pc.localDescription.sdp)
            bad.add_field(
                "session", b'{"parley": {"mode": "simplex"}}', content_type="application/json", filename="s.json"
            )
            async with http.post(f"{edge_service.url}v1/realtime/calls", data=bad) as response:
                assert response.status == 400
                assert "mode" in (await response.json())["error"]["message"]
    finally:
        await pc.close()


async def test_a_client_that_stops_reading_is_ended_and_others_go_on(edge_service: ServiceProcess) -> None:
    """Its replies would cost the models as much as anyone's, for nobody: once ~2 MB of events
    wait for it, its session ends (it used to go on until the heartbeat, slowing every turn)."""
    before = await edge_metric(edge_service, "parley_edge_slow_clients_total")
    sessions = await edge_sessions(edge_service)
    slow = await UnreadSocket.connect(edge_service.url)
    try:
        await wait_for_edge_sessions(edge_service, sessions + 1)
        async with realtime_socket(edge_service.url) as good:
            await good.next_event("session.created")
            for _ in range(12):  # long spoken replies, about 1.6 MB of events each
                await slow.send(_user_item({"type": "input_text", "text": "Tell me about the history of Paris."}))
                await slow.send({"type": "response.create"})
                with contextlib.suppress(TimeoutError):
                    await wait_for_edge_metric(edge_service, "parley_edge_slow_clients_total", before + 1, seconds=10)
                    break
            assert await edge_metric(edge_service, "parley_edge_slow_clients_total") == before + 1
            await _text_turn_works(good)
    finally:
        slow.close()
    await wait_for_edge_sessions(edge_service, sessions)


@pytest.fixture
def throttled_edge(vad_service: ServiceProcess, scripted_llm: ServiceProcess, tts_service: ServiceProcess):
    edge = start_edge(
        vad_service, scripted_llm, tts_service, "--max-client-bytes-per-second=65536", "--max-event-bytes=65536"
    )
    yield edge
    assert edge.stop() == 0, f"edge exited badly; log: {edge.logs[-10:]}"


async def test_a_client_sending_beyond_its_rate_is_held_back_not_refused(throttled_edge: ServiceProcess) -> None:
    """Six 1 s appends at once (384 KB) against 64 KB/s and a 128 KB burst: every one is read
    and none refused, but the client is held back ~4 s (the edge read no further meanwhile),
    and its next text turn is answered."""
    audio = base64.b64encode(np.zeros(24000, "<i2").tobytes()).decode()
    async with realtime_socket(throttled_edge.url) as socket:
        await socket.next_event("session.created")
        held_back = await edge_metric(throttled_edge, "parley_edge_client_throttled_seconds_total")
        for _ in range(6):
            await socket.send({"type": "input_audio_buffer.append", "audio": audio})
        await socket.send({"type": "input_audio_buffer.clear"})
        await socket.next_event("input_audio_buffer.cleared", timeout=30)
        assert not socket.of_type("error"), socket.of_type("error")
        assert await edge_metric(throttled_edge, "parley_edge_client_throttled_seconds_total") >= held_back + 1
        await _text_turn_works(socket)


async def test_a_call_sending_beyond_its_rate_on_the_data_channel_gets_errors_and_goes_on(
    throttled_edge: ServiceProcess,
) -> None:
    """A data channel cannot be held back, so what waits is bounded: eight 40 KB appends at once
    against 64 KB/s and a 128 KB burst, and those beyond a burst waiting are refused with
    ``rate_limit_exceeded``; the rest are handled in order and the call's next turn is answered."""
    audio = base64.b64encode(np.zeros(15000, "<i2").tobytes()).decode()  # 40 KB of JSON each
    call = RealtimeCall(throttled_edge.url)
    try:
        await call.connect({"type": "realtime", "parley": {"mode": "chat"}, "output_modalities": ["text"]})
        await call.wait_for("session.created")
        for _ in range(8):
            call.send({"type": "input_audio_buffer.append", "audio": audio})
        call.send({"type": "input_audio_buffer.clear"})
        await call.wait_for("input_audio_buffer.cleared", timeout=30)
        refused = [e for e in call.of_type("error") if e["error"]["code"] == "rate_limit_exceeded"]
        assert 1 <= len(refused) <= 6, call.of_type("error")
        assert await edge_metric(throttled_edge, "parley_edge_client_refused_events_total") >= len(refused)
        count = len(call.events)
        call.send(TEXT_QUESTION)
        call.send({"type": "response.create"})
        done = await call.wait_for("response.done", after=count, timeout=60)
    finally:
        await call.close()
    assert done["response"]["status"] == "completed"
    assert "Paris" in done["response"]["output"][0]["content"][0]["text"]
