"""Conversation items over the real stack: history seeding with user, assistant and system
messages, delete, per-response instructions and out-of-band responses, checked in what the LLM
service's history holds (the scripted model, asked to "repeat the conversation", says what it
was given: "role: text / ...")."""

from __future__ import annotations

from typing import Any

from tests.support.processes import ServiceProcess
from tests.support.realtime_ws import RealtimeSocket, realtime_socket

SYSTEM_PROMPT = "Answer in one short sentence."


def _message(role: str, text: str, item_id: str | None = None) -> dict[str, Any]:
    part = {"type": "output_text" if role == "assistant" else "input_text", "text": text}
    item: dict[str, Any] = {"type": "message", "role": role, "content": [part]}
    if item_id is not None:
        item["id"] = item_id
    return item


async def _text_session(socket: RealtimeSocket) -> None:
    await socket.next_event("session.created")
    await socket.send(
        {
            "type": "session.update",
            "session": {"instructions": SYSTEM_PROMPT, "output_modalities": ["text"], "parley": {"mode": "chat"}},
        }
    )
    await socket.next_event("session.updated")


async def _ask(socket: RealtimeSocket, text: str, **response: Any) -> dict[str, Any]:
    """Add a user message (if there is text), ask for a response; its response.done."""
    if text:
        await socket.send({"type": "conversation.item.create", "item": _message("user", text)})
    await socket.send({"type": "response.create", "response": response})
    done = await socket.next_event("response.done", "error", timeout=30)
    assert done["type"] == "response.done" and done["response"]["status"] == "completed", done
    return done


def _said(done: dict[str, Any]) -> str:
    return done["response"]["output"][0]["content"][0]["text"]


async def test_seeded_history_is_what_the_model_is_given_in_order(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as socket:
        await _text_session(socket)
        for item in (
            _message("user", "My name is Ada.", "item_ada"),
            _message("assistant", "Hello Ada.", "item_hello"),
            _message("system", "The user likes short answers.", "item_rule"),
        ):
            await socket.send({"type": "conversation.item.create", "item": item})
            added = await socket.next_event("conversation.item.added", "error")
            assert added["type"] == "conversation.item.added" and added["item"]["id"] == item["id"], added
        said = _said(await _ask(socket, "Repeat the conversation."))
        assert said == (
            f"system: {SYSTEM_PROMPT} / user: My name is Ada. / assistant: Hello Ada. / "
            "system: The user likes short answers."
        )

        await socket.send({"type": "conversation.item.delete", "item_id": "item_hello"})
        assert (await socket.next_event("conversation.item.deleted"))["item_id"] == "item_hello"
        said = _said(await _ask(socket, "Repeat the conversation."))
        assert said.startswith(
            f"system: {SYSTEM_PROMPT} / user: My name is Ada. / system: The user likes short answers. / "
            "user: Repeat the conversation. / assistant: "
        ), "the deleted reply is gone; the answer quoting it is still there"
        await socket.send({"type": "conversation.item.retrieve", "item_id": "item_hello"})
        assert (await socket.next_event("error"))["error"]["code"] == "item_not_found"
        await socket.send({"type": "conversation.item.delete", "item_id": "item_hello"})
        assert (await socket.next_event("error"))["error"]["code"] == "item_not_found"


async def test_a_waiting_user_message_can_be_deleted_before_it_is_answered(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as socket:
        await _text_session(socket)
        await socket.send({"type": "conversation.item.create", "item": _message("user", "Forget this.", "item_gone")})
        await socket.next_event("conversation.item.added")
        await socket.send({"type": "conversation.item.delete", "item_id": "item_gone"})
        await socket.next_event("conversation.item.deleted")
        said = _said(await _ask(socket, "Repeat the conversation."))
        assert said == f"system: {SYSTEM_PROMPT}", "the deleted message never reached the model"


async def test_a_responses_instructions_are_for_that_response_alone(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as socket:
        await _text_session(socket)
        said = _said(await _ask(socket, "Repeat the conversation.", instructions="Speak like a pirate."))
        assert said == "system: Speak like a pirate."
        said = _said(await _ask(socket, "Repeat the conversation."))
        assert said.startswith(f"system: {SYSTEM_PROMPT} / user: Repeat the conversation.")


async def test_an_out_of_band_response_leaves_the_conversation_as_it_was(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as socket:
        await _text_session(socket)
        await _ask(socket, "What is the capital of France?")
        before = len(socket.events)
        done = await _ask(
            socket,
            "",
            conversation="none",
            metadata={"purpose": "classify"},
            input=[_message("system", "Classify the topic."), _message("user", "Repeat the conversation.")],
        )
        assert done["response"]["conversation_id"] is None and done["response"]["metadata"] == {"purpose": "classify"}
        assert _said(done) == f"system: {SYSTEM_PROMPT} / system: Classify the topic.", "its own input, no history"
        during = [e["type"] for e in socket.events[before:]]
        assert "conversation.item.added" not in during and "conversation.item.done" not in during
        said = _said(await _ask(socket, "Repeat the conversation."))
        assert "Classify" not in said and "capital of France" in said, "nothing of it entered the history"
        await socket.send({"type": "response.create", "response": {"conversation": "none"}})
        assert (await socket.next_event("error"))["error"]["param"] == "response.input"


async def test_a_response_to_nothing_new_answers_the_conversation_as_it_stands(edge_service: ServiceProcess) -> None:
    """As the API does: the model speaks first (a greeting under the response's instructions), or
    answers what is there; LiveKit's generate_reply() relies on it."""
    async with realtime_socket(edge_service.url) as socket:
        await _text_session(socket)
        done = await _ask(socket, "", instructions="Greet the user.")
        assert _said(done).strip()
        said = _said(await _ask(socket, "Repeat the conversation."))
        assert said.startswith(f"system: {SYSTEM_PROMPT} / assistant: "), "the greeting is in the history"
