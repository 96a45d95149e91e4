"""A session's conversation as its client knows it: the items, in order, as the events said.

The session passes every event it sends through ``Conversation.record``, so the items here are
exactly what the client was told (added, transcribed, finished, truncated), which is what
``conversation.item.retrieve`` returns.
"""

from __future__ import annotations

from collections import OrderedDict

from openai.types import realtime as rt
from pydantic import BaseModel

from services.edge import events

# Items kept per session for retrieve: the newest; the LLM service bounds the history itself.
MAX_ITEMS = 512


class Conversation:
    def __init__(self, conversation_id: str) -> None:
        self.id = conversation_id
        self._items: OrderedDict[str, rt.ConversationItem] = OrderedDict()

    def record(self, event: BaseModel) -> None:
        """Keep what a server event says of the conversation's items."""
        if isinstance(event, rt.ConversationItemAdded | rt.ConversationItemDone):
            item_id = event.item.id
            if item_id is not None:
                self._items[item_id] = event.item.model_copy(deep=True)
                self._items.move_to_end(item_id)
                while len(self._items) > MAX_ITEMS:
                    self._items.popitem(last=False)
        elif isinstance(event, rt.ConversationItemInputAudioTranscriptionCompletedEvent):
            item = self._items.get(event.item_id)
            if isinstance(item, rt.RealtimeConversationItemUserMessage):
                for part in item.content:
                    if part.type == "input_audio":
                        part.transcript = event.transcript
        elif isinstance(event, events.ConversationItemTruncated):
            item = self._items.get(event.item_id)
            if isinstance(item, rt.RealtimeConversationItemAssistantMessage) and item.content:
                item.content[0].transcript = event.parley["transcript"]
        elif isinstance(event, rt.ConversationItemDeletedEvent):
            self._items.pop(event.item_id, None)

    def get(self, item_id: str) -> rt.ConversationItem | None:
        return self._items.get(item_id)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._items
