"""``python -m services.tts``: run the TTS service (``--help`` lists the options)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from parley.v1 import speech_pb2, speech_pb2_grpc

from services.common.logs import configure_logging
from services.common.server import GrpcService
from services.common.settings import parse_settings
from services.tts.backends import Cancellation, SpeechVoice
from services.tts.scheduler import SynthesisScheduler
from services.tts.servicer import SpeechSynthesisServicer
from services.tts.settings import TtsSettings
from services.tts.voices import VoiceCatalog, load_voices

SERVICE_NAME = speech_pb2.DESCRIPTOR.services_by_name["SpeechSynthesisService"].full_name

log = logging.getLogger("services.tts")


def _say_hello(voice: SpeechVoice, cancellation: Cancellation) -> None:
    for _ in voice.synthesize("Hello.", 1.0, cancellation):
        pass


async def warm_up(voices: VoiceCatalog, scheduler: SynthesisScheduler) -> None:
    """Synthesise a word with every voice, so the first caller does not pay for lazy initialisation."""
    for info in voices.infos():
        started = time.perf_counter()
        await scheduler.run(functools.partial(_say_hello, voices.get(info.name)), deadline=0.0)
        log.info("voice ready", extra={"voice": info.name, "warmup_s": round(time.perf_counter() - started, 3)})


async def serve(settings: TtsSettings) -> None:
    voices = await asyncio.to_thread(load_voices, settings)
    scheduler = SynthesisScheduler(settings.synthesis_threads)
    scheduler.start()
    await warm_up(voices, scheduler)
    service = GrpcService(settings, "tts")
    service.add(
        speech_pb2_grpc.add_SpeechSynthesisServiceServicer_to_server,
        SpeechSynthesisServicer(settings, voices, scheduler, service.lifecycle),
        SERVICE_NAME,
    )
    # Run in reverse: worker threads stop before the voices they use are released.
    service.on_stop(voices.close)
    service.on_stop(scheduler.close)
    await service.run()


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(TtsSettings, argv)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
