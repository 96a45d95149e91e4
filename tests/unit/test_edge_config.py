"""Session config: session.update merges, modes choose their turn detection, bad values are refused."""

import pytest

from services.edge import events
from services.edge.config import SessionState
from services.edge.protocol import ProtocolError
from services.edge.settings import EdgeSettings


def _state(default_mode: str = "half_duplex") -> SessionState:
    return SessionState("sess_test", EdgeSettings(default_mode=default_mode, voice="joe"))  # type: ignore[arg-type]


def test_defaults_follow_the_server_mode() -> None:
    half = events.to_wire(_state().to_event_object())
    assert half["parley"]["mode"] == "half_duplex"
    assert half["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert half["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
    assert half["audio"]["output"]["voice"] == "joe"
    assert half["output_modalities"] == ["audio"]
    chat = events.to_wire(_state("chat").to_event_object())
    assert chat["audio"]["input"]["turn_detection"] is None


def test_switching_modes_switches_turn_detection_unless_given() -> None:
    state = _state()
    state.update({"parley": {"mode": "chat"}})
    assert state.turn_detection is None
    state.update({"parley": {"mode": "half_duplex"}})
    assert state.turn_detection is not None and state.turn_detection.threshold == 0.5
    state.update({"parley": {"mode": "chat"}, "audio": {"input": {"turn_detection": {"type": "server_vad"}}}})
    assert state.mode == "chat" and state.turn_detection is not None, "an explicit turn_detection wins"


def test_updates_merge_into_what_is_there() -> None:
    state = _state()
    state.update({"audio": {"input": {"turn_detection": {"threshold": 0.7}}}})
    state.update({"audio": {"input": {"turn_detection": {"silence_duration_ms": 800}}}, "instructions": "Be brief."})
    detection = state.turn_detection
    assert detection is not None and detection.threshold == 0.7 and detection.silence_duration_ms == 800
    assert state.config.instructions == "Be brief."
    state.update({"audio": {"input": {"turn_detection": None}}})
    assert state.turn_detection is None, "an explicit null turns server VAD off"


def test_bad_updates_are_refused_and_change_nothing() -> None:
    state = _state()
    before = state.to_event_object()
    with pytest.raises(ProtocolError, match="not available") as refused:
        state.update({"parley": {"mode": "simplex"}})
    assert refused.value.code == "mode_not_available"
    with pytest.raises(ProtocolError):
        state.update({"audio": {"input": {"turn_detection": {"threshold": 3}}}})
    assert state.to_event_object() == before
