"""Parley beside Pipecat 1.14: the same spoken questions to both, interleaved question by question in
one run, with one definition of latency.

    make bench-compare      (or: .venv/bin/python -m bench.compare --pipecat-python .venv-compare/bin/python)

Both pipelines run on this machine on the same models: Whisper tiny.en (CTranslate2, int8), the
bundled SmolLM2-135M and Piper's joe voice. Pipecat's is the pipeline its documentation builds
(bench/pipecat_bot.py: its WebSocket server transport, Silero VAD and its default turn strategy,
Smart Turn v3, WhisperSTTService, OpenAILLMService, PiperTTSService), in its own venv; its language
model is served by bench.openai_llm_server over Parley's own engine, so both get the same model at
the same speed and what is compared is the pipeline. Parley is its own stack (vad, llm, tts, edge)
behind its Realtime API over WebSocket, with its defaults (server_vad, 500 ms of silence) and,
as a second Parley caller, with semantic_vad.

Each caller speaks a question in real time (the bundled Piper voice, 20 ms chunks, each sent
once it has been "recorded"), then silence until the answer has been heard out. Latency, for both:
from sending the question's last voiced sample to the first voiced sample (|x| > 500 of 32767)
of the answer as a client that plays audio on arrival would sound it (a chunk plays when it
arrives or when the one before it ends, whichever is later). The callers take turns question by
question, in alternating order. Prints each system's median and p95, answered/asked, and the
ratio of Parley's median to Pipecat's. docs/benchmarks.md keeps the latest.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import socket
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

from bench.voice_to_voice import QUESTIONS, figures
from services.common.audio import float32_to_pcm16
from services.llm.asr import BUNDLED_WHISPER
from services.llm.settings import LlmSettings
from services.tts.backends.piper import bundled_voice_path
from tests.support import speech
from tests.support.processes import REPO_ROOT, ServiceProcess, running_stack, start_process

CHUNK_SECONDS = 0.02
LOUD = 500  # int16: the first answer sample above this is the first one heard
ANSWER_TIMEOUT = 40.0
LEAD_IN_SECONDS = 0.6  # a breath before each question
OUT_RATE = 24000  # both send the answer at 24 kHz


class Playout:
    """When a client that plays the answer as it arrives sounds each of its samples."""

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._free_at = 0.0  # when what has arrived so far has been played
        self.first_heard: float | None = None

    def arrived(self, pcm: np.ndarray, at: float) -> None:
        start = max(at, self._free_at)
        if self.first_heard is None:
            loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > LOUD)
            if loud.size:
                self.first_heard = start + loud[0] / self._rate
        self._free_at = start + len(pcm) / self._rate

    @property
    def played_out_at(self) -> float:
        return self._free_at


@dataclass
class Answer:
    latency_ms: float | None  # None: nothing heard
    heard: str  # what the system recognised
    said: str  # what it answered


@dataclass
class Heard:
    """What one answer brought back so far."""

    playout: Playout = field(default_factory=lambda: Playout(OUT_RATE))
    heard: list[str] = field(default_factory=list)  # what the system recognised
    said: list[str] = field(default_factory=list)  # what it answered


@dataclass
class Caller:
    """One system's session over a WebSocket, asking the questions one at a time."""

    name: str
    in_rate: int
    latencies: list[float] = field(default_factory=list)
    asked: int = 0
    _ws: aiohttp.ClientWebSocketResponse = field(init=False, repr=False)  # made by connect()

    async def connect(self, http: aiohttp.ClientSession) -> None:
        raise NotImplementedError

    async def send_audio(self, pcm: bytes) -> None:
        raise NotImplementedError

    def receive(self, message: aiohttp.WSMessage, at: float, answer: Heard) -> bool:
        """Take in one message from the system; True once the answer is complete."""
        raise NotImplementedError

    async def close(self) -> None:
        await self._ws.close()

    async def ask(self, question: np.ndarray) -> Answer:
        """Speak ``question`` (float, ``in_rate``, ending with its last voiced sample) in real time,
        then silence until the answer has been played out or ANSWER_TIMEOUT passes."""
        loop = asyncio.get_running_loop()
        answer = Heard()
        answered = asyncio.Event()

        async def listen() -> None:
            async for message in self._ws:
                if self.receive(message, loop.time(), answer):
                    answered.set()
                    return

        listening = asyncio.create_task(listen())
        try:
            speech_end = await self._speak(question, answered, answer.playout)
        finally:
            listening.cancel()
        first_heard = answer.playout.first_heard
        latency = None if first_heard is None else (first_heard - speech_end) * 1000
        return Answer(latency, " ".join(answer.heard).strip(), " ".join(answer.said).strip())

    async def _speak(self, question: np.ndarray, answered: asyncio.Event, playout: Playout) -> float:
        """Send a lead-in, the question and then silence, each chunk once it has been recorded;
        returns when the question's last voiced sample was sent. Stops once ``answered`` is set
        and the answer has been played out."""
        loop = asyncio.get_running_loop()
        chunk = int(self.in_rate * CHUNK_SECONDS)
        lead_in = np.zeros(int(self.in_rate * LEAD_IN_SECONDS), np.float32)
        spoken = np.concatenate([lead_in, question])
        last_voiced_chunk = (len(spoken) - 1) // chunk
        spoken = np.concatenate([spoken, np.zeros(-len(spoken) % chunk, np.float32)])
        pcm = float32_to_pcm16(spoken)
        silence = bytes(chunk * 2)
        started = loop.time()
        speech_end = 0.0
        deadline = started + LEAD_IN_SECONDS + len(question) / self.in_rate + ANSWER_TIMEOUT
        index = 0
        while True:
            due = started + (index + 1) * CHUNK_SECONDS
            await asyncio.sleep(max(0.0, due - loop.time()))
            offset = index * chunk * 2
            await self.send_audio(pcm[offset : offset + chunk * 2] if offset < len(pcm) else silence)
            if index == last_voiced_chunk:
                speech_end = loop.time()
            index += 1
            now = loop.time()
            if now > deadline or (answered.is_set() and now >= playout.played_out_at):
                return speech_end


