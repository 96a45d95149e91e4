"""HTTP helpers: OpenAI-style JSON errors."""

from __future__ import annotations

from aiohttp import web


def json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An HTTP error with the OpenAI API's JSON body: ``{"error": {"message", "type", "code"}}``."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "code": code, "param": None}}
    return web.json_response(body, status=status, headers=headers)
