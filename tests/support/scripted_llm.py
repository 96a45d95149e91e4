"""The LLM service with a scripted language model, for the tests of the edge.

Everything but the words is real: the gRPC service, its sessions and history, the cuts of
interrupted replies, and speech recognition with the bundled Whisper. Only the reply comes from
``REPLIES`` instead of SmolLM2-135M, whose greedy words move with the CPU's bf16 kernels ("Italy
is a country in Europe" for "Rome" on one machine, "Rome" on another). What an edge test checks
(which question was answered, that a long reply was cut, that a reply has audio) then holds on
any machine and under any load. The reply streams a word at a time at a model's pace, honours
``max_output_tokens`` (a word a token) and stop strings, and stops at once when cancelled.

``python -m tests.support.scripted_llm`` takes the LLM service's options.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator
from typing import Any

from services.common.logs import configure_logging
from services.common.settings import parse_settings
from services.llm.__main__ import serve
from services.llm.backends import GenerationRequest, GenerationStats
from services.llm.backends.text import StopStringFilter
from services.llm.backends.tools import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from services.llm.settings import LlmSettings

HISTORY_OF_PARIS = (
    "Paris began as a small fishing village of the Parisii on an island in the river Seine. "
    "The Romans took it and built a town with baths, a forum and an amphitheatre on the left bank. "
    "In the Middle Ages it grew into the largest city of Europe, with its cathedral and its university. "
    "The revolution of seventeen eighty nine began there, and so did many of the uprisings after it. "
    "In the nineteenth century Haussmann rebuilt its centre with the wide boulevards we know today. "
    "Today it is the capital of France and one of the most visited cities in the world."
)
# (pattern searched in the user's last message, case-insensitive; reply). First match wins.
# Loose patterns: they read a recogniser's words ("tell me about my history on the city on Paris").
REPLIES: list[tuple[str, str]] = [
    (r"capital\b.*\bfrance", "The capital of France is Paris."),
    (r"capital\b.*\bitaly", "The capital of Italy is Rome."),
    (r"capital\b.*\bgermany", "The capital of Germany is Berlin."),
    (r"\bhistory\b|\btell me about\b", HISTORY_OF_PARIS),
    (r"two plus two", "Two plus two is four."),
    (r"\b(hello|hi)\b", "Hello! How can I help you today?"),
]
ECHO_WORDS = 40  # longest echo of an unscripted message
WORD_SECONDS = 0.03  # about the bundled model's pace on a CPU


# With tools, a user asking about the weather gets a call of the first tool (its arguments an
# example under the tool's schema); a function's result is answered "The function said: ...".
# Asked this, the model says what it was given before the question: each message as "role: text",
# joined by " / " (the system prompt first). Tests read the history the service keeps through it.
REPEAT_THE_CONVERSATION = r"\brepeat the conversation\b"


def scripted_reply(user_text: str, messages: list[dict[str, str]] | None = None) -> str:
    """The reply to ``user_text``: the first matching script line, else the words echoed."""
    if messages is not None and re.search(REPEAT_THE_CONVERSATION, user_text, re.IGNORECASE):
        return " / ".join(f"{m['role']}: {m['content']}" for m in messages[:-1])
    for pattern, reply in REPLIES:
        if re.search(pattern, user_text, re.IGNORECASE):
            return reply
    words = user_text.split()
    return "You said: " + " ".join(words[:ECHO_WORDS]).rstrip(".?!") + "."


class ScriptedLanguageModel:
    """A language model engine (``services.llm.backends.LanguageModel``) that replies from a script."""

    name = "scripted"
    sees_images = False
    hears_audio = False

    def __init__(self, settings: LlmSettings) -> None:
        self._settings = settings

    def new_session_state(self) -> Any:
        return None

    def count_tokens(self, messages: list[dict[str, Any]], tools: Any = None) -> int:
        return sum(len(str(m.get("content") or "").split()) + 4 for m in messages)

    async def generate(
        self, request: GenerationRequest, state: Any, stats: GenerationStats
    ) -> AsyncGenerator[str, None]:
        stats.input_tokens = self.count_tokens(request.messages)
        stats.finish_reason = "stop"
        words = self._reply(request).split()
        stop = StopStringFilter(request.params.stop)
        for index, word in enumerate(words):
            if index == request.params.max_output_tokens:
                stats.finish_reason = "length"
                break
            await asyncio.sleep(WORD_SECONDS)
            stats.output_tokens += 1
            delta = stop.push(word if index == 0 else " " + word)
            if delta:
                yield delta
            if stop.stopped:
                return
        rest = stop.flush()
        if rest:
            yield rest

    def _reply(self, request: GenerationRequest) -> str:
        """Scripted words; with tools, the calls a model would make (see ``scripted_call``)."""
        last = request.messages[-1]
        if request.json_schema is not None:  # a required call: JSON under the schema, as the real engines
            return json.dumps(example_of(request.json_schema))
        if last["role"] == "tool":
            return f"The function said: {last['content']}"
        user = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), None)
        if user is None:  # nothing said yet: the model speaks first
            return "Hello! How can I help you today?"
        if request.tools is not None and request.tools.tools and re.search(r"\bweather\b", user, re.IGNORECASE):
            tool = request.tools.tools[0]
            call = {"name": tool.name, "arguments": example_of(tool.arguments_schema)}
            return f"{TOOL_CALL_OPEN}{json.dumps(call)}{TOOL_CALL_CLOSE}"
        return scripted_reply(user, request.messages)

    async def close(self) -> None:
        return None


def example_of(schema: dict[str, Any]) -> Any:
    """A value valid under a simple JSON Schema: what a model held to the schema might write."""
    if "anyOf" in schema:
        return example_of(schema["anyOf"][0])
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: example_of(properties[name]) for name in schema.get("required", list(properties))}
    return {"string": "Paris", "integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}[kind]


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(LlmSettings, argv)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings, ScriptedLanguageModel))


if __name__ == "__main__":
    main()
