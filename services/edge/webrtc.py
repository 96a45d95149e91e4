"""WebRTC calls: ``POST /v1/realtime/calls`` takes an SDP offer and answers it. The microphone
arrives as Opus RTP, the assistant's voice leaves on an outgoing track, and events travel on the
client's data channel ``oai-events``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import json
import logging
from typing import Any

import aioice.ice
from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.sdp import SessionDescription

from services.edge import metrics
from services.edge.audio import AssistantAudioTrack, WebRtcInputResampler
from services.edge.events import Event
from services.edge.http import json_error
from services.edge.inbound import EventInbox, InboundBudget
from services.edge.protocol import ProtocolError
from services.edge.registry import ServerFull, SessionRegistry
from services.edge.session import Session
from services.edge.settings import EdgeSettings

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "oai-events"


def limit_ice_host_addresses(addresses: list[str]) -> None:
    """Offer only these local addresses as ICE host candidates (aioice asks ``get_host_addresses``).

    By default aioice offers every address but loopback, and browsers skip loopback candidates
    unless told otherwise: limiting to 127.0.0.1 makes calls stay on this host.
    """
    if not addresses:
        return
    chosen = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


def rtc_configuration(settings: EdgeSettings) -> RTCConfiguration:
    # aiortc falls back to a public STUN server when given no ICE servers at all; an explicit
    # empty list keeps every call on the configured host addresses.
    servers = [
        RTCIceServer(urls=url, username=settings.ice_username, credential=settings.ice_credential)
        for url in settings.ice_servers
    ]
    return RTCConfiguration(iceServers=servers)


class EventChannel:
    """Server events onto the ``oai-events`` data channel, held back until it opens."""

    def __init__(self) -> None:
        self._channel: RTCDataChannel | None = None
        self._backlog: list[str] = []

    def send(self, event: Event) -> None:
        text = json.dumps(event)
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(text)
        elif len(self._backlog) < 10_000:
            self._backlog.append(text)

    async def flushed(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait (up to ``timeout``) until what was sent has left for the peer: the last events
        (an error saying why the call ends) must not be dropped by closing the connection."""
        channel = self._channel
        if channel is None or channel.readyState != "open" or channel.bufferedAmount == 0:
            return
        sent = asyncio.Event()
        channel.bufferedAmountLowThreshold = 0
        channel.once("bufferedamountlow", sent.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sent.wait(), timeout)

    def attach(self, channel: RTCDataChannel) -> None:
        self._channel = channel

        def flush() -> None:
            for text in self._backlog:
                channel.send(text)
            self._backlog.clear()

        if channel.readyState == "open":
            flush()
        else:
            channel.on("open", flush)


def _check_offer(sdp: str) -> None:
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:
        raise ProtocolError("invalid_sdp", f"the SDP offer could not be parsed ({exc})") from None
    kinds = [media.kind for media in description.media]
    if not kinds or "audio" not in kinds:
        raise ProtocolError("invalid_sdp", "the SDP offer has no audio section; a call needs audio")


def _form_text(value: object) -> str | None:
    """A multipart field's text, whether the client sent it as a plain field or as a part with a
    type of its own (``curl -F "sdp=<offer.sdp;type=application/sdp"``, ``session`` as
    application/json): aiohttp hands the latter over as a file."""
    if isinstance(value, str):
        return value
    if isinstance(value, web.FileField):
        return value.file.read().decode("utf-8", errors="replace")
    return None


