"""Fixtures of the integration and browser tests: real service processes on loopback, real models,
real gRPC. (Unit tests use none of them; fixtures start only when asked for.)"""

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from tests.support.processes import (
    SHARED_LLM_MAX_SESSIONS,
    ServiceProcess,
    start_edge,
    start_scripted_llm,
    start_service,
)


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
    """The LLM service with its default (bundled) models, shared by every test that needs one.

    Many tests open sessions of their own and leave them to expire; room for 64 keeps the whole
    suite under the limit (the default 16 is exercised by its own small-capacity test).
    """
    service = start_service("services.llm", f"--max-sessions={SHARED_LLM_MAX_SESSIONS}", timeout=180)
    yield service
    assert service.stop() == 0, f"LLM service exited badly; log: {service.logs[-10:]}"


@pytest.fixture(scope="session")
def scripted_llm() -> Iterator[ServiceProcess]:
    """The LLM service with scripted replies, behind the edges of the edge's tests: they check
    what the edge does, which must not hang on the bundled model's words (they move with the CPU)."""
    service = start_scripted_llm(f"--max-sessions={SHARED_LLM_MAX_SESSIONS}")
    yield service
    assert service.stop() == 0, f"scripted LLM service exited badly; log: {service.logs[-10:]}"


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


@pytest.fixture(scope="module")
def edge_service(
    vad_service: ServiceProcess, scripted_llm: ServiceProcess, tts_service: ServiceProcess
) -> Iterator[ServiceProcess]:
    """The edge in front of the real VAD and TTS services and the scripted LLM service."""
    service = start_edge(vad_service, scripted_llm, tts_service)
    yield service
    assert service.stop() == 0, f"edge exited badly; log: {service.logs[-10:]}"