class ParleyCaller(Caller):
    """The Realtime API over WebSocket, the session as the client sets it."""

    def __init__(self, name: str, url: str, turn_detection: dict[str, object]) -> None:
        super().__init__(name, in_rate=24000)
        self._url = url.rstrip("/").replace("http", "ws", 1) + "/v1/realtime?model=parley"
        self._turn_detection = turn_detection

    async def connect(self, http: aiohttp.ClientSession) -> None:
        self._ws = await http.ws_connect(self._url, max_msg_size=0)
        session = {"type": "realtime", "audio": {"input": {"turn_detection": self._turn_detection}}}
        await self._ws.send_str(json.dumps({"type": "session.update", "session": session}))
        while (await self._ws.receive_json())["type"] != "session.updated":
            pass

    async def send_audio(self, pcm: bytes) -> None:
        await self._ws.send_str(
            json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})
        )

    def receive(self, message: aiohttp.WSMessage, at: float, answer: Heard) -> bool:
        event = json.loads(message.data)
        kind = event["type"]
        if kind == "response.output_audio.delta":
            answer.playout.arrived(np.frombuffer(base64.b64decode(event["delta"]), "<i2"), at)
        elif kind == "conversation.item.input_audio_transcription.completed":
            answer.heard.append(event["transcript"])
        elif kind == "response.output_audio_transcript.done":
            answer.said.append(event["transcript"])
        elif kind == "error":
            print(f"{self.name}: error {event['error']}", file=sys.stderr)
        return kind == "response.done"


