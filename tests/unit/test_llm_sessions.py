"""SessionStore: isolation, capacity, reset, idle expiry (with a fake clock)."""

import pytest

from services.llm.sessions import Message, SessionCapacityError, SessionStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(max_sessions: int = 2, clock: FakeClock | None = None) -> SessionStore:
    return SessionStore(
        max_sessions, 60, new_engine_state=dict, default_system_prompt="Be brief.", clock=clock or FakeClock()
    )


def test_sessions_do_not_share_history_or_engine_state() -> None:
    sessions = store()
    a, b = sessions.open("a"), sessions.open("b")
    a.history += [Message("user", "My name is Ada.", "1"), Message("assistant", "Hello Ada.", "1")]
    a.engine_state["cache"] = "a's cache"
    assert b.history == [] and b.engine_state == {}
    assert [m["content"] for m in b.messages("Who am I?")] == ["Be brief.", "Who am I?"]
    assert sessions.open("a") is a


def test_messages_render_history_in_order() -> None:
    session = store().open("s")
    session.history += [
        Message("user", "one", "1", ("item_1",)),
        Message("assistant", "reply one", "1", ("item_2",)),
        Message("user", "two", "2", ("item_3",)),
        Message("system", "Speak French from now on.", "", ("item_4",)),
    ]
    assert [(m["role"], m["content"]) for m in session.messages("three")] == [
        ("system", "Be brief."),
        ("user", "one"),
        ("assistant", "reply one"),
        ("user", "two"),
        ("system", "Speak French from now on."),
        ("user", "three"),
    ]
    assert session.turns == 2 and session.reply_of("1") is session.history[1] and session.reply_of("2") is None
    assert session.messages("q", system_prompt="Once.", history=False) == [
        {"role": "system", "content": "Once."},
        {"role": "user", "content": "q"},
    ]


def test_messages_are_deleted_by_item_id_and_turns_dropped_whole() -> None:
    session = store().open("s")
    session.history += [
        Message("user", "one", "1", ("item_1", "item_1b")),
        Message("assistant", "reply one", "1", ("item_2",)),
        Message("user", "two", "2", ("item_3",)),
        Message("assistant", "reply two", "2", ("item_4",)),
    ]
    assert session.delete("item_1b") and not session.delete("item_1b")
    assert [m.text for m in session.history] == ["reply one", "two", "reply two"]
    session.drop_turn("2")
    assert [m.text for m in session.history] == ["reply one"]


def test_capacity_is_enforced_with_a_clear_message() -> None:
    sessions = store(max_sessions=2)
    sessions.open("a")
    sessions.open("b")
    with pytest.raises(SessionCapacityError, match="maximum of 2 sessions"):
        sessions.open("c")
    assert sessions.end("a")
    sessions.open("c")
    assert not sessions.end("nope")


def test_reset_clears_history_and_cache_but_keeps_the_session() -> None:
    sessions = store()
    session = sessions.open("s")
    session.history.append(Message("user", "hi", "1"))
    session.engine_state["cache"] = "full"
    session.system_prompt = "Custom."
    assert sessions.reset("s")
    assert session.history == [] and session.engine_state == {} and session.system_prompt == "Be brief."
    assert sessions.get("s") is session


async def test_idle_sessions_expire_but_not_during_a_turn() -> None:
    clock = FakeClock()
    sessions = store(max_sessions=3, clock=clock)
    idle, busy, fresh = sessions.open("idle"), sessions.open("busy"), None
    await busy.lock.acquire()
    clock.now += 61
    fresh = sessions.open("fresh")
    assert sessions.expire_idle() == ["idle"]
    assert sessions.get("busy") is busy and sessions.get("fresh") is fresh and sessions.get("idle") is None
    assert idle is not None


def test_a_full_store_frees_idle_sessions_before_refusing() -> None:
    clock = FakeClock()
    sessions = store(max_sessions=1, clock=clock)
    sessions.open("old")
    clock.now += 61
    sessions.open("new")
    assert sessions.get("old") is None
