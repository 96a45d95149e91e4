"""The LLM replicas an edge places sessions on (the MiniCPM-o gateway's worker pool).

Replicas come from ``--llm-addresses`` (or the single ``--llm-address``) and, with
``--llm-dns``, from the DNS records of a name such as a headless Kubernetes Service, re-read at
every check. Every ``--replica-check-seconds`` each replica is asked ``GetLoad``: one that does
not answer is taken out (no new sessions go to it) and put back when it answers again. A session
is pinned to one replica for its life, because its history and KV cache live there; new
sessions go to the healthy replica with the most room. A replica's room is its own
``max_sessions`` (from GetLoad), or ``--llm-sessions-per-replica`` if that is lower, less the
sessions this edge has pinned to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from parley.v1 import conversation_pb2, conversation_pb2_grpc

from services.common.limits import MAX_OUTPUT_TOKENS_API
from services.edge import metrics
from services.edge.settings import EdgeSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplicaLimits:
    """What a replica lets one turn carry and ask for (its GetLoad): the caps on input a session
    piles up before a response, and on a reply's length. Defaults: the LLM service's, and the API's."""

    audio_seconds: float = 120.0
    text_chars: int = 16_000
    images: int = 8
    max_output_tokens: int = MAX_OUTPUT_TOKENS_API
    # The recogniser's languages, its default first; empty: not known (any is passed on).
    languages: tuple[str, ...] = ()
    # Whether the replica's engine scores the user's words as ends of turn (semantic_vad's words).
    scores_end_of_turn: bool = True

    def tightest(self, other: ReplicaLimits) -> ReplicaLimits:
        """What every one of two replicas allows: the smaller caps, the languages both know."""
        if not self.languages or not other.languages:
            languages = self.languages or other.languages
        else:
            languages = tuple(language for language in self.languages if language in other.languages)
        return ReplicaLimits(
            min(self.audio_seconds, other.audio_seconds),
            min(self.text_chars, other.text_chars),
            min(self.images, other.images),
            min(self.max_output_tokens, other.max_output_tokens),
            languages,
            self.scores_end_of_turn and other.scores_end_of_turn,
        )


@dataclass(eq=False)
class Replica:
    address: str
    channel: grpc.aio.Channel
    stub: conversation_pb2_grpc.ConversationServiceStub
    healthy: bool = False
    capacity: int = 0
    limits: ReplicaLimits | None = None  # None: not known yet
    sessions: set[str] = field(default_factory=set)
    from_dns: bool = False

    @property
    def room(self) -> int:
        return self.capacity - len(self.sessions) if self.healthy else 0


class LlmPool:
    def __init__(
        self,
        settings: EdgeSettings,
        make_channel: Callable[[str], grpc.aio.Channel],
        on_room: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._make_channel = make_channel
        self.on_room = on_room  # a slot may have opened: the admission queue moves on
        self.replicas: dict[str, Replica] = {}
        # Listed replicas; with --llm-dns alone, DNS finds them all (the default address is not one).
        static = settings.llm_addresses or ([] if settings.llm_dns else [settings.llm_address])
        for address in static:
            self._add(address, from_dns=False)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Check every replica_check_seconds from now on (after the first ``check()``)."""
        self._task = asyncio.create_task(self._check_forever())

    @property
    def capacity(self) -> int:
        return sum(r.capacity for r in self.replicas.values() if r.healthy)

    @property
    def room(self) -> int:
        return sum(r.room for r in self.replicas.values())

    @property
    def limits(self) -> ReplicaLimits:
        """What every replica allows, for sessions not yet placed."""
        limits = ReplicaLimits()
        for replica in self.replicas.values():
            if replica.limits is not None:
                limits = limits.tightest(replica.limits)
        return limits

    def place(self, session_id: str) -> Replica | None:
        """Pin a session to the healthy replica with the most room; None when all are full."""
        best = max(self.replicas.values(), key=lambda r: r.room, default=None)
        if best is None or best.room <= 0:
            return None
        best.sessions.add(session_id)
        self._export(best)
        return best

    def release(self, session_id: str) -> None:
        for replica in self.replicas.values():
            if session_id in replica.sessions:
                replica.sessions.discard(session_id)
                self._export(replica)
                self.on_room()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for replica in self.replicas.values():
            await replica.channel.close()

    def _add(self, address: str, from_dns: bool) -> Replica:
        channel = self._make_channel(address)
        replica = Replica(address, channel, conversation_pb2_grpc.ConversationServiceStub(channel), from_dns=from_dns)
        self.replicas[address] = replica
        self._export(replica)
        return replica

    async def _check_forever(self) -> None:
        while True:  # start() follows the first check (the edge makes it before serving)
            await asyncio.sleep(self._settings.replica_check_seconds)  # the check period, not a race
            with contextlib.suppress(Exception):  # a failed round must not end the checks
                await self.check()

    async def check(self) -> None:
        """One round: re-read DNS, ask every replica for its load, take out or put back."""
        if self._settings.llm_dns:
            await self._refresh_dns(self._settings.llm_dns)
        replicas = list(self.replicas.values())
        loads = await asyncio.gather(*(self._load(r) for r in replicas))
        room_before = self.room
        for replica, load in zip(replicas, loads, strict=True):
            was = replica.healthy
            replica.healthy = load is not None
            if load is not None:
                limit = self._settings.llm_sessions_per_replica or load.max_sessions
                replica.capacity = min(load.max_sessions, limit) if load.max_sessions else limit
                if load.max_turn_text_chars:  # a replica that reports them
                    replica.limits = ReplicaLimits(
                        load.max_turn_audio_seconds,
                        load.max_turn_text_chars,
                        load.max_turn_images,
                        min(load.max_output_tokens, MAX_OUTPUT_TOKENS_API),
                        tuple(load.transcription_languages),
                        load.scores_end_of_turn,
                    )
            if was != replica.healthy:
                log.warning(
                    "llm replica back" if replica.healthy else "llm replica out",
                    extra={"replica": replica.address, "sessions": len(replica.sessions)},
                )
            self._export(replica)
        if self.room > room_before:
            self.on_room()

    async def _load(self, replica: Replica) -> conversation_pb2.GetLoadResponse | None:
        try:
            return await replica.stub.GetLoad(
                conversation_pb2.GetLoadRequest(), timeout=max(0.5, self._settings.replica_check_seconds)
            )
        except grpc.aio.AioRpcError:
            return None

    async def _refresh_dns(self, name: str) -> None:
        host, _, port = name.rpartition(":")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:
            log.warning("llm dns lookup failed", extra={"name": name, "error": str(exc)})
            return
        found = {_join(str(info[4][0]), int(port)) for info in infos}
        for address in found - self.replicas.keys():
            self._add(address, from_dns=True)
            log.info("llm replica found", extra={"replica": address})
        for address, replica in list(self.replicas.items()):
            if replica.from_dns and address not in found and not replica.sessions:
                del self.replicas[address]
                metrics.REPLICA_HEALTHY.remove(address)
                metrics.REPLICA_SESSIONS.remove(address)
                await replica.channel.close()

    def _export(self, replica: Replica) -> None:
        metrics.REPLICA_HEALTHY.labels(replica=replica.address).set(1 if replica.healthy else 0)
        metrics.REPLICA_SESSIONS.labels(replica=replica.address).set(len(replica.sessions))


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
