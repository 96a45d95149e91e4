"""Standard tooling works against the running service: grpcurl via reflection, health, /metrics."""

import base64
import json

import grpc
import pytest

from services.common.audio import float32_to_pcm16
from tests.support import speech
from tests.support.processes import ServiceProcess
from tests.support.tooling import grpcurl, json_stream, metric_value, scrape_metrics
from tests.support.vad_client import detect


def test_grpcurl_lists_and_describes_through_reflection(vad_service: ServiceProcess) -> None:
    services = grpcurl(vad_service, "list").split()
    assert "parley.v1.VoiceActivityService" in services
    assert "grpc.health.v1.Health" in services
    description = grpcurl(vad_service, "describe", "parley.v1.VoiceActivityService")
    assert "rpc Detect ( stream .parley.v1.DetectRequest ) returns ( stream .parley.v1.DetectResponse )" in description
    message = grpcurl(vad_service, "describe", "parley.v1.DetectConfig")
    assert "min_silence_ms" in message


@pytest.mark.parametrize("service_name", ["", "parley.v1.VoiceActivityService"])
def test_health_check_answers_serving(vad_service: ServiceProcess, service_name: str) -> None:
    reply = grpcurl(vad_service, "grpc.health.v1.Health/Check", flags=("-d", json.dumps({"service": service_name})))
    assert json.loads(reply) == {"status": "SERVING"}


def test_grpcurl_streams_audio_to_detect(vad_service: ServiceProcess) -> None:
    utterance = speech.trim(speech.speak("Hello from grpcurl.", 16000), 16000)
    audio, _ = speech.compose([0.5, utterance, 0.6], 16000)
    pcm = float32_to_pcm16(audio)
    messages = [{"config": {"sampleRate": 16000, "minSilenceMs": 300}}]
    messages += [{"audio": {"pcm16": base64.b64encode(pcm[i : i + 3200]).decode()}} for i in range(0, len(pcm), 3200)]
    output = grpcurl(
        vad_service,
        "parley.v1.VoiceActivityService/Detect",
        flags=("-d", "@"),
        stdin="\n".join(map(json.dumps, messages)),
    )
    events = [next(iter(k for k in event if k != "processed_samples")) for event in json_stream(output)]
    assert events == ["ready", "speech_started", "speech_ended"]


async def test_metrics_count_streams_chunks_and_inference(
    vad_service: ServiceProcess, vad_channel: grpc.aio.Channel
) -> None:
    before = scrape_metrics(vad_service)
    silence = speech.white_noise(16000, 0.001, seed=5)
    await detect(vad_channel, silence, chunk_ms=100)
    after = scrape_metrics(vad_service)
    assert metric_value(after, "parley_vad_streams_total") == metric_value(before, "parley_vad_streams_total") + 1
    assert metric_value(after, "parley_vad_chunks_total") == metric_value(before, "parley_vad_chunks_total") + 10
    assert metric_value(after, "parley_vad_streams_active") == 0
    windows = metric_value(after, "parley_vad_windows_total") - metric_value(before, "parley_vad_windows_total")
    assert windows == 16000 // 512
    assert metric_value(after, "parley_vad_inference_seconds_count") > metric_value(
        before, "parley_vad_inference_seconds_count"
    )
    assert (
        metric_value(after, "parley_vad_chunk_seconds_count")
        == metric_value(before, "parley_vad_chunk_seconds_count") + 10
    )
    assert 'parley_vad_inference_seconds_bucket{le="0.001"}' in after
