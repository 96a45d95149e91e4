"""Server events are the official SDK's types, and every documented client field is accepted.

The checks of the events a real session sends are in tests/support/conformance.py (every test
client runs them on every event it receives) and tests/integration/test_realtime_conformance.py.
"""

from __future__ import annotations

import json
import typing
from typing import Any

import pydantic
import pytest
from openai.types import realtime as rt

from services.edge import events, protocol
from services.edge.config import OPENAI_VOICES, SessionState
from services.edge.settings import EdgeSettings
from tests.support.conformance import NonConformingEvent, check_server_event


def test_an_event_with_a_wrong_value_cannot_be_made() -> None:
    with pytest.raises(pydantic.ValidationError):
        events.make(events.OutputAudioBufferCleared, response_id=None)
    with pytest.raises(pydantic.ValidationError):
        events.assistant_item("item_1", audio=True, text="Hi.", status="done")  # type: ignore[arg-type]


def test_the_conformance_check_refuses_what_the_api_does_not_define() -> None:
    item = {"id": "item_1", "object": "realtime.item", "type": "message", "status": "completed", "role": "assistant"}
    old_style = {
        "type": "conversation.item.done",
        "event_id": "event_1",
        "item": {**item, "content": [{"type": "audio"}]},
    }
    with pytest.raises(NonConformingEvent, match=r"conversation\.item\.done"):
        check_server_event(json.dumps(old_style))
    with pytest.raises(NonConformingEvent, match="no Realtime API type"):
        check_server_event(json.dumps({"type": "parley.unknown", "event_id": "event_2"}))
    with pytest.raises(NonConformingEvent, match=r"output_audio_buffer\.cleared"):
        check_server_event(json.dumps({"type": "output_audio_buffer.cleared", "event_id": "e", "response_id": None}))
    new_style = {**old_style, "item": {**item, "content": [{"type": "output_audio", "transcript": "Hi."}]}}
    assert check_server_event(json.dumps(new_style))["item"]["content"][0]["type"] == "output_audio"


def test_the_session_object_conforms_and_keeps_parleys_fields() -> None:
    state = SessionState("sess_1", EdgeSettings())
    event = events.to_wire(events.make(rt.SessionCreatedEvent, session=state.to_event_object()))
    check_server_event(json.dumps(event))
    assert event["session"]["id"] == "sess_1" and event["session"]["parley"]["mode"] == "half_duplex"


def _fields(model: type[pydantic.BaseModel], prefix: str = "") -> set[str]:
    """The documented fields of an SDK model, nested objects included ("audio.input.format")."""
    names = set()
    for name, field in model.model_fields.items():
        names.add(prefix + name)
        for member in _members(field.annotation):
            if isinstance(member, type) and issubclass(member, pydantic.BaseModel) and member is not model:
                names |= _fields(member, f"{prefix}{name}.")
    return names


def _members(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    if not args:
        return [annotation]
    return [m for arg in args for m in _members(arg)]


# Objects whose inside Parley validates with the SDK's own types (they are not Parley's to define),
# and the turn detection types, which Parley takes as one object.
_OPAQUE = ("tools.", "tool_choice.", "tracing.", "truncation.", "prompt.", "reasoning.", "audio.input.noise_reduction.")


@pytest.mark.parametrize(
    ("sdk_model", "parley_model"),
    [
        (rt.RealtimeSessionCreateRequest, protocol.SessionConfig),
        (rt.RealtimeResponseCreateParams, protocol.ResponseParams),
    ],
)
def test_every_documented_field_is_accepted(
    sdk_model: type[pydantic.BaseModel], parley_model: type[pydantic.BaseModel]
) -> None:
    documented = {name for name in _fields(sdk_model) if not name.startswith(_OPAQUE) and ".input." not in name[:7]}
    documented = {name for name in documented if not name.startswith("input.")}  # items: ConversationItem
    accepted = _fields(parley_model)
    missing = sorted(
        name for name in documented if name not in accepted and not name.startswith("audio.input.turn_detection.")
    )
    assert not missing, f"documented but refused: {missing}"
    detection = {n.rsplit(".", 1)[1] for n in _fields(sdk_model) if n.startswith("audio.input.turn_detection.")}
    assert detection <= set(protocol.TurnDetection.model_fields), detection - set(protocol.TurnDetection.model_fields)


def test_a_session_update_as_the_frameworks_send_it_is_accepted() -> None:
    session = {
        "type": "realtime",
        "model": "gpt-realtime",
        "instructions": "Be brief.",
        "output_modalities": ["audio"],
        "tools": [],
        "tool_choice": "auto",
        "tracing": "auto",
        "truncation": {"type": "retention_ratio", "retention_ratio": 0.8},
        "include": ["item.input_audio_transcription.logprobs"],
        "prompt": {"id": "pmpt_1", "variables": {"city": "Paris"}},
        "max_output_tokens": "inf",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "noise_reduction": {"type": "near_field"},
                "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en", "prompt": "Paris"},
                "turn_detection": {"type": "semantic_vad", "eagerness": "auto", "interrupt_response": True},
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1.0},
        },
    }
    event = protocol.parse_client_event(json.dumps({"type": "session.update", "session": session}))
    assert isinstance(event, protocol.SessionUpdate)
    state = SessionState("sess_1", EdgeSettings())
    state.update(event.session.model_dump(exclude_unset=True))
    reported = events.to_wire(events.make(rt.SessionUpdatedEvent, session=state.to_event_object()))
    check_server_event(json.dumps(reported))
    assert reported["session"]["tracing"] is None, "Parley keeps no traces: the value in force is reported"
    assert reported["session"]["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"


def test_bad_values_of_documented_fields_are_still_refused() -> None:
    for session, param in [
        ({"tracing": "everything"}, "tracing"),
        ({"tool_choice": "not a function name!"}, "tool_choice"),
        ({"tools": [{"type": "function", "name": "has space"}]}, "tools"),
        ({"audio": {"input": {"format": {"type": "audio/pcmu"}}}}, "audio.input.format"),
    ]:
        with pytest.raises(protocol.ProtocolError) as refused:
            protocol.parse_client_event(json.dumps({"type": "session.update", "session": session}))
        assert refused.value.param is not None and refused.value.param.startswith(f"session.{param}"), (
            refused.value.message
        )


def test_openai_voice_names_are_known() -> None:
    assert {"alloy", "marin", "cedar"} <= OPENAI_VOICES
