"""The one way a Parley service starts: a ``grpc.aio`` server with health checking, reflection,
a Prometheus side port, message size limits and a bounded graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from typing import Any, TypeVar

import grpc
import prometheus_client
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

T = TypeVar("T")


class ServerDraining(Exception):
    """Raised into a streaming handler when the server starts to shut down."""


class RequestError(Exception):
    """A request the service refuses: the call ends with ``code`` and this message, which says
    what to do about it. The one type every service raises for a client's error."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidRequest(RequestError, ValueError):
    """A request the client must fix (INVALID_ARGUMENT)."""


class Lifecycle:
    """What handlers need to know about the server's life: whether it is draining."""

    def __init__(self) -> None:
        self.draining = asyncio.Event()

    async def requests(self, request_iterator: AsyncIterable[T]) -> AsyncGenerator[T, None]:
        """Yield requests until the client half-closes; raise ServerDraining once draining starts.

        Long-lived streams (a VAD stream lasts as long as a call) would otherwise hold the
        server up until the drain deadline and then be cut off without a useful status.
        """
        iterator = aiter(request_iterator)
        drain_wait = asyncio.ensure_future(self.draining.wait())
        next_request: asyncio.Future[T] | None = None
        try:
            while True:
                next_request = asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait({next_request, drain_wait}, return_when=asyncio.FIRST_COMPLETED)
                if next_request not in done:
                    raise ServerDraining
                try:
                    request = next_request.result()
                except StopAsyncIteration:
                    return
                except DecodeError as exc:  # bytes that are no such message, or text that is not UTF-8
                    raise InvalidRequest(
                        f"a request could not be parsed ({exc}): not this method's message, or text not UTF-8"
                    ) from None
                yield request
        finally:
            drain_wait.cancel()
            if next_request is not None:
                next_request.cancel()


# How long a call that failed on bad input keeps reading before its status is sent.
ERROR_LINGER_SECONDS = 1.0


async def abort_after_input(
    context: grpc.aio.ServicerContext,
    requests: AsyncIterable[object],
    code: grpc.StatusCode,
    message: str,
    linger_seconds: float = ERROR_LINGER_SECONDS,
) -> None:
    """End a streaming call with an error, first reading (and dropping) what the client is still
    sending, until it half-closes or ``linger_seconds`` pass.

    A client that writes while the server closes the stream can lose the status: grpc-python's
    aio client replaces it with INTERNAL "Internal error from Core" when its write fails. A
    client that ends its input promptly thus always sees the real code and message.
    """
    with contextlib.suppress(Exception):
        async with asyncio.timeout(linger_seconds):
            async for _ in requests:
                pass
    await context.abort(code, message)


class GrpcService:
    """A gRPC server plus its health service, reflection and metrics port.

    Usage: ``add()`` each servicer, then ``await run()``, which serves until SIGTERM/SIGINT
    (or ``stop()``) and then drains.
    """

    def __init__(self, settings: ServiceSettings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.lifecycle = Lifecycle()
        self.health = health.aio.HealthServicer()
        limit = settings.max_message_bytes
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # Let clients keep idle streams alive with pings without being sent GOAWAY.
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ]
        )
        self._service_names: list[str] = []
        self._stop_requested = asyncio.Event()
        self._on_stop: list[Callable[[], object]] = []
        self.port = 0
        self.metrics_port = 0

    def add(self, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any, service_name: str) -> None:
        """Register a servicer (``add_XServicer_to_server``) under its full service name."""
        add_to_server(servicer, self.server)
        self._service_names.append(service_name)

    def on_stop(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` after the gRPC server has stopped (release models, threads...);
        a coroutine it returns is awaited."""
        self._on_stop.append(callback)

    def stop(self) -> None:
        """Ask ``run()`` to drain and return (what SIGTERM does)."""
        self._stop_requested.set()

    async def start(self) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server)
        address = f"{self.settings.host}:{self.settings.port}"
        if self.settings.tls_cert is not None and self.settings.tls_key is not None:
            credentials = grpc.ssl_server_credentials(
                [(self.settings.tls_key.read_bytes(), self.settings.tls_cert.read_bytes())]
            )
            self.port = self.server.add_secure_port(address, credentials)
        else:
            self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot bind gRPC port {address}")
        if self.settings.metrics_port >= 0:
            httpd, _ = prometheus_client.start_http_server(self.settings.metrics_port, addr=self.settings.host)
            self.metrics_port = httpd.server_port
            self.on_stop(httpd.shutdown)
        await self.server.start()
        for service_name in ("", *self._service_names):
            await self.health.set(service_name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "%s listening",
            self.name,
            extra={"grpc": f"{self.settings.host}:{self.port}", "metrics": self._metrics_url()},
        )

    def _metrics_url(self) -> str:
        if self.settings.metrics_port < 0:
            return "disabled"
        return f"http://{self.settings.host}:{self.metrics_port}/metrics"

    async def run(self) -> None:
        """Start, serve until asked to stop, then drain within ``drain_seconds``."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        await self.start()
        await self._stop_requested.wait()
        await self.drain()

    async def drain(self) -> None:
        grace = self.settings.drain_seconds
        log.info("%s draining", self.name, extra={"grace_s": grace})
        # Health first, so load balancers stop sending new calls while open ones finish.
        await self.health.enter_graceful_shutdown()
        self.lifecycle.draining.set()
        await self.server.stop(grace)
        for callback in reversed(self._on_stop):
            result = callback()
            if inspect.isawaitable(result):
                await result
        log.info("%s stopped", self.name)
