"""The frame of every streaming call a Parley service serves, and the one type of a refused request.

Each service's streaming handler (VAD ``Detect``, TTS ``Synthesize``, LLM ``Respond``) does the
same around its own work: refuse a call beyond the service's capacity, number the stream, count
it in the service's gauges, read requests only until the server drains, and end the call with a
status and a message the client can act on: a ``RequestError``'s, UNAVAILABLE when draining,
INTERNAL (logged with its traceback) for a bug. ``StreamGuard`` is that frame, written once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from prometheus_client import Counter, Gauge

from services.common.server import Lifecycle, RequestError, ServerDraining, abort_after_input

log = logging.getLogger(__name__)

Request = TypeVar("Request")
Response = TypeVar("Response")

# Statuses sent at once: the client has nothing to fix, and waiting for its input helps nobody.
_AT_ONCE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)


@dataclass(frozen=True)
class StreamMetrics:
    """A service's stream metrics: opened (a counter), open now (a gauge), ended with an error
    status (a counter labelled by ``code``). The first two may be left out."""

    errors: Counter
    opened: Counter | None = None
    active: Gauge | None = None


class StreamGuard:
    """``serve(requests, context, handler)`` runs ``handler(requests, stream_id)`` inside the frame."""

    def __init__(
        self,
        service: str,
        lifecycle: Lifecycle,
        metrics: StreamMetrics,
        max_streams: int | None = None,
        draining_message: str = "the server is shutting down; open a new stream",
    ) -> None:
        self._service = service  # as the client is told: "this VAD server is at capacity"
        self._lifecycle = lifecycle
        self._metrics = metrics
        self._max_streams = max_streams
        self._draining_message = draining_message
        self._ids = itertools.count(1)
        self.active = 0

    async def serve(
        self,
        request_iterator: AsyncIterator[Request],
        context: grpc.aio.ServicerContext,
        handler: Callable[[AsyncIterator[Request], int], AsyncGenerator[Response, None]],
    ) -> AsyncGenerator[Response, None]:
        metrics = self._metrics
        if self._max_streams is not None and self.active >= self._max_streams:
            metrics.errors.labels(grpc.StatusCode.RESOURCE_EXHAUSTED.name).inc()
            await abort_after_input(
                context,
                request_iterator,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this {self._service} server is at capacity ({self._max_streams} streams); retry later or elsewhere",
            )
        stream_id = next(self._ids)
        self.active += 1
        if metrics.opened is not None:
            metrics.opened.inc()
        if metrics.active is not None:
            metrics.active.inc()
        log.debug("stream opened", extra={"stream": stream_id, "peer": context.peer()})
        error: RequestError | None = None
        try:
            async with contextlib.aclosing(self._lifecycle.requests(request_iterator)) as requests:
                try:
                    async with contextlib.aclosing(handler(requests, stream_id)) as responses:
                        async for response in responses:
                            yield response
                except RequestError as exc:
                    error = exc
                except ServerDraining:
                    error = RequestError(self._draining_message, grpc.StatusCode.UNAVAILABLE)
                except (asyncio.CancelledError, GeneratorExit):
                    # The client cancelled (or went away): grpc cancels the handler's task, or
                    # closes it as a generator if it was waiting to send.
                    metrics.errors.labels(grpc.StatusCode.CANCELLED.name).inc()
                    log.debug("stream cancelled", extra={"stream": stream_id})
                    raise
                except Exception:
                    log.exception("stream failed", extra={"stream": stream_id})
                    error = RequestError(f"the {self._service} server failed; see its log", grpc.StatusCode.INTERNAL)
        finally:
            self.active -= 1
            if metrics.active is not None:
                metrics.active.dec()
        if error is None:
            return
        metrics.errors.labels(error.code.name).inc()
        log.info("stream ended", extra={"stream": stream_id, "code": error.code.name, "reason": str(error)})
        if error.code in _AT_ONCE:
            await context.abort(error.code, str(error))
        # Bad input: read what the client is still sending first, so that it gets this status
        # rather than a failed write.
        await abort_after_input(context, request_iterator, error.code, str(error))
