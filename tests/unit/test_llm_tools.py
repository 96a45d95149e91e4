"""Function calling parts of the LLM service: tools in a prompt, calls found in streamed text."""

from __future__ import annotations

import json

from parley.v1 import conversation_pb2

from services.llm.backends.tools import CallScanner, CallText, ToolSpec, ToolUse, for_template
from services.llm.reply import ReplyStream

WEATHER = ToolSpec("get_weather", "The weather.", {"type": "object", "properties": {"city": {"type": "string"}}})
TOOLS = ToolUse((WEATHER, ToolSpec("get_time")))


def _scan(pieces: list[str]) -> list[str | CallText]:
    scanner = CallScanner(TOOLS)
    out = [x for piece in pieces for x in scanner.push(piece)] + scanner.flush()
    merged: list[str | CallText] = []
    for x in out:  # adjacent text joined: where the scanner splits text does not matter
        if isinstance(x, str) and merged and isinstance(merged[-1], str):
            merged[-1] += x
        else:
            merged.append(x)
    return merged


def test_a_call_split_anywhere_across_deltas_is_found() -> None:
    written = 'Let me look. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    for cut in range(1, len(written)):
        assert _scan([written[:cut], written[cut:]]) == [
            "Let me look. ",
            CallText("get_weather", json.dumps({"city": "Paris"})),
        ], cut


def test_text_that_is_not_a_call_is_passed_on_whole() -> None:
    for written in (
        "a < b, and <tool is not a tag",
        '<tool_call>{"name": "launch_rockets", "arguments": {}}</tool_call>',  # no such tool
        "<tool_call>not json</tool_call> after",
        "<tool_call>{unclosed",
    ):
        assert _scan([written]) == [written]
    assert _scan(['<tool_call>{"name": "get_time", "arguments": "{}"}']) == [CallText("get_time", "{}")], (
        "an unclosed call at the end counts, arguments written as a string too"
    )


def test_a_template_without_tools_gets_them_in_the_system_message() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    rendered, tools = for_template(messages, TOOLS, knows_tools=False)
    assert tools is None
    assert rendered[0]["content"].startswith("Be brief.") and '"name": "get_weather"' in rendered[0]["content"]
    assert rendered[2] == {
        "role": "assistant",
        "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
    }
    assert rendered[3] == {"role": "user", "content": "<tool_response>\nsunny\n</tool_response>"}
    same, listed = for_template(messages, TOOLS, knows_tools=True)
    assert same is messages and listed is not None and listed[0]["function"]["name"] == "get_weather"


def test_a_required_calls_schema() -> None:
    assert ToolUse((WEATHER,), "required").call_schema() == WEATHER.parameters, "one tool: its arguments"
    assert ToolUse((WEATHER,), "get_weather").call_schema() == WEATHER.parameters
    both = TOOLS.__class__(TOOLS.tools, "required").call_schema()
    assert both is not None and [b["properties"]["name"]["const"] for b in both["anyOf"]] == ["get_weather", "get_time"]
    assert TOOLS.call_schema() is None, "auto: the model chooses, nothing is forced"


def test_a_forced_calls_arguments_stream_as_they_are_generated() -> None:
    reply = ReplyStream(ToolUse((WEATHER,), "get_weather"))
    out = [*reply.push('{"city": '), *reply.push('"Paris"}'), *reply.flush()]
    kinds = [r.WhichOneof("event") for r in out]
    assert kinds == ["function_call_delta", "function_call_delta", "function_call"]
    assert out[0].function_call_delta.name == "get_weather" and out[1].function_call_delta.name == ""
    call: conversation_pb2.FunctionCall = out[2].function_call
    assert call.arguments == '{"city": "Paris"}' and call.call_id == out[0].function_call_delta.call_id
    assert reply.text == "" and [c.name for c in reply.calls] == ["get_weather"]
