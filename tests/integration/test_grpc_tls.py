"""gRPC over TLS: a model service started with --tls-cert/--tls-key serves only TLS, and an edge
given --grpc-tls-ca reaches it (and the others) through TLS."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.edge.tls import self_signed
from tests.support.processes import ServiceProcess, start_edge, start_service


async def _health(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return reply.status


async def test_a_service_serves_tls_and_the_edge_talks_to_it_over_tls(
    tmp_path: Path, scripted_llm: ServiceProcess, tts_service: ServiceProcess
) -> None:
    cert, key = self_signed(tmp_path, "127.0.0.1")
    vad = start_service("services.vad", f"--tls-cert={cert}", f"--tls-key={key}")
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(vad.grpc_address, credentials) as channel:
            assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(vad.grpc_address) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as refused:  # a TLS service does not answer plain text
                await _health(plain)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # The other services here are plain: an edge trusting the certificate reaches the VAD only.
        edge = start_edge(vad, scripted_llm, tts_service, f"--grpc-tls-ca={cert}")
        try:
            async with aiohttp.ClientSession() as http, http.get(edge.url + "readyz") as response:
                states = (await response.json())["services"]
            assert states["vad"] == "serving", states
            assert states["tts"] != "serving", "a plain service is not reached over TLS"
        finally:
            edge.stop()
    finally:
        assert vad.stop() == 0
