"""Server events of the OpenAI Realtime API (GA), as plain dicts ready for JSON."""

from __future__ import annotations

import secrets
from typing import Any

Event = dict[str, Any]


def new_id(prefix: str) -> str:
    """An id in the API's style, e.g. ``item_5f1c...``."""
    return f"{prefix}_{secrets.token_hex(10)}"


def error(code: str, message: str, *, kind: str = "server_error", event_id: str | None = None) -> Event:
    return {
        "type": "error",
        "error": {"type": kind, "code": code, "message": message, "param": None, "event_id": event_id},
    }


def user_item(item_id: str, content: list[dict[str, Any]], status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": "user",
        "content": content,
    }


def assistant_item(item_id: str, part: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [part] if part else [],
    }


def response_object(
    response_id: str,
    status: str,
    modalities: list[str],
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    status_details: dict[str, Any] | None = None,
    parley: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "status_details": status_details,
        "output": output,
        "output_modalities": modalities,
        "conversation_id": None,
        "usage": usage,
        "metadata": None,
    }
    if parley is not None:
        # Parley's extension: the server's timings for this response (see the README).
        response["parley"] = parley
    return response


def usage(input_tokens: int, cached_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {"cached_tokens": cached_tokens, "text_tokens": input_tokens, "audio_tokens": 0},
        "output_token_details": {"text_tokens": output_tokens, "audio_tokens": 0},
    }
