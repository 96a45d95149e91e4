"""The edge's HTTP application: call page, Realtime API (WebRTC + WebSocket), health, metrics."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import prometheus_client
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.edge import events
from services.edge.admission import Admission
from services.edge.config import AVAILABLE_MODES
from services.edge.http import json_error
from services.edge.models import ModelServices
from services.edge.registry import SessionRegistry
from services.edge.settings import EdgeSettings
from services.edge.webrtc import WebRtcCalls
from services.edge.websocket import WebSocketEndpoint

STATIC = Path(__file__).parent / "static"
SETTINGS_KEY = web.AppKey("settings", EdgeSettings)
SERVICES_KEY = web.AppKey("services", ModelServices)
REGISTRY_KEY = web.AppKey("registry", SessionRegistry)
CALLS_KEY = web.AppKey("calls", WebRtcCalls)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _authorized(request: web.Request, token: str) -> bool:
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    # Browsers cannot set headers on a WebSocket; OpenAI's convention passes the key as a subprotocol.
    for protocol in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        protocol = protocol.strip()
        if protocol.startswith("openai-insecure-api-key."):
            offered = protocol.removeprefix("openai-insecure-api-key.")
    return hmac.compare_digest(offered.encode(), token.encode())


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Token check on the API, and JSON (not HTML) errors for API clients."""
    settings = request.app[SETTINGS_KEY]
    api = request.path.startswith("/v1/")
    if api and settings.api_token and not _authorized(request, settings.api_token):
        return json_error(401, "invalid_api_key", "missing or wrong API token (Authorization: Bearer <token>)")
    try:
        response = await handler(request)
        if request.path.startswith("/static/"):
            # Revalidate on every load, so an upgraded edge never runs an old app.js under a new page.
            response.headers["Cache-Control"] = "no-cache"
        return response
    except web.HTTPException as exc:
        if not api or exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status, "bad_request")
        return json_error(
            exc.status, code, exc.reason if exc.status != 413 else f"the request body is too large ({exc.text})"
        )


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _page_config(request: web.Request) -> web.StreamResponse:
    """What the call page needs to know: ICE servers, modes, limits."""
    settings = request.app[SETTINGS_KEY]
    ice = [{"urls": url} for url in settings.ice_servers]
    if settings.ice_username:
        for server in ice:
            server.update(username=settings.ice_username, credential=settings.ice_credential or "")
    return web.json_response(
        {
            "ice_servers": ice,
            "modes": list(AVAILABLE_MODES),
            "default_mode": settings.default_mode,
            "idle_timeout_seconds": settings.idle_timeout_seconds,
        }
    )


async def _health(request: web.Request) -> web.StreamResponse:
    registry = request.app[REGISTRY_KEY]
    return web.json_response({"status": "ok", "sessions": len(registry.sessions)})


async def _ready(request: web.Request) -> web.StreamResponse:
    """200 when every model service answers its health check as SERVING, else 503 naming who does not."""
    services = request.app[SERVICES_KEY]

    async def check(channel: grpc.aio.Channel) -> str:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name.lower()
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status).lower()

    names = list(services.channels)
    states = dict(zip(names, await asyncio.gather(*(check(services.channels[n]) for n in names)), strict=True))
    replicas = list(services.pool.replicas.values())
    replica_states = await asyncio.gather(*(check(r.channel) for r in replicas))
    # Ready with at least one serving LLM replica: sessions can be placed (the rest wait in line).
    states["llm"] = "serving" if "serving" in replica_states else (replica_states[0] if replica_states else "none")
    ready = all(state == "serving" for state in states.values())
    return web.json_response({"ready": ready, "services": states}, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.StreamResponse:
    return web.Response(
        body=prometheus_client.generate_latest(), headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}
    )


def build_app(settings: EdgeSettings) -> web.Application:
    app = web.Application(middlewares=[api_errors], client_max_size=settings.max_sdp_bytes + 64 * 1024)
    services = ModelServices(settings)
    admission = Admission(services.pool, settings.queue_eta_prior_seconds, max_active=settings.max_sessions)
    services.pool.on_room = admission.room_changed
    registry = SessionRegistry(settings, services, admission)
    calls = WebRtcCalls(settings, registry)
    websocket = WebSocketEndpoint(settings, registry)
    app[SETTINGS_KEY], app[SERVICES_KEY], app[REGISTRY_KEY], app[CALLS_KEY] = settings, services, registry, calls
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.router.add_get("/v1/realtime", websocket.handle)
    app.router.add_post("/v1/realtime/calls", calls.create)
    app.router.add_post("/v1/realtime/calls/{call_id}/hangup", calls.hang_up)
    app.router.add_delete("/v1/realtime/calls/{call_id}", calls.hang_up)
    app.router.add_get("/v1/parley/config", _page_config)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/readyz", _ready)
    app.router.add_get("/metrics", _metrics)

    async def startup(app: web.Application) -> None:
        await services.pool.check()  # the replicas' room is known before the first session
        services.pool.start()

    async def shutdown(app: web.Application) -> None:
        # Every client hears why and gets a clean end (a close frame, a closed peer connection)
        # within the drain, instead of a dropped connection when the process exits.
        going = events.error("server_shutting_down", "The server is shutting down; please reconnect in a moment.")
        await registry.close_all("server shutting down", going)
        await calls.close_all()
        await services.close()

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    return app
