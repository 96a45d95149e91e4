"""Function calling, for every engine: tools in the prompt, calls found in the reply, and the JSON
Schema a required call is generated under.

Messages with calls use the form Hugging Face chat templates take: an assistant message with
``tool_calls`` (``{"id", "type": "function", "function": {"name", "arguments": {...}}}``) and a
``tool`` message with ``tool_call_id``. A template that knows tools (it reads ``tools``) gets
them as they are. One that does not, like the bundled SmolLM2's, gets the Hermes form most small
models were taught: the tools listed in the system message, a call written as
``<tool_call>{"name": ..., "arguments": ...}</tool_call>``, a result as
``<tool_response>...</tool_response>`` in a user message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
# Compact but readable JSON, as json.dumps writes it: what the model sees and what it is held to
# (llguidance's JsonCompileOptions).
JSON_SEPARATORS: Any = {"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": False}

Message = dict[str, Any]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None  # the arguments' JSON Schema

    @property
    def arguments_schema(self) -> dict[str, Any]:
        return self.parameters or {"type": "object"}

    def as_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.arguments_schema},
        }


@dataclass(frozen=True)
class ToolUse:
    """The tools of a reply and the choice among them: ``choice`` is "auto", "required" or a
    tool's name (with "none", the reply has no tools at all)."""

    tools: tuple[ToolSpec, ...]
    choice: str = "auto"

    @property
    def forced(self) -> ToolSpec | None:
        """The one tool the reply must call (a named choice, or "required" with one tool)."""
        if self.choice == "required" and len(self.tools) == 1:
            return self.tools[0]
        return next((t for t in self.tools if t.name == self.choice), None)

    def call_schema(self) -> dict[str, Any] | None:
        """What a required call is generated under: the forced tool's arguments, or a name and
        arguments of one of the tools; None when the model chooses (auto)."""
        forced = self.forced
        if forced is not None:
            return forced.arguments_schema
        if self.choice != "required":
            return None
        return {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"name": {"const": t.name}, "arguments": t.arguments_schema},
                    "required": ["name", "arguments"],
                    "additionalProperties": False,
                }
                for t in self.tools
            ]
        }


def template_knows_tools(chat_template: str | None) -> bool:
    return bool(chat_template) and "tools" in str(chat_template)


def for_template(
    messages: list[Message], tools: ToolUse | None, knows_tools: bool
) -> tuple[list[Message], list[Any] | None]:
    """The messages (and ``tools`` argument) to give a chat template."""
    if knows_tools:
        return messages, [t.as_openai() for t in tools.tools] if tools else None
    rendered: list[Message] = []
    for message in messages:
        if message.get("tool_calls"):
            calls = "\n".join(
                TOOL_CALL_OPEN
                + json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]})
                + TOOL_CALL_CLOSE
                for c in message["tool_calls"]
            )
            rendered.append({"role": "assistant", "content": ((message.get("content") or "") + "\n" + calls).strip()})
        elif message["role"] == "tool":
            rendered.append({"role": "user", "content": f"<tool_response>\n{message['content']}\n</tool_response>"})
        else:
            rendered.append({"role": message["role"], "content": message.get("content") or ""})
    if tools and tools.tools and rendered and rendered[0]["role"] == "system":
        listing = "\n".join(json.dumps(t.as_openai()) for t in tools.tools)
        rendered[0] = {
            "role": "system",
            "content": rendered[0]["content"]
            + "\n\nYou may call functions. They are listed in <tools></tools>:\n<tools>\n"
            + listing
            + '\n</tools>\nTo call one, reply with only <tool_call>{"name": <function name>, "arguments": '
            "<arguments as JSON>}</tool_call>. Otherwise, answer as usual.",
        }
    return rendered, None


@dataclass(frozen=True)
class CallText:
    """A function call the model wrote as text: its name and its arguments as JSON text."""

    name: str
    arguments: str


def parse_call(text: str, tools: ToolUse | None = None) -> CallText | None:
    """A ``{"name", "arguments"}`` object, as the model wrote it; None if it is not one (or names
    no tool of ``tools``)."""
    try:
        call = json.loads(text)
    except ValueError:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    arguments = call.get("arguments", call.get("parameters", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    if tools is not None and call["name"] not in {t.name for t in tools.tools}:
        return None
    return CallText(call["name"], json.dumps(arguments))


class CallScanner:
    """Splits a streamed reply into text and ``<tool_call>`` calls. Text that might be the start
    of a call's tag is held back until it is clear; a tag whose contents are not a call of one of
    the tools is passed on as text."""

    def __init__(self, tools: ToolUse) -> None:
        self._tools = tools
        self._pending = ""  # held back: a possible tag, or a call's contents
        self._in_call = False

    def push(self, text: str) -> list[str | CallText]:
        self._pending += text
        out: list[str | CallText] = []
        while True:
            if self._in_call:
                end = self._pending.find(TOOL_CALL_CLOSE)
                if end < 0:
                    return out
                body, self._pending = self._pending[:end], self._pending[end + len(TOOL_CALL_CLOSE) :]
                self._in_call = False
                call = parse_call(body.strip(), self._tools)
                out.append(call if call is not None else TOOL_CALL_OPEN + body + TOOL_CALL_CLOSE)
                continue
            start = self._pending.find(TOOL_CALL_OPEN)
            if start >= 0:
                if start:
                    out.append(self._pending[:start])
                self._pending = self._pending[start + len(TOOL_CALL_OPEN) :]
                self._in_call = True
                continue
            keep = _partial_tag(self._pending)
            if len(self._pending) > keep:
                out.append(self._pending[: len(self._pending) - keep])
                self._pending = self._pending[len(self._pending) - keep :]
            return out

    def flush(self) -> list[str | CallText]:
        """The end of the reply: an unclosed call counts if its contents are one."""
        pending, self._pending = self._pending, ""
        if not pending:
            return []
        if self._in_call:
            self._in_call = False
            call = parse_call(pending.strip(), self._tools)
            return [call if call is not None else TOOL_CALL_OPEN + pending]
        return [pending]


def _partial_tag(text: str) -> int:
    """How many characters at the end of ``text`` could begin the call tag."""
    for length in range(min(len(TOOL_CALL_OPEN) - 1, len(text)), 0, -1):
        if TOOL_CALL_OPEN.startswith(text[-length:]):
            return length
    return 0
