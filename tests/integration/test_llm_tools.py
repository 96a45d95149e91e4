"""Function calling in the LLM service with the bundled model: a required call is generated
under its schema, so its arguments always parse and validate; with no tools allowed there is
no call; a function's result goes into the history and a turn without input answers it."""

from __future__ import annotations

import json
import uuid

import grpc
import jsonschema
from parley.v1 import conversation_pb2, conversation_pb2_grpc

from tests.support.llm_client import END, header, respond, text

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
TOOLS = [
    conversation_pb2.Tool(
        name="get_weather", description="The weather forecast for a city.", parameters_json=json.dumps(WEATHER_SCHEMA)
    ),
    conversation_pb2.Tool(
        name="get_time",
        description="The local time in a city.",
        parameters_json=json.dumps(
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        ),
    ),
]
QUESTION = "What will the weather be like in Paris for the next three days?"


def _session() -> str:
    return f"tools-{uuid.uuid4().hex[:8]}"


async def test_a_required_call_parses_and_matches_its_schema(llm_channel: grpc.aio.Channel) -> None:
    for choice in (
        conversation_pb2.ToolChoice(function="get_weather"),
        conversation_pb2.ToolChoice(mode=conversation_pb2.TOOL_CHOICE_MODE_REQUIRED),
    ):
        result = await respond(llm_channel, [header(_session(), tools=TOOLS, tool_choice=choice), text(QUESTION), END])
        assert result.done is not None and result.done.finish_reason == conversation_pb2.FINISH_REASON_STOP
        (call,) = result.calls
        schema = WEATHER_SCHEMA if call.name == "get_weather" else json.loads(TOOLS[1].parameters_json)
        assert call.name in ("get_weather", "get_time")
        jsonschema.validate(json.loads(call.arguments), schema)
        assert "".join(d.arguments for d in result.call_deltas) == call.arguments
        assert result.call_deltas[0].call_id == call.call_id and result.call_deltas[0].name == call.name
        assert not result.deltas, "a required call is all the reply is"


async def test_no_call_when_none_is_allowed(llm_channel: grpc.aio.Channel) -> None:
    none = conversation_pb2.ToolChoice(mode=conversation_pb2.TOOL_CHOICE_MODE_NONE)
    result = await respond(llm_channel, [header(_session(), tools=TOOLS, tool_choice=none), text(QUESTION), END])
    assert not result.calls and not result.call_deltas and result.reply.strip()


async def test_a_functions_result_is_answered_by_a_turn_without_input(llm_channel: grpc.aio.Channel) -> None:
    session = _session()
    forced = conversation_pb2.ToolChoice(function="get_weather")
    first = await respond(llm_channel, [header(session, tools=TOOLS, tool_choice=forced), text(QUESTION), END])
    (call,) = first.calls
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    result = conversation_pb2.HistoryMessage(
        item_id="out_1",
        role=conversation_pb2.MESSAGE_ROLE_TOOL,
        call_id=call.call_id,
        text='{"forecast": "sunny, 24 C"}',
    )
    added = await stub.AddMessages(conversation_pb2.AddMessagesRequest(session_id=session, messages=[result]))
    assert added.history_messages == 3  # the question, the call, its result
    answer = await respond(llm_channel, [header(session, tools=TOOLS, answer_history=True), END])
    assert answer.done is not None and answer.reply.strip(), "the model answers the result"
    assert answer.accepted is not None and answer.accepted.history_turns == 1


async def test_a_turn_without_input_must_say_it_answers_the_history(llm_channel: grpc.aio.Channel) -> None:
    try:
        await respond(llm_channel, [header(_session()), END])
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "no input" in (exc.details() or "")
    else:
        raise AssertionError("a turn without input on an empty history was accepted")


async def test_bad_tools_are_refused_with_a_message(llm_channel: grpc.aio.Channel) -> None:
    bad = [
        ([conversation_pb2.Tool(name="has space")], None, "tool name"),
        ([conversation_pb2.Tool(name="f", parameters_json="{not json")], None, "not JSON"),
        (TOOLS, conversation_pb2.ToolChoice(function="nowhere"), "not among"),
    ]
    for tools, choice, words in bad:
        fields: dict[str, object] = {"tools": tools}
        if choice is not None:
            fields["tool_choice"] = choice
        try:
            await respond(llm_channel, [header(_session(), **fields), text(QUESTION), END])
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (exc.details() or ""), exc.details()
        else:
            raise AssertionError(f"accepted: {tools} {choice}")
