"""``python -m services.edge``: run the edge (``--help`` lists the options)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal

from aiohttp import web

from services.common.logs import configure_logging
from services.common.memory import keep_large_blocks_returnable
from services.common.settings import parse_settings
from services.edge.app import build_app
from services.edge.settings import EdgeSettings
from services.edge.tls import LOOPBACK_HOSTS, ssl_context
from services.edge.webrtc import limit_ice_host_addresses

log = logging.getLogger("services.edge")


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback  # all of 127.0.0.0/8 and ::1
    except ValueError:
        return False


def check_exposure(settings: EdgeSettings) -> None:
    """Off loopback the API needs a token, unless the operator says in so many words that it does not."""
    if settings.host in LOOPBACK_HOSTS or _is_loopback_address(settings.host) or settings.api_token:
        return
    if not settings.insecure_no_auth:
        raise SystemExit(
            f"refusing to serve {settings.host} without a token: anyone who reaches it could use the models. "
            "Set --api-token (PARLEY_EDGE_API_TOKEN), or --insecure-no-auth to serve it open anyway."
        )
    log.warning("serving beyond loopback without a token (--insecure-no-auth): anyone who reaches it can use it")


async def serve(settings: EdgeSettings) -> None:
    check_exposure(settings)
    keep_large_blocks_returnable()  # clients' large events must not leave the edge bigger
    limit_ice_host_addresses(settings.ice_host_addresses)
    tls = ssl_context(settings)
    runner = web.AppRunner(build_app(settings), shutdown_timeout=settings.drain_seconds, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=tls)
    await site.start()
    port = runner.addresses[0][1]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"{'https' if tls else 'http'}://{host}:{port}/"
    log.info(
        "edge listening",
        extra={"url": url, "vad": settings.vad_address, "llm": settings.llm_address, "tts": settings.tts_address},
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("edge stopping: closing sessions")
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(EdgeSettings, argv)
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
