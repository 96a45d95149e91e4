"""``python -m services.llm``: run the LLM service (``--help`` lists the options)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from parley.v1 import conversation_pb2, conversation_pb2_grpc

from services.common.logs import configure_logging
from services.common.server import GrpcService
from services.common.settings import parse_settings
from services.llm import metrics
from services.llm.asr import SpeechRecognizer
from services.llm.backends import LanguageModel
from services.llm.servicer import ConversationServicer
from services.llm.sessions import SessionStore
from services.llm.settings import LlmSettings

SERVICE_NAME = conversation_pb2.DESCRIPTOR.services_by_name["ConversationService"].full_name


def load_engine(settings: LlmSettings) -> LanguageModel:
    if settings.backend == "vllm":
        from services.llm.backends.vllm_lm import VllmLanguageModel

        return VllmLanguageModel(settings)
    from services.llm.backends.transformers_lm import TransformersLanguageModel

    return TransformersLanguageModel(settings)


async def serve(settings: LlmSettings, load: Callable[[LlmSettings], LanguageModel] = load_engine) -> None:
    """Run the service until it is stopped; ``load`` makes the language model engine."""
    # The language model and the recogniser load side by side: start-up is their slower one.
    engine_loading = asyncio.to_thread(load, settings)
    recognizer_loading = asyncio.to_thread(SpeechRecognizer, settings)
    engine, loaded_recognizer = await asyncio.gather(engine_loading, recognizer_loading)
    recognizer: SpeechRecognizer | None = loaded_recognizer
    if engine.hears_audio:  # the model takes the audio itself; no separate recognition
        loaded_recognizer.close()
        recognizer = None
    sessions = SessionStore(
        settings.max_sessions, settings.session_idle_seconds, engine.new_session_state, settings.system_prompt
    )
    metrics.SESSIONS_MAX.set(settings.max_sessions)
    service = GrpcService(settings, "llm")
    servicer = ConversationServicer(settings, engine, recognizer, sessions, service.lifecycle)
    service.add(conversation_pb2_grpc.add_ConversationServiceServicer_to_server, servicer, SERVICE_NAME)
    expiry = asyncio.create_task(servicer.expire_idle_sessions())
    service.on_stop(expiry.cancel)
    service.on_stop(engine.close)
    if recognizer is not None:
        service.on_stop(recognizer.close)
    await service.run()


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(LlmSettings, argv)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
