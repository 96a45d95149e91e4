"""Integration fixtures: real service processes on loopback, real models, real gRPC."""

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from tests.support.processes import ServiceProcess, start_service


@pytest.fixture(scope="module")
def vad_service() -> Iterator[ServiceProcess]:
    service = start_service("services.vad")
    yield service
    assert service.stop() == 0, f"VAD service exited badly; log: {service.logs[-10:]}"


@pytest.fixture
async def vad_channel(vad_service: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(vad_service.grpc_address) as channel:
        yield channel


@pytest.fixture(scope="session")
def llm_service() -> Iterator[ServiceProcess]:
    """The LLM service with its default (bundled) models, shared by the LLM tests."""
    service = start_service("services.llm", timeout=180)
    yield service
    assert service.stop() == 0, f"LLM service exited badly; log: {service.logs[-10:]}"


@pytest.fixture
async def llm_channel(llm_service: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(llm_service.grpc_address) as channel:
        yield channel


@pytest.fixture(scope="module")
def tts_service() -> Iterator[ServiceProcess]:
    service = start_service("services.tts")
    yield service
    assert service.stop() == 0, f"TTS service exited badly; log: {service.logs[-10:]}"


@pytest.fixture
async def tts_channel(tts_service: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(tts_service.grpc_address) as channel:
        yield channel


def start_edge(vad: ServiceProcess, llm: ServiceProcess, tts: ServiceProcess, *args: str) -> ServiceProcess:
    """The edge on a free loopback port, its ICE host candidates limited to 127.0.0.1."""
    return start_service(
        "services.edge",
        f"--vad-address={vad.grpc_address}",
        f"--llm-address={llm.grpc_address}",
        f"--tts-address={tts.grpc_address}",
        '--ice-host-addresses=["127.0.0.1"]',
        *args,
    )


@pytest.fixture(scope="module")
def edge_service(
    vad_service: ServiceProcess, llm_service: ServiceProcess, tts_service: ServiceProcess
) -> Iterator[ServiceProcess]:
    """The edge in front of the real VAD, LLM and TTS services."""
    service = start_edge(vad_service, llm_service, tts_service)
    yield service
    assert service.stop() == 0, f"edge exited badly; log: {service.logs[-10:]}"
