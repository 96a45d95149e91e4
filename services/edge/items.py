"""Conversation items a client adds: user input waiting for the next response, and the text of
assistant and system messages.

A user message waits in ``PendingInput`` until ``response.create`` sends it to the LLM service as
the turn's input; assistant and system messages go into the LLM service's history at once
(``AddMessages``). Either can be deleted by its item id until it is answered.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
from dataclasses import dataclass
from typing import Literal

from openai.types import realtime as rt
from parley.v1 import conversation_pb2
from PIL import Image

from services.edge import events, protocol
from services.edge.audio import INPUT_RATE, PcmResampler
from services.edge.pool import ReplicaLimits
from services.edge.protocol import ProtocolError

_MAX_IMAGE_PIXELS = 4096 * 4096

Kind = Literal["audio", "text", "image"]


@dataclass(frozen=True)
class UserInput:
    """One piece of a user item: 16 kHz PCM16 audio, text, or a JPEG picture."""

    item_id: str
    kind: Kind
    value: bytes | str

    @property
    def size(self) -> int:
        """Samples, characters or pictures: what the LLM service's per-turn limits count."""
        return len(self.value) // 2 if self.kind == "audio" else len(self.value) if self.kind == "text" else 1


class PendingInput:
    """User input waiting for the next response, within what one LLM turn may carry (the
    replica's limits): a client piling up items gets an error, not the edge's memory."""

    def __init__(self) -> None:
        self._inputs: list[UserInput] = []
        self.audio_item: str | None = None  # the newest item with audio (its transcript is reported)

    def __bool__(self) -> bool:
        return bool(self._inputs)

    @property
    def item_ids(self) -> list[str]:
        return list(dict.fromkeys(i.item_id for i in self._inputs))

    def check_room(self, added: dict[Kind, int], limits: ReplicaLimits, event_id: str | None) -> None:
        """ProtocolError if ``added`` (samples, characters, pictures) would not fit beside what waits."""
        caps: dict[Kind, tuple[int, str]] = {
            "audio": (int(limits.audio_seconds * INPUT_RATE), f"{limits.audio_seconds:g} s of audio"),
            "text": (limits.text_chars, f"{limits.text_chars} characters of text"),
            "image": (limits.images, f"{limits.images} images"),
        }
        for kind, amount in added.items():
            cap, what = caps[kind]
            if amount and sum(i.size for i in self._inputs if i.kind == kind) + amount > cap:
                raise ProtocolError(
                    "pending_input_limit",
                    f"the input waiting for a response would exceed {what}, the most one response can take; "
                    "send response.create (or input_audio_buffer.clear) first",
                    event_id,
                )

    def hold(self, inputs: list[UserInput], limits: ReplicaLimits, event_id: str | None) -> None:
        added: dict[Kind, int] = {"audio": 0, "text": 0, "image": 0}
        for piece in inputs:
            added[piece.kind] += piece.size
        self.check_room(added, limits, event_id)
        self._inputs += inputs
        audio = [i.item_id for i in inputs if i.kind == "audio"]
        if audio:
            self.audio_item = audio[-1]

    def remove(self, item_id: str) -> bool:
        """Forget a waiting item (False: none waits with that id)."""
        kept = [i for i in self._inputs if i.item_id != item_id]
        removed, self._inputs = len(kept) < len(self._inputs), kept
        if self.audio_item == item_id:
            self.audio_item = None
        return removed

    def take(self) -> list[UserInput]:
        """All of it, for a response; nothing waits after."""
        taken, self._inputs, self.audio_item = self._inputs, [], None
        return taken

    def texts_only(self) -> bool:
        return all(i.kind == "text" for i in self._inputs)


# The LLM service's message roles, by the API's names.
ROLES = {
    "user": conversation_pb2.MESSAGE_ROLE_USER,
    "assistant": conversation_pb2.MESSAGE_ROLE_ASSISTANT,
    "system": conversation_pb2.MESSAGE_ROLE_SYSTEM,
}