async def _read_offer(request: web.Request, settings: EdgeSettings) -> tuple[str, dict[str, Any] | None]:
    if request.content_length is not None and request.content_length > settings.max_sdp_bytes + 64 * 1024:
        raise web.HTTPRequestEntityTooLarge(max_size=settings.max_sdp_bytes, actual_size=request.content_length)
    content_type = request.content_type
    if content_type == "application/sdp":
        body = await request.content.read(settings.max_sdp_bytes + 1)
        if len(body) > settings.max_sdp_bytes:
            raise ProtocolError("sdp_too_large", f"the SDP offer is larger than {settings.max_sdp_bytes} bytes")
        return body.decode("utf-8", errors="replace"), None
    if content_type == "multipart/form-data":
        form = await request.post()
        sdp, session = _form_text(form.get("sdp")), _form_text(form.get("session"))
        if sdp is None:
            raise ProtocolError("missing_sdp", "the multipart body needs an 'sdp' field with the offer")
        if len(sdp) > settings.max_sdp_bytes:
            raise ProtocolError("sdp_too_large", f"the SDP offer is larger than {settings.max_sdp_bytes} bytes")
        config = None
        if session:
            try:
                config = json.loads(session)
            except ValueError:
                raise ProtocolError("invalid_json", "the 'session' field is not valid JSON") from None
            if not isinstance(config, dict):
                raise ProtocolError("invalid_value", "the 'session' field must be a JSON object")
        return sdp, config
    raise ProtocolError(
        "unsupported_content_type", f"send the offer as application/sdp or multipart/form-data, not {content_type!r}"
    )


