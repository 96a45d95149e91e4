"""LiveKit Agents' OpenAI RealtimeModel, unchanged, pointed at the edge: a session whose
generate_reply() must be answered (it waits for its own id in response.metadata). Run in the
clients' venv (.venv-clients) by tests/integration/test_realtime_clients.py; prints one JSON
object with what came back.

    .venv-clients/bin/python tests/clients/livekit_reply.py http://127.0.0.1:8006/v1
"""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
from livekit.agents import llm
from livekit.plugins import openai


async def main(base_url: str) -> None:
    errors: list[str] = []
    async with aiohttp.ClientSession() as http:
        model = openai.realtime.RealtimeModel(
            base_url=base_url, api_key="not-needed-on-loopback", modalities=["text"], http_session=http
        )
        session = model.session()
        session.on("error", lambda event: errors.append(str(event.error)))
        try:
            await session.update_chat_ctx(
                llm.ChatContext([llm.ChatMessage(role="user", content=["What is the capital of Italy?"])])
            )
            generation = await asyncio.wait_for(session.generate_reply(), 30)
            text = ""
            async with asyncio.timeout(60):
                async for message in generation.message_stream:
                    async for delta in message.text_stream:
                        text += delta
        finally:
            await session.aclose()
            await model.aclose()
    print(json.dumps({"text": text, "user_initiated": generation.user_initiated, "errors": errors}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