async def user_content(
    item: protocol.ConversationItem,
    item_id: str,
    event_id: str | None,
    pending: PendingInput,
    limits: ReplicaLimits,
) -> tuple[list[UserInput], list[events.UserContent]]:
    """A user message's parts as inputs for the LLM and as content for the item's events; its
    audio is refused before it is decoded if it cannot fit beside what ``pending`` holds."""
    inputs: list[UserInput] = []
    content: list[events.UserContent] = []
    for index, part in enumerate(item.content):
        if part.type in ("input_text", "text"):
            if not part.text:
                raise ProtocolError(
                    "invalid_value", "an input_text part needs text", event_id, f"item.content.{index}.text"
                )
            inputs.append(UserInput(item_id, "text", part.text))
            content.append(events.UserContent(type="input_text", text=part.text))
        elif part.type == "input_image":
            jpeg = await asyncio.to_thread(image_to_jpeg, part.image_url or "", event_id, index)
            inputs.append(UserInput(item_id, "image", jpeg))
            content.append(events.UserContent(type="input_image", image_url=None, detail=part.detail or "auto"))
        elif part.type == "input_audio":
            # Refused before the work of decoding and resampling when it cannot fit anyway.
            samples = len(part.audio or "") * 3 // 4 // 2 * INPUT_RATE // 24000
            pending.check_room({"audio": samples}, limits, event_id)
            try:
                pcm = base64.b64decode(part.audio or "", validate=True)
            except (binascii.Error, ValueError):
                raise ProtocolError(
                    "invalid_value", "input_audio is not valid base64", event_id, f"item.content.{index}.audio"
                ) from None
            audio = PcmResampler(24000, INPUT_RATE).convert(pcm[: len(pcm) // 2 * 2])
            inputs.append(UserInput(item_id, "audio", audio))
            content.append(events.UserContent(type="input_audio", transcript=None))
        else:
            raise ProtocolError(
                "invalid_value",
                f"a user message cannot hold {part.type!r} parts",
                event_id,
                f"item.content.{index}.type",
            )
    return inputs, content


def message_text(item: protocol.ConversationItem, event_id: str | None) -> str:
    """The text of an assistant or system message (an audio part by its transcript)."""
    allowed = {"assistant": ("output_text", "text", "output_audio"), "system": ("input_text", "text")}[item.role]
    texts = []
    for index, part in enumerate(item.content):
        if part.type not in allowed:
            raise ProtocolError(
                "invalid_value",
                f"a {item.role} message holds {' or '.join(allowed)} parts, not {part.type!r}",
                event_id,
                f"item.content.{index}.type",
            )
        text = part.transcript if part.type == "output_audio" else part.text
        if text:
            texts.append(text)
    if not texts:
        raise ProtocolError("invalid_value", f"a {item.role} message needs text", event_id, "item.content")
    return "\n".join(texts)


def history_message(
    item: protocol.ConversationItem | protocol.FunctionCallItem | protocol.FunctionCallOutputItem,
    item_id: str,
    event_id: str | None,
) -> tuple[conversation_pb2.HistoryMessage, rt.ConversationItem]:
    """An item that goes into the LLM's history at once, as the LLM takes it and as the
    conversation shows it."""
    if isinstance(item, protocol.FunctionCallOutputItem):
        return (
            conversation_pb2.HistoryMessage(
                item_id=item_id, role=conversation_pb2.MESSAGE_ROLE_TOOL, text=item.output, call_id=item.call_id
            ),
            events.function_call_output_item(item_id, item.call_id, item.output),
        )
    if isinstance(item, protocol.FunctionCallItem):
        call = conversation_pb2.FunctionCall(call_id=item.call_id, name=item.name, arguments=item.arguments)
        return (
            conversation_pb2.HistoryMessage(
                item_id=item_id, role=conversation_pb2.MESSAGE_ROLE_ASSISTANT, function_call=call
            ),
            events.function_call_item(item_id, item.call_id, item.name, item.arguments, "completed"),
        )
    text = message_text(item, event_id)
    if item.role == "assistant":
        audio = any(p.type == "output_audio" for p in item.content)
        shown = events.assistant_item(item_id, audio, text, "completed")
    else:
        shown = events.system_item(item_id, text)
    return conversation_pb2.HistoryMessage(item_id=item_id, role=ROLES[item.role], text=text), shown


def image_to_jpeg(data_url: str, event_id: str | None, index: int) -> bytes:
    """A data URL's image as JPEG bytes (JPEGs pass through), or ProtocolError."""
    param = f"item.content.{index}.image_url"
    header, _, payload = data_url.partition(",")
    if not header.startswith("data:image/") or ";base64" not in header:
        raise ProtocolError(
            "invalid_value", "image_url must be a base64 data URL (data:image/...;base64,...)", event_id, param
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("invalid_value", "image_url holds invalid base64", event_id, param) from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > _MAX_IMAGE_PIXELS:
                raise ProtocolError(
                    "invalid_value", f"image of {image.width}x{image.height} is too large", event_id, param
                )
            if image.format == "JPEG":
                image.load()
                return data
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=90)
            return out.getvalue()
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError("invalid_value", f"image_url is not a readable image ({exc})", event_id, param) from None
