"""``python -m services.vad``: run the VAD service (``--help`` lists the options)."""

from __future__ import annotations

import asyncio

import numpy as np
from parley.v1 import vad_pb2, vad_pb2_grpc

from services.common.logs import configure_logging
from services.common.server import GrpcService
from services.common.settings import parse_settings
from services.vad.batcher import InferenceBatcher, InferenceJob
from services.vad.model import SileroVad, context_samples, initial_state, window_samples
from services.vad.servicer import VoiceActivityServicer
from services.vad.settings import VadSettings
from services.vad.turn_model import SmartTurnModel, TurnScorer

SERVICE_NAME = vad_pb2.DESCRIPTOR.services_by_name["VoiceActivityService"].full_name


async def serve(settings: VadSettings) -> None:
    model = SileroVad(settings.model_path, threads=settings.inference_threads)
    batcher = InferenceBatcher(model, settings.max_batch)
    batcher.start()
    # Warm up, so the first caller does not pay for onnxruntime's lazy initialisation.
    for rate in (8000, 16000):
        warmup = np.zeros((1, window_samples(rate)), dtype=np.float32)
        await batcher.run(InferenceJob(rate, warmup, initial_state(), np.zeros(context_samples(rate), np.float32)))
    turn_scorer = None
    if settings.turn_detection:
        turn_scorer = TurnScorer(SmartTurnModel(settings.turn_model_path), settings.turn_threads)
        await turn_scorer.score(np.zeros(16000, np.float32), 16000)
    service = GrpcService(settings, "vad")
    service.add(
        vad_pb2_grpc.add_VoiceActivityServiceServicer_to_server,
        VoiceActivityServicer(settings, batcher, service.lifecycle, turn_scorer),
        SERVICE_NAME,
    )
    service.on_stop(batcher.close)
    if turn_scorer is not None:
        service.on_stop(turn_scorer.close)
    await service.run()


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(VadSettings, argv)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
