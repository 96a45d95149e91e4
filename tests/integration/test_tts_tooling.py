"""Standard tooling works against the running TTS service: grpcurl via reflection, health, /metrics."""

import base64
import json

import grpc
import numpy as np
import pytest

from tests.support.processes import ServiceProcess
from tests.support.tooling import grpcurl, json_stream, metric_value, scrape_metrics
from tests.support.tts_client import synthesize


def test_grpcurl_lists_and_describes_through_reflection(tts_service: ServiceProcess) -> None:
    services = grpcurl(tts_service, "list").split()
    assert "parley.v1.SpeechSynthesisService" in services
    assert "grpc.health.v1.Health" in services
    description = grpcurl(tts_service, "describe", "parley.v1.SpeechSynthesisService")
    assert (
        "rpc Synthesize ( stream .parley.v1.SynthesizeRequest ) returns ( stream .parley.v1.SynthesizeResponse )"
        in description
    )
    assert "rpc ListVoices ( .parley.v1.ListVoicesRequest ) returns ( .parley.v1.ListVoicesResponse )" in description
    assert "sample_rate" in grpcurl(tts_service, "describe", "parley.v1.SynthesisConfig")


@pytest.mark.parametrize("service_name", ["", "parley.v1.SpeechSynthesisService"])
def test_health_check_answers_serving(tts_service: ServiceProcess, service_name: str) -> None:
    reply = grpcurl(tts_service, "grpc.health.v1.Health/Check", flags=("-d", json.dumps({"service": service_name})))
    assert json.loads(reply) == {"status": "SERVING"}


def test_grpcurl_lists_voices(tts_service: ServiceProcess) -> None:
    reply = json.loads(grpcurl(tts_service, "parley.v1.SpeechSynthesisService/ListVoices"))
    assert reply == {
        "voices": [{"name": "en_US-joe-medium", "language": "en-US", "native_sample_rate": 22050, "backend": "piper"}],
        "default_voice": "en_US-joe-medium",
    }


def test_grpcurl_synthesizes_speech(tts_service: ServiceProcess) -> None:
    messages = [
        {"config": {"sampleRate": 16000}},
        {"text": "Hello from grpcurl, "},
        {"text": "in two pieces."},
        {"endOfText": {}},
    ]
    output = grpcurl(
        tts_service,
        "parley.v1.SpeechSynthesisService/Synthesize",
        flags=("-d", "@"),
        stdin="\n".join(map(json.dumps, messages)),
    )
    events = json_stream(output)
    kinds = [next(iter(event)) for event in events]
    assert kinds[0] == "audio" and kinds[-1] == "done"
    assert [event["segment"]["text"] for event in events if "segment" in event] == [
        "Hello from grpcurl,",
        "in two pieces.",
    ]
    pcm = b"".join(base64.b64decode(event["audio"]["pcm16"]) for event in events if "audio" in event)
    assert int(events[-1]["done"]["total_samples"]) == len(pcm) // 2 > 16000
    assert np.abs(np.frombuffer(pcm, "<i2")).max() > 3000


async def test_metrics_count_streams_characters_audio_and_latency(
    tts_service: ServiceProcess, tts_channel: grpc.aio.Channel
) -> None:
    before = scrape_metrics(tts_service)
    text = "Metrics, please. Count these characters."
    synthesis = await synthesize(tts_channel, text, sample_rate=16000)
    after = scrape_metrics(tts_service)

    def grew(name: str) -> float:
        return metric_value(after, name) - metric_value(before, name)

    assert grew("parley_tts_streams_total") == 1
    assert metric_value(after, "parley_tts_streams_active") == 0
    pieces = ["Metrics,", "please.", "Count these characters."]
    assert [segment.text for segment in synthesis.segments] == pieces
    assert grew("parley_tts_segments_total") == 3
    assert grew("parley_tts_characters_total") == sum(map(len, pieces))
    assert grew("parley_tts_characters_received_total") == len(text)
    assert grew("parley_tts_audio_seconds_total") == pytest.approx(len(synthesis.audio) / 16000)
    assert grew("parley_tts_first_audio_seconds_count") == 1
    assert grew("parley_tts_realtime_factor_count") == 3
    assert grew("parley_tts_synthesis_seconds_count") == 3
    assert grew("parley_tts_queue_wait_seconds_count") == 3
    assert metric_value(after, "parley_tts_backlog_characters") == 0
    assert 'parley_tts_realtime_factor_bucket{le="0.1"}' in after
