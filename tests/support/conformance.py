"""Server events checked against the OpenAI Realtime API (GA) as the official SDK defines it.

Every event a test client receives (``RealtimeSocket``, ``RealtimeCall``) is validated here in
pydantic's strict mode against the SDK's model for its type; Parley's own ``parley.*`` events
against Parley's models. An event type with no model fails, as does any field of the wrong
name's type or value. The event types seen in the test run are counted in ``SEEN``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, get_args

from openai.types.realtime import RealtimeServerEvent
from pydantic import BaseModel, ValidationError

from services.edge import events

SEEN: Counter[str] = Counter()


def _models() -> dict[str, type[BaseModel]]:
    union, *_ = get_args(RealtimeServerEvent)  # Annotated[Union[...], the SDK's discriminator note]
    models = {}
    for model in (*get_args(union), *events.PARLEY_EVENTS):
        (event_type,) = get_args(model.model_fields["type"].annotation)
        models[event_type] = model
    return models


MODELS = _models()


class NonConformingEvent(AssertionError):
    pass


def check_server_event(text: str | bytes) -> dict[str, Any]:
    """The event as a dict, once it validates strictly; NonConformingEvent otherwise."""
    event = json.loads(text)
    event_type = event.get("type") if isinstance(event, dict) else None
    model = MODELS.get(event_type) if isinstance(event_type, str) else None
    if model is None:
        raise NonConformingEvent(f"no Realtime API type {event_type!r}: {str(text)[:300]}")
    try:
        model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise NonConformingEvent(f"{event_type} does not conform: {exc}\n{str(text)[:1000]}") from None
    SEEN[event_type] += 1
    return event
