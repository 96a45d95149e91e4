"""Language model engines behind one small interface; each engine in its own module."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from services.llm.backends.tools import ToolUse

# Model loading draws progress bars (GGUF de-quantisation, weight shards) that only clutter a
# service's log. tqdm reads this when it is first imported, which importing torch does.
os.environ.setdefault("TQDM_DISABLE", "1")


@dataclass(frozen=True)
class GenerationParams:
    max_output_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class GenerationRequest:
    """One reply to generate: the whole conversation as chat messages, newest last (function
    calls and results in the form of backends/tools.py)."""

    messages: list[dict[str, Any]]
    params: GenerationParams
    images: list[bytes] = field(default_factory=list)  # JPEG, for models that see
    audio: np.ndarray | None = None  # 16 kHz float32, for models that hear
    tools: ToolUse | None = None  # functions the prompt offers
    # The reply must be JSON valid under this schema (a required function call): the engine
    # generates it under the schema, token by token.
    json_schema: dict[str, Any] | None = None
    # The user's words at the end of the last message (its text without the closing
    # punctuation): an engine that scores ends of turn yields their EndOfTurnScore before the
    # reply's first text, read off the prompt's own computation.
    score_words: str | None = None


@dataclass(frozen=True)
class EndOfTurnScore:
    """The probability that a sentence or the user's message ends right after their words."""

    probability: float
    inference_ms: float
    computed_tokens: int


@dataclass
class GenerationStats:
    """Filled in by the engine as it works."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    # Reply tokens computed in one step with other replies' tokens (the transformers engine).
    shared_step_tokens: int = 0
    finish_reason: str = "stop"  # "stop", "length" or "cancelled"
    prefill_seconds: float = 0.0


class LanguageModel(Protocol):
    """What the conversation layer needs of an engine."""

    name: str
    sees_images: bool
    hears_audio: bool

    def new_session_state(self) -> Any:
        """Per-session engine state (a KV cache, say); kept between turns, dropped on reset."""

    def count_tokens(self, messages: list[dict[str, Any]], tools: ToolUse | None = None) -> int:
        """Prompt tokens of ``messages`` (and ``tools``) with the generation prompt, for fitting the context."""

    def generate(
        self, request: GenerationRequest, state: Any, stats: GenerationStats
    ) -> AsyncGenerator[str | EndOfTurnScore, None]:
        """Stream the reply as text deltas (and, asked for and able, the words' score first).
        Closing the iterator early (a cancelled turn) stops generation promptly; ``state`` then
        covers what was generated so far."""

    async def close(self) -> None: ...
