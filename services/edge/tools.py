"""Function tools of a session or response: checked as the client gives them, and carried to the
LLM service (``TurnHeader.tools`` / ``tool_choice``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from openai.types import realtime as rt
from parley.v1 import conversation_pb2

from services.edge import protocol
from services.edge.protocol import ProtocolError

_MODES = {
    "auto": conversation_pb2.TOOL_CHOICE_MODE_AUTO,
    "none": conversation_pb2.TOOL_CHOICE_MODE_NONE,
    "required": conversation_pb2.TOOL_CHOICE_MODE_REQUIRED,
}


def check(tools: list[protocol.Tool], event_id: str | None, param: str) -> list[protocol.FunctionTool]:
    """The function tools; an MCP tool (which Parley cannot call) or a repeated name is an error."""
    functions = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, protocol.FunctionTool):
            raise ProtocolError(
                "unsupported_tool",
                "MCP tools are not available on this server; give function tools (the client runs them)",
                event_id,
                f"{param}.{index}.type",
            )
        functions.append(tool)
    names = [t.name for t in functions]
    if len(set(names)) < len(names):
        raise ProtocolError("invalid_value", "tool names must be unique", event_id, param)
    return functions


def for_turn(tools: Sequence[protocol.Tool] | None) -> list[conversation_pb2.Tool]:
    return [
        conversation_pb2.Tool(
            name=t.name,
            description=t.description or "",
            parameters_json=json.dumps(t.parameters) if t.parameters is not None else "",
        )
        for t in tools or []
        if isinstance(t, protocol.FunctionTool)
    ]


def choice_for_turn(choice: protocol.ToolChoice | None) -> conversation_pb2.ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        return conversation_pb2.ToolChoice(mode=_MODES[choice])
    if isinstance(choice, protocol.ToolChoiceFunction):
        return conversation_pb2.ToolChoice(mode=conversation_pb2.TOOL_CHOICE_MODE_REQUIRED, function=choice.name)
    return conversation_pb2.ToolChoice(mode=conversation_pb2.TOOL_CHOICE_MODE_AUTO)  # MCP: refused with its tools


def session_object(tools: Sequence[protocol.Tool] | None) -> list[rt.RealtimeFunctionTool]:
    """The function tools as session.updated reports them."""
    return [
        rt.RealtimeFunctionTool(type="function", name=t.name, description=t.description, parameters=t.parameters)
        for t in tools or []
        if isinstance(t, protocol.FunctionTool)
    ]


def choice_object(choice: protocol.ToolChoice | None) -> str | dict[str, str]:
    if choice is None:
        return "auto"
    if isinstance(choice, str):
        return choice
    return {"type": "function", "name": choice.name} if isinstance(choice, protocol.ToolChoiceFunction) else "auto"


def check_choice(
    tools: list[conversation_pb2.Tool], choice: conversation_pb2.ToolChoice | None, event_id: str | None
) -> None:
    """A response's tool choice must be one its tools allow."""
    if choice is None:
        return
    if choice.function and choice.function not in {t.name for t in tools}:
        message = f"tool_choice names {choice.function!r}, which is not among the tools"
        raise ProtocolError("invalid_value", message, event_id, "tool_choice")
    if choice.mode == conversation_pb2.TOOL_CHOICE_MODE_REQUIRED and not tools:
        raise ProtocolError("invalid_value", 'tool_choice "required" needs tools', event_id, "tool_choice")