class PipecatCaller(Caller):
    """bench/pipecat_bot.py's wire: PCM in binary messages, JSON reports in text ones."""

    def __init__(self, name: str, url: str) -> None:
        super().__init__(name, in_rate=16000)
        self._url = url

    async def connect(self, http: aiohttp.ClientSession) -> None:
        self._ws = await http.ws_connect(self._url, max_msg_size=0)

    async def send_audio(self, pcm: bytes) -> None:
        await self._ws.send_bytes(pcm)

    def receive(self, message: aiohttp.WSMessage, at: float, answer: Heard) -> bool:
        if message.type == aiohttp.WSMsgType.BINARY:
            answer.playout.arrived(np.frombuffer(message.data, "<i2"), at)
            return False
        report = json.loads(message.data)
        if report["type"] == "heard":
            answer.heard.append(report["text"])
        elif report["type"] == "said":
            answer.said.append(report["text"])
        return report["type"] == "bot_stopped"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_pipecat(python: str, llm_url: str) -> ServiceProcess:
    """The Pipecat bot on a free loopback port, on the bundled models (their hashes checked here)."""
    whisper_dir = BUNDLED_WHISPER.verified().parent
    piper_dir = bundled_voice_path().parent
    command = [
        python,
        "-m",
        "bench.pipecat_bot",
        f"--port={free_port()}",
        f"--llm-url={llm_url}/v1",
        f"--whisper-dir={whisper_dir}",
        f"--piper-dir={piper_dir}",
        f"--system-prompt={LlmSettings().system_prompt}",
    ]
    return start_process("pipecat", command, timeout=120)


async def compare(callers: list[Caller], questions: list[str], warmup: int) -> None:
    voiced: dict[str, np.ndarray] = {}

    def say(text: str, rate: int) -> np.ndarray:
        if text not in voiced:
            clip = speech.piper_voice(text)
            voiced[text] = clip[: speech.voiced_bounds(clip, speech.VOICE_RATE)[1]]
        return speech.resample(voiced[text], speech.VOICE_RATE, rate)

    async with aiohttp.ClientSession() as http:
        for caller in callers:
            await caller.connect(http)
        try:
            for index in range(warmup + len(questions)):
                measured = index >= warmup
                text = questions[(index - warmup) % len(questions)] if measured else "Hello, can you hear me?"
                # Alternate who goes first, so neither always follows the other's leftover work.
                order = callers if index % 2 == 0 else callers[::-1]
                for caller in order:
                    answer = await caller.ask(say(text, caller.in_rate))
                    if not measured:
                        continue
                    caller.asked += 1
                    if answer.latency_ms is not None:
                        caller.latencies.append(answer.latency_ms)
                    shown = "  no answer" if answer.latency_ms is None else f"{answer.latency_ms:6.0f} ms"
                    print(
                        f"q{index - warmup + 1:2d} {caller.name:<20} {shown}  {answer.heard!r} -> {answer.said!r}",
                        flush=True,
                    )
        finally:
            for caller in callers:
                with contextlib.suppress(Exception):
                    await caller.close()


def report(callers: list[Caller], reference: Caller) -> None:
    print("\nVoice to voice, client side (question's last voiced sample sent -> first voiced answer sample played):")
    for caller in callers:
        print(f"  {caller.name:<20} {figures(caller.latencies)}   answered {len(caller.latencies)}/{caller.asked}")
    if not reference.latencies:
        return
    base = statistics.median(reference.latencies)
    for caller in callers:
        if caller is not reference and caller.latencies:
            print(f"  ratio {caller.name} / {reference.name}: {statistics.median(caller.latencies) / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pipecat-python", default=str(REPO_ROOT / ".venv-compare/bin/python"), help="the venv with Pipecat"
    )
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured questions first, for each system")
    parser.add_argument("--no-semantic", action="store_true", help="leave out the semantic_vad Parley caller")
    args = parser.parse_args()
    if not Path(args.pipecat_python).exists():
        sys.exit(f"{args.pipecat_python} not found: run `make compare-install` first")
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.questions)]
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(running_stack())["edge"].url
        llm_server = start_process("openai-llm", [sys.executable, "-m", "bench.openai_llm_server"], timeout=180)
        stack.callback(llm_server.stop)
        pipecat = start_pipecat(args.pipecat_python, llm_server.url)
        stack.callback(pipecat.stop)
        callers: list[Caller] = [ParleyCaller("parley server_vad", url, {"type": "server_vad"})]
        if not args.no_semantic:
            callers.append(ParleyCaller("parley semantic_vad", url, {"type": "semantic_vad"}))
        reference = PipecatCaller("pipecat", pipecat.url)
        callers.append(reference)
        asyncio.run(compare(callers, questions, args.warmup))
    report(callers, reference)


if __name__ == "__main__":
    main()
