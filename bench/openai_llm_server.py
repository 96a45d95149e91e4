"""An OpenAI-compatible chat completions server over Parley's own language model engine, so
that another voice pipeline (bench.compare's Pipecat bot) gets the same model at the same speed.

    .venv/bin/python -m bench.openai_llm_server --port 8100

``POST /v1/chat/completions`` (streamed as server-sent events, or whole) and ``GET /v1/models``;
loopback only. The engine is the LLM service's default one (the bundled SmolLM2-135M, its packed
weights and threads): what differs between the two pipelines is then the pipeline, not the
model. Like any serving engine with prefix caching, a conversation's KV cache is kept between
requests, so a request computes only the messages added since the last one (the engine keeps
the common prefix of token ids); conversations are told apart by their first two messages.
Bench only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import sys
import time
import uuid
from typing import Any

from aiohttp import web

from services.llm.__main__ import load_engine
from services.llm.backends import GenerationParams, GenerationRequest, GenerationStats, LanguageModel
from services.llm.settings import LlmSettings

MAX_BODY_BYTES = 1 << 20
CONVERSATIONS_KEPT = 8


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


class ChatServer:
    def __init__(self, engine: LanguageModel, settings: LlmSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._states: collections.OrderedDict[str, Any] = collections.OrderedDict()
        # The engine keeps one reply per session state in flight; requests of one conversation queue.
        self._locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    def _conversation(self, messages: list[dict[str, Any]]) -> str:
        first = json.dumps([[m.get("role"), _text(m.get("content"))] for m in messages[:2]])
        return hashlib.sha256(first.encode()).hexdigest()

    def _state(self, key: str) -> Any:
        if key not in self._states:
            self._states[key] = self._engine.new_session_state()
            while len(self._states) > CONVERSATIONS_KEPT:
                self._states.popitem(last=False)
        self._states.move_to_end(key)
        return self._states[key]

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self._engine.name, "object": "model"}]})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            messages = [
                {"role": str(m["role"]), "content": _text(m.get("content"))}
                for m in body["messages"]
                if m.get("role") in ("system", "user", "assistant")
            ]
            limit = body.get("max_completion_tokens") or body.get("max_tokens")
            params = GenerationParams(
                max_output_tokens=max(1, min(int(limit or self._settings.default_max_output_tokens), 2048)),
                temperature=float(body.get("temperature") or 0.0),
                top_p=float(body.get("top_p") or 1.0),
                seed=body.get("seed"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response(
                {"error": {"message": f"bad request: {exc}", "type": "invalid_request_error"}}, status=400
            )
        if not messages or messages[-1]["role"] == "assistant":
            return web.json_response(
                {"error": {"message": "nothing to answer", "type": "invalid_request_error"}}, status=400
            )
        key = self._conversation(messages)
        reply_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        stats = GenerationStats()

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            event = {
                "id": reply_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self._engine.name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + json.dumps(event).encode() + b"\n\n"

        async with self._locks[key]:
            state = self._state(key)
            generation = GenerationRequest(messages=messages, params=params)
            if not body.get("stream"):
                text = ""
                async with contextlib.aclosing(self._engine.generate(generation, state, stats)) as deltas:
                    async for delta in deltas:
                        text += delta if isinstance(delta, str) else ""
                return web.json_response(
                    {
                        "id": reply_id,
                        "object": "chat.completion",
                        "created": created,
                        "model": self._engine.name,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": stats.finish_reason,
                            }
                        ],
                        "usage": self._usage(stats),
                    }
                )
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await response.prepare(request)
            await response.write(chunk({"role": "assistant", "content": ""}, None))
            # A client that goes away closes the generator, which stops the engine's reply.
            async with contextlib.aclosing(self._engine.generate(generation, state, stats)) as deltas:
                async for delta in deltas:
                    if isinstance(delta, str) and delta:
                        await response.write(chunk({"content": delta}, None))
            await response.write(chunk({}, "length" if stats.finish_reason == "length" else "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                usage = {
                    "id": reply_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": self._engine.name,
                }
                event = {**usage, "choices": [], "usage": self._usage(stats)}
                await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            return response

    @staticmethod
    def _usage(stats: GenerationStats) -> dict[str, int]:
        return {
            "prompt_tokens": stats.input_tokens,
            "completion_tokens": stats.output_tokens,
            "total_tokens": stats.input_tokens + stats.output_tokens,
        }


async def serve(host: str, port: int) -> None:
    settings = LlmSettings()
    engine = await asyncio.to_thread(load_engine, settings)
    server = ChatServer(engine, settings)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/v1/models", server.models)
    app.router.add_post("/v1/chat/completions", server.completions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    # The line tests.support.processes waits for.
    print(json.dumps({"msg": "openai-llm listening", "url": f"http://{host}:{bound}"}), file=sys.stderr, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (the log line says which)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
