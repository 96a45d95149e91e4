"""A reply as it streams out of the engine, turned into the turn's responses: text deltas, and
function calls (found in the text when the model chooses, or the whole reply when a call is
required and the engine generates it under the call's schema)."""

from __future__ import annotations

import secrets

from parley.v1 import conversation_pb2

from services.llm.backends.tools import CallScanner, CallText, ToolUse, parse_call
from services.llm.sessions import Call

Response = conversation_pb2.RespondResponse


def new_call_id() -> str:
    return f"call_{secrets.token_hex(10)}"


class ReplyStream:
    """Feed it the engine's text with ``push``, then ``flush``; each returns the responses to send.
    ``text`` and ``calls`` are the reply as the history keeps it."""

    def __init__(self, tools: ToolUse | None, prefix: str = "") -> None:
        self._tools = tools
        self._forced = tools.forced if tools is not None else None
        self._scanner = CallScanner(tools) if tools is not None and tools.choice == "auto" else None
        self._text: list[str] = [prefix] if prefix else []
        self._after_notice = bool(prefix)  # the reply's first words follow the notice
        self._arguments: list[str] = []  # a required call's JSON, as it comes
        self._call_id = new_call_id()
        self.calls: list[Call] = []

    @property
    def text(self) -> str:
        return "".join(self._text)

    def push(self, delta: str) -> list[Response]:
        if self._tools is not None and self._scanner is None:  # a required call
            self._arguments.append(delta)
            if self._forced is None:
                return []  # which tool is known only once the JSON is whole
            return [_delta(self._call_id, self._forced.name if len(self._arguments) == 1 else "", delta)]
        if self._scanner is None:
            return self._say(delta)
        return [r for piece in self._scanner.push(delta) for r in self._piece(piece)]

    def flush(self) -> list[Response]:
        if self._tools is not None and self._scanner is None:
            return self._required_call()
        if self._scanner is None:
            return []
        return [r for piece in self._scanner.flush() for r in self._piece(piece)]

    def _piece(self, piece: str | CallText) -> list[Response]:
        if isinstance(piece, str):
            return self._say(piece)
        return self._call(new_call_id(), piece.name, piece.arguments, whole=True)

    def _say(self, text: str) -> list[Response]:
        if not text:
            return []
        if self._after_notice:
            self._after_notice, text = False, " " + text.lstrip()
        self._text.append(text)
        return [Response(text_delta=conversation_pb2.TextDelta(text=text))]

    def _required_call(self) -> list[Response]:
        written = "".join(self._arguments)
        if self._forced is not None:
            # Valid JSON under the schema, unless the length limit cut it short.
            return self._call(self._call_id, self._forced.name, written, whole=False)
        call = parse_call(written, self._tools)
        if call is None:  # cut short by the length limit: what was written, as text
            return self._say(written)
        return self._call(self._call_id, call.name, call.arguments, whole=True)

    def _call(self, call_id: str, name: str, arguments: str, whole: bool) -> list[Response]:
        """The call's responses: its arguments in one delta (when they were not streamed) and the
        whole call."""
        self.calls.append(Call(call_id, name, arguments))
        out = [_delta(call_id, name, arguments)] if whole else []
        out.append(
            Response(function_call=conversation_pb2.FunctionCall(call_id=call_id, name=name, arguments=arguments))
        )
        return out


def _delta(call_id: str, name: str, arguments: str) -> Response:
    return Response(
        function_call_delta=conversation_pb2.FunctionCallDelta(call_id=call_id, name=name, arguments=arguments)
    )
