"""Function calling over the Realtime protocol, through the real stack (the scripted model: it
calls the first tool when asked about the weather, answers a function's result with "The
function said: ...", and, like the real engines, writes JSON under the schema when a call is
required). The bundled model's own calls are checked in test_llm_tools.py."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from tests.support.processes import ServiceProcess
from tests.support.realtime_ws import RealtimeSocket, realtime_socket

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}


async def _session(socket: RealtimeSocket, **session: Any) -> None:
    await socket.next_event("session.created")
    await socket.send(
        {"type": "session.update", "session": {"output_modalities": ["text"], "parley": {"mode": "chat"}, **session}}
    )
    updated = await socket.next_event("session.updated", "error")
    assert updated["type"] == "session.updated", updated


async def _ask(socket: RealtimeSocket, text: str, **response: Any) -> dict[str, Any]:
    if text:
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await socket.send({"type": "conversation.item.create", "item": item})
    await socket.send({"type": "response.create", "response": response})
    done = await socket.next_event("response.done", "error", timeout=30)
    assert done["type"] == "response.done" and done["response"]["status"] == "completed", done
    return done


def _calls(done: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in done["response"]["output"] if item["type"] == "function_call"]


async def test_a_forced_call_parses_under_its_schema_and_its_result_is_answered(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as socket:
        await _session(socket, tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"})
        updated = socket.of_type("session.updated")[-1]["session"]
        assert updated["tools"][0]["name"] == "get_weather" and updated["tool_choice"]["name"] == "get_weather"
        done = await _ask(socket, "Tell me something nice.")
        (call,) = _calls(done)
        arguments = json.loads(call["arguments"])
        jsonschema.validate(arguments, WEATHER["parameters"])
        deltas = [
            e for e in socket.of_type("response.function_call_arguments.delta") if e["call_id"] == call["call_id"]
        ]
        assert "".join(e["delta"] for e in deltas) == call["arguments"]
        finished = socket.of_type("response.function_call_arguments.done")[-1]
        assert finished["name"] == "get_weather" and finished["arguments"] == call["arguments"]
        assert [e["item"]["type"] for e in socket.of_type("response.output_item.added")] == ["function_call"]

        output = {"type": "function_call_output", "call_id": call["call_id"], "output": '{"temperature": 21}'}
        await socket.send({"type": "conversation.item.create", "item": output})
        added = await socket.next_event("conversation.item.added")
        assert added["item"]["type"] == "function_call_output"
        done = await _ask(socket, "", tool_choice="none")
        reply = done["response"]["output"][0]
        assert reply["type"] == "message" and '"temperature": 21' in reply["content"][0]["text"]


async def test_the_model_calls_on_its_own_and_never_with_tool_choice_none(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as socket:
        await _session(socket, tools=[WEATHER])
        done = await _ask(socket, "What is the weather in Paris?")
        (call,) = _calls(done)
        assert call["name"] == "get_weather"
        jsonschema.validate(json.loads(call["arguments"]), WEATHER["parameters"])
        assert not [i for i in done["response"]["output"] if i["type"] == "message"], "a call and no words"
        done = await _ask(socket, "And what is the weather in Rome?", tool_choice="none")
        assert not _calls(done) and done["response"]["output"][0]["type"] == "message"


async def test_bad_tools_are_refused_clearly(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as socket:
        await socket.next_event("session.created")
        mcp = {"type": "mcp", "server_label": "docs", "server_url": "https://example.invalid/mcp"}
        for session, code in [
            ({"tools": [mcp]}, "unsupported_tool"),
            ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nowhere"}}, "invalid_value"),
            ({"tools": [WEATHER, WEATHER]}, "invalid_value"),
        ]:
            await socket.send({"type": "session.update", "session": session})
            error = await socket.next_event("error", "session.updated")
            assert error["type"] == "error" and error["error"]["code"] == code, error
