"""The transformers engine in process, where prompts and caches can be looked at directly.

The bundled 135M model's first answer token to the France question is a near tie under its
own default system prompt; under Parley's default prompt it holds with a wide margin. These
tests check that on more than one numeric path: bf16 and float32 weights, and a prompt
computed whole versus mostly served from a session's cache.
"""

import pytest

from services.llm.backends import GenerationParams, GenerationRequest, GenerationStats
from services.llm.backends.transformers_lm import TransformersLanguageModel
from services.llm.settings import DEFAULT_SYSTEM_PROMPT, LlmSettings

QUESTION = "What is the capital of France?"
GREEDY = GenerationParams(max_output_tokens=32)


def conversation(*turns: str) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}]
    for index, content in enumerate(turns):
        messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": content})
    return messages


async def reply(engine: TransformersLanguageModel, messages, state, stats=None) -> str:
    stats = stats or GenerationStats()
    return "".join([d async for d in engine.generate(GenerationRequest(messages, GREEDY), state, stats)])


@pytest.fixture(scope="module", params=["bfloat16", "float32"])
def engine(request: pytest.FixtureRequest) -> TransformersLanguageModel:
    return TransformersLanguageModel(LlmSettings(dtype=request.param))


async def test_answers_paris_with_a_clear_margin(engine: TransformersLanguageModel) -> None:
    import torch

    ids = engine.prompt_ids(conversation(QUESTION))
    with torch.inference_mode():
        logits = engine.model(torch.tensor([ids])).logits[0, -1].float()
    top = torch.topk(logits, 2)
    assert engine.tokenizer.decode([int(top.indices[0])]) == "The"
    assert float(top.values[0] - top.values[1]) > 1.0  # measured 1.7-1.8 in bf16 and float32
    assert "Paris" in await reply(engine, conversation(QUESTION), engine.new_session_state())


async def test_the_answer_holds_when_the_prompt_comes_from_the_cache(engine: TransformersLanguageModel) -> None:
    state = engine.new_session_state()
    greeting = await reply(engine, conversation("Hello!"), state)
    stats = GenerationStats()
    answer = await reply(engine, conversation("Hello!", greeting, QUESTION), state, stats)
    assert stats.cached_input_tokens >= len(engine.prompt_ids(conversation("Hello!")))
    assert "Paris" in answer


async def test_the_cache_holds_exactly_the_conversation_so_far(engine: TransformersLanguageModel) -> None:
    state = engine.new_session_state()
    first = await reply(engine, conversation("Name a colour."), state)
    prompt = engine.prompt_ids(conversation("Name a colour."))
    # The cache covers the prompt and the reply (less the last token, whose keys come next turn).
    assert state.token_ids[: len(prompt)] == prompt
    assert state.cache.get_seq_length() == len(state.token_ids)
    assert engine.tokenizer.decode(state.token_ids[len(prompt) :]) in first
    stats = GenerationStats()
    await reply(engine, conversation("Name a colour.", first, "Another one."), state, stats)
    second_prompt = engine.prompt_ids(conversation("Name a colour.", first, "Another one."))
    assert second_prompt[: len(prompt)] == prompt  # the second turn's prompt contains the first turn
    assert stats.input_tokens == len(second_prompt)
    assert stats.cached_input_tokens >= len(prompt)


async def test_closing_the_stream_stops_generation(engine: TransformersLanguageModel) -> None:
    state, stats = engine.new_session_state(), GenerationStats()
    request = GenerationRequest(conversation("Write a long poem about the sea."), GenerationParams(400))
    stream = engine.generate(request, state, stats)
    received = [await anext(stream) for _ in range(3)]
    await stream.aclose()  # waits until the worker has let go of the session state
    assert stats.finish_reason == "cancelled"
    assert stats.output_tokens <= len(received) + 2
    assert state.cache.get_seq_length() == len(state.token_ids)
