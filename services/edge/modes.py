"""The four conversation modes, as what each one does rather than its name.

- chat: the client commits audio (push-to-talk) or adds text and images, then asks for a
  response; nothing is detected on the server unless the client turns detection on.
- half_duplex: the VAD service hears the microphone continuously. Speech opens the user's turn
  at once (with the padding before it), so recognition runs while the user talks; the turn's end
  starts the reply. The microphone is heard as silence from then until the reply has played
  and a short guard after, so the assistant's own voice coming back through the speakers
  cannot start a turn.
- full_duplex: as half-duplex, but the microphone stays open. Speech over the assistant (unless
  the echo guard takes it for the assistant's own voice) pauses its voice at once and opens the
  user's next turn; if the speech lasts ``barge_in_min_speech_ms`` the reply is cancelled and
  cut to what was heard (a barge-in), and if it ends sooner (a cough, a short "mm-hm") the reply
  plays on.
- omni: full duplex, and the camera's pictures go with the user's speech.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from parley.v1 import conversation_pb2


class AgentState(enum.Enum):
    """What the assistant is doing, as the user experiences it."""

    LISTENING = "listening"  # no reply under way
    THINKING = "thinking"  # a reply is being made; nothing of it heard yet
    SPEAKING = "speaking"  # its voice is playing
    PAUSED = "paused"  # its voice is paused: the user speaks over it, not yet a barge-in


@dataclass(frozen=True)
class Mode:
    name: str
    contract: conversation_pb2.ConversationMode.ValueType  # as the LLM service knows it
    duplex: bool  # the microphone stays open while the assistant speaks; the user may interrupt
    deaf_while_answering: bool  # the microphone is heard as silence from the turn's end to the reply's end
    camera: bool  # the camera's pictures go with the user's speech

    def hears_user(self, state: AgentState) -> bool:
        """Whether speech now is the user's to be heard (and may open a turn)."""
        return state is AgentState.LISTENING or self.duplex


MODES = {
    "chat": Mode("chat", conversation_pb2.CONVERSATION_MODE_CHAT, False, False, False),
    "half_duplex": Mode("half_duplex", conversation_pb2.CONVERSATION_MODE_HALF_DUPLEX, False, True, False),
    "full_duplex": Mode("full_duplex", conversation_pb2.CONVERSATION_MODE_FULL_DUPLEX, True, False, False),
    "omni": Mode("omni", conversation_pb2.CONVERSATION_MODE_OMNI, True, False, True),
}
