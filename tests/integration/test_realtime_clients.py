"""Maintained clients of OpenAI's Realtime API, unchanged and pinned, pointed at the edge by URL
only: the OpenAI Agents SDK here (requirements/clients.txt), Pipecat and LiveKit Agents in
their own venv (requirements/clients-frameworks.txt; scripts in tests/clients/). Each must get
an answer, not merely not fail. (The official ``openai`` SDK's turns are in
test_edge_openai_sdk.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from agents import function_tool
from agents.realtime import RealtimeAgent, RealtimeRunner
from agents.realtime.model_inputs import RealtimeModelSendRawMessage

from services.common.audio import float32_to_pcm16
from tests.support.processes import ServiceProcess
from tests.support.speech import piper_voice_at

REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_openai_agents_realtime_runner_calls_its_tool_and_speaks_the_result(
    edge_service: ServiceProcess,
) -> None:
    """The Agents SDK's RealtimeRunner with one function tool, forced for the first response:
    the tool runs with arguments that parse, its result goes back, and the reply says it."""
    calls: list[dict[str, Any]] = []
    session_holder: list[Any] = []

    @function_tool
    async def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append({"city": city})
        # The first response had to call; the next one answers with the result (a client that
        # forces a call switches back to auto, or every response would call again).
        raw = {"type": "session.update", "other_data": {"session": {"type": "realtime", "tool_choice": "auto"}}}
        await session_holder[0].model.send_event(RealtimeModelSendRawMessage(message=raw))  # type: ignore[arg-type]
        return f"Sunny and 24 degrees in {city}."

    agent = RealtimeAgent(name="Weather", instructions="Answer with the weather tool.", tools=[get_weather])
    runner = RealtimeRunner(agent)
    url = edge_service.url.rstrip("/").replace("http", "ws", 1) + "/v1/realtime?model=parley"
    settings = {"tool_choice": "get_weather", "output_modalities": ["audio"]}
    session = await runner.run(
        model_config={"url": url, "api_key": "not-needed-on-loopback", "initial_model_settings": settings}  # type: ignore[typeddict-item]
    )
    session_holder.append(session)
    seen: list[str] = []
    said = ""
    audio_bytes = 0
    async with session:
        await session.send_message("What is the weather in Paris?")
        async with asyncio.timeout(60):
            async for event in session:
                seen.append(event.type)
                if event.type == "error":
                    raise AssertionError(f"the Agents SDK reported an error: {event.error}")
                if event.type == "audio":
                    audio_bytes += len(event.audio.data)
                if event.type == "history_updated":
                    said = _last_assistant_words(event.history) or said
                if "tool_end" in seen and "Sunny" in said and event.type == "agent_end":
                    break
    assert calls and calls[0]["city"], calls
    assert seen.index("tool_start") < seen.index("tool_end")
    assert "Sunny and 24 degrees" in said, said
    assert audio_bytes > 24000, "the answer was spoken"


def _last_assistant_words(history: list[Any]) -> str:
    for item in reversed(history):
        if getattr(item, "role", None) == "assistant":
            for part in getattr(item, "content", []) or []:
                words = getattr(part, "transcript", None) or getattr(part, "text", None)
                if words:
                    return str(words)
    return ""


def _clients_python() -> str:
    python = os.environ.get("PARLEY_CLIENTS_PYTHON", str(REPO_ROOT / ".venv-clients" / "bin" / "python"))
    if not Path(python).exists():
        pytest.fail(f"no clients' environment at {python}: run `make clients-install` (make test does)")
    return python


def _run_client(script: str, *args: str) -> dict[str, Any]:
    """A client script in the clients' venv; its JSON result (the last line it prints)."""
    completed = subprocess.run(
        [_clients_python(), str(REPO_ROOT / "tests" / "clients" / script), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, f"{script} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _socket_url(edge: ServiceProcess) -> str:
    return edge.url.rstrip("/").replace("http", "ws", 1) + "/v1/realtime"


async def test_pipecat_realtime_service_answers_a_text_and_an_audio_turn(
    edge_service: ServiceProcess, tmp_path: Path
) -> None:
    speech = piper_voice_at("What is the capital of Italy?", 24000)
    samples = np.concatenate((np.zeros(4800, np.float32), speech, np.zeros(36000, np.float32)))
    question = tmp_path / "question.wav"
    with wave.open(str(question), "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(24000)
        clip.writeframes(float32_to_pcm16(samples))
    result = await asyncio.to_thread(_run_client, "pipecat_turns.py", _socket_url(edge_service), str(question))
    assert not result["errors"], result
    text_turn, audio_turn = result["responses"]
    assert "Paris" in text_turn["text"] and text_turn["audio_bytes"] > 24000, text_turn
    assert "Rome" in audio_turn["text"] and audio_turn["audio_bytes"] > 24000, audio_turn


async def test_livekit_realtime_model_generate_reply_is_answered(edge_service: ServiceProcess) -> None:
    result = await asyncio.to_thread(_run_client, "livekit_reply.py", edge_service.url.rstrip("/") + "/v1")
    assert not result["errors"], result
    assert result["user_initiated"] and "Rome" in result["text"], result