def shorten_audio_jitter_buffer(receiver: RTCRtpReceiver, prefetch: int = 1) -> None:
    """Release each received audio frame once ``prefetch`` more have arrived (one by default).

    aiortc's audio jitter buffer holds four frames (80 ms) before releasing one, a fixed delay
    on every word the user says; it does not help with loss (a missing packet stalls it either
    way). One frame of prefetch keeps reordering by one packet harmless. aiortc keeps the buffer
    in a private attribute: if a newer aiortc renames it, this does nothing (and says so).
    """
    name = "_RTCRtpReceiver__jitter_buffer"
    if isinstance(getattr(receiver, name, None), JitterBuffer):
        setattr(receiver, name, JitterBuffer(capacity=16, prefetch=prefetch))
    else:
        log.warning("cannot shorten aiortc's audio jitter buffer; input latency stays 80 ms higher")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _loopback_candidates_only(sdp: str) -> str:
    """Drop the offer's ICE candidates that are not on loopback: an edge limited to loopback
    addresses must not send connectivity checks anywhere else."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) > 4 and not _is_loopback(parts[4]):
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"


async def _pump_microphone(track: MediaStreamTrack, session: Session) -> None:
    resampler = WebRtcInputResampler()
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            session.push_input(resampler.convert(frame))  # type: ignore[arg-type]


class WebRtcCalls:
    def __init__(self, settings: EdgeSettings, registry: SessionRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._calls: dict[str, tuple[RTCPeerConnection, Session]] = {}
        # Calls that ended recently: hanging one up again is not an error (the page's hangup can
        # cross the edge noticing the closed data channel).
        self._ended: collections.deque[str] = collections.deque(maxlen=1024)
        self._tasks: set[asyncio.Task[None]] = set()

    def _keep(self, task: asyncio.Task[None]) -> None:
        """Hold a background task until it ends (the loop keeps only weak references)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def create(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/realtime/calls``: an SDP offer in, the SDP answer out (201)."""
        try:
            sdp, config = await _read_offer(request, self._settings)
            _check_offer(sdp)
        except ProtocolError as error:
            return json_error(400, error.code, error.message)
        channel = EventChannel()
        try:
            session = self._registry.open("webrtc", channel.send, request.query.get("model"))
        except ServerFull as full:
            return json_error(503, "server_full", str(full), headers={"Retry-After": str(full.retry_after_seconds)})
        try:
            if config is not None:
                session.state.update(config)
            answer, pc = await self._connect(sdp, session, channel)
        except ProtocolError as error:
            await self._registry.release(session)
            return json_error(400, error.code, error.message)
        except Exception as exc:
            await self._registry.release(session)
            log.info("offer refused", extra={"error": str(exc)})
            return json_error(400, "invalid_sdp", f"the SDP offer was refused: {exc}")
        self._calls[session.session_id] = (pc, session)
        self._keep(asyncio.create_task(self._hang_up_when_closed(session, pc, channel)))
        session.start()
        return web.Response(
            status=201,
            text=answer,
            content_type="application/sdp",
            headers={"Location": f"/v1/realtime/calls/{session.session_id}"},
        )

    async def _connect(self, sdp: str, session: Session, channel: EventChannel) -> tuple[str, RTCPeerConnection]:
        pc = RTCPeerConnection(rtc_configuration(self._settings))
        track = AssistantAudioTrack(on_started=session.on_output_started)
        session.output = track
        readers: list[asyncio.Task[None]] = []

        @pc.on("track")
        def on_track(remote: MediaStreamTrack) -> None:
            if remote.kind == "audio":
                readers.append(session.spawn(_pump_microphone(remote, session)))
            else:  # the camera: sampled (about once a second), used in omni mode
                readers.append(session.spawn(session.camera.run(remote)))

        @pc.on("datachannel")
        def on_datachannel(data_channel: RTCDataChannel) -> None:
            if data_channel.label != EVENTS_CHANNEL:
                return
            channel.attach(data_channel)

            @data_channel.on("close")
            def on_close() -> None:
                # A closed tab ends its call now rather than when ICE consent expires (~30 s).
                session.spawn(session.close("data channel closed"))

            # Events are handled one at a time, in the order they came, within the client's budget.
            inbox = EventInbox(InboundBudget.of_client(self._settings), refuse=session.emit)
            readers.append(session.spawn(inbox.handle(session.handle_text, session.closed)))

            @data_channel.on("message")
            def on_message(message: str | bytes) -> None:
                inbox.put(message)

        connected = asyncio.Event()

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected":
                connected.set()
            if pc.connectionState in ("failed", "closed"):
                await session.close(f"peer connection {pc.connectionState}")

        session.spawn(self._end_unless_connected(session, connected))

        if self._settings.ice_host_addresses and all(_is_loopback(a) for a in self._settings.ice_host_addresses):
            sdp = _loopback_candidates_only(sdp)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            pc.addTrack(track)  # takes the offer's audio transceiver; sendrecv or recvonly alike
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "audio":
                    shorten_audio_jitter_buffer(transceiver.receiver)
            await pc.setLocalDescription(await pc.createAnswer())
        except BaseException:
            for reader in readers:
                reader.cancel()
            await pc.close()
            raise
        return pc.localDescription.sdp, pc

    async def _end_unless_connected(self, session: Session, connected: asyncio.Event) -> None:
        """A call whose ICE never completes (an offer without candidates, unreachable ones)
        gives its slot back after --ice-connect-seconds instead of at the idle timeout."""
        try:
            await asyncio.wait_for(connected.wait(), self._settings.ice_connect_seconds)
        except TimeoutError:
            metrics.CALLS_NEVER_CONNECTED.inc()
            log.info("call never connected", extra={"session": session.session_id})
            await session.close("ice did not connect")

    async def _hang_up_when_closed(self, session: Session, pc: RTCPeerConnection, channel: EventChannel) -> None:
        await session.closed.wait()
        await channel.flushed(timeout=1.0)
        self._calls.pop(session.session_id, None)
        self._ended.append(session.session_id)
        await pc.close()
        await self._registry.release(session)

    async def hang_up(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/realtime/calls/{call_id}/hangup`` (and ``DELETE /v1/realtime/calls/{call_id}``)."""
        call_id = request.match_info["call_id"]
        call = self._calls.get(call_id)
        if call is None and call_id in self._ended:
            return web.json_response({"id": call_id, "status": "closed"})
        if call is None:
            return json_error(404, "call_not_found", "no call with that id is open on this server")
        await call[1].close("hung up")
        return web.json_response({"id": call[1].session_id, "status": "closed"})

    async def close_all(self) -> None:
        for _, session in list(self._calls.values()):
            await session.close("server shutting down")
