"""Client events of the OpenAI Realtime API: accepted as typed events, refused with clear errors."""

import base64
import json

import pytest

from services.edge import events
from services.edge.protocol import (
    CLIENT_EVENT_TYPES,
    MAX_APPEND_SECONDS,
    ConversationItemCreate,
    InputAudioBufferAppend,
    ProtocolError,
    ResponseCreate,
    SessionUpdate,
    parse_client_event,
)


def parse(event: dict) -> object:
    return parse_client_event(json.dumps(event))


def refused(event: dict | str) -> dict:
    with pytest.raises(ProtocolError) as error:
        parse_client_event(event if isinstance(event, str) else json.dumps(event))
    return events.to_wire(error.value.to_event())["error"]


def test_session_update_with_every_documented_field_and_parley_settings() -> None:
    event = parse(
        {
            "type": "session.update",
            "event_id": "c1",
            "session": {
                "type": "realtime",
                "instructions": "Be brief.",
                "output_modalities": ["audio"],
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": "whisper-1"},
                        "turn_detection": {"type": "server_vad", "threshold": 0.6, "silence_duration_ms": 400},
                    },
                    "output": {"voice": "en_US-joe-medium", "speed": 1.1},
                },
                "parley": {"mode": "full_duplex", "video_frames_per_second": 1},
            },
        }
    )
    assert isinstance(event, SessionUpdate)
    assert event.session.parley is not None and event.session.parley.mode == "full_duplex"
    assert event.session.audio.input.turn_detection.silence_duration_ms == 400  # type: ignore[union-attr]


def test_turn_detection_null_means_the_client_commits_turns() -> None:
    event = parse({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}})
    assert isinstance(event, SessionUpdate)
    assert event.session.audio.input.turn_detection is None  # type: ignore[union-attr]


def test_audio_append_is_decoded_to_pcm16() -> None:
    pcm = b"\x01\x00\xff\x7f" * 240
    event = parse({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})
    assert isinstance(event, InputAudioBufferAppend)
    assert event.audio == pcm


def test_user_text_and_image_items() -> None:
    event = parse(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/4AAQ"},
                ],
            },
        }
    )
    assert isinstance(event, ConversationItemCreate)
    assert [part.type for part in event.item.content] == ["input_text", "input_image"]


def test_every_accepted_type_is_listed() -> None:
    assert "response.create" in CLIENT_EVENT_TYPES and "conversation.item.truncate" in CLIENT_EVENT_TYPES
    assert isinstance(parse({"type": "response.create"}), ResponseCreate)


@pytest.mark.parametrize(
    ("event", "code", "words"),
    [
        ("{not json", "invalid_json", "not valid JSON"),
        ({"type": "session.destroy", "event_id": "e9"}, "unknown_event_type", "unknown event type 'session.destroy'"),
        ({"no_type": True}, "unknown_event_type", "Parley accepts"),
        ({"type": "response.create", "bogus": 1}, "unknown_parameter", "unknown field 'bogus'"),
        ({"type": "session.update", "session": {"voice": "alloy"}}, "unknown_parameter", "session.voice"),
        ({"type": "input_audio_buffer.append", "audio": "not base64!"}, "invalid_value", "not valid base64"),
        ({"type": "input_audio_buffer.append", "audio": "AAAA"}, "invalid_value", "even number of bytes"),
        ({"type": "input_audio_buffer.append", "audio": 5}, "invalid_value", "base64 string"),
        (
            {
                "type": "session.update",
                "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
            },
            "invalid_value",
            "session.audio.input.format.rate",
        ),
        (
            {"type": "conversation.item.truncate", "item_id": "i1", "content_index": 0, "audio_end_ms": -5},
            "invalid_value",
            "audio_end_ms",
        ),
        ({"type": "conversation.item.create", "item": {"role": "user", "content": []}}, "invalid_value", "content"),
    ],
)
def test_bad_events_get_openai_style_errors(event: dict | str, code: str, words: str) -> None:
    error = refused(event)
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    assert words in error["message"]


def test_the_error_names_the_client_event() -> None:
    assert refused({"type": "nope", "event_id": "client-7"})["event_id"] == "client-7"


def test_too_much_audio_in_one_append_is_refused() -> None:
    pcm = b"\0\0" * (24000 * (MAX_APPEND_SECONDS + 1))
    error = refused({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})
    assert f"longer than {MAX_APPEND_SECONDS} s" in error["message"]


def test_oversized_events_are_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError) as error:
        parse_client_event("x" * 100, max_bytes=50)
    assert error.value.code == "event_too_large"
