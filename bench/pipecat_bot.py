"""Pipecat 1.14's voice pipeline, as its documentation builds one, for bench.compare: its
WebSocket server transport, Silero VAD with its default turn strategy (Smart Turn v3 on the
pause), Whisper through faster-whisper, an OpenAI-compatible LLM (bench.openai_llm_server) and
Piper. Runs in the bench-only venv (.venv-compare, `make compare-install`); started by
bench.compare, which passes the bundled models' paths once it has checked their hashes.

    .venv-compare/bin/python bench/pipecat_bot.py --port 8765 --llm-url http://127.0.0.1:8100/v1 \
        --whisper-dir DIR --piper-dir DIR --system-prompt TEXT

One client at a time (the transport's own rule). The wire is the simplest Pipecat allows, so the
client needs no Pipecat code: binary messages are 16-bit mono PCM (the caller's at 16 kHz in, the
bot's at 24 kHz out, paced as a player would take it); text messages out are JSON reports of
what the bot heard, what it says and when it stopped speaking.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    TranscriptionFrame,
    TTSTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transports.websocket.server import WebsocketServerParams, WebsocketServerTransport

IN_RATE = 16000  # Silero VAD takes 16 kHz
OUT_RATE = 24000  # what Parley's Realtime API sends, so the client treats both alike
PIPER_VOICE = "en_US-joe-medium"


class RawAudioSerializer(FrameSerializer):
    """PCM in binary messages both ways; the bot's reports out as JSON text."""

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, OutputAudioRawFrame):
            return frame.audio
        if isinstance(frame, OutputTransportMessageFrame | OutputTransportMessageUrgentFrame):
            return json.dumps(frame.message)
        return None

    async def deserialize(self, data: str | bytes) -> Frame | None:
        if isinstance(data, bytes):
            return InputAudioRawFrame(audio=data, sample_rate=IN_RATE, num_channels=1)
        return None


class Reporter(FrameProcessor):
    """Passes every frame on; for the kinds it watches, also sends the client a report."""

    def __init__(self, *watched: type[Frame]) -> None:
        super().__init__()
        self._watched = watched

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if not isinstance(frame, self._watched):
            return
        if isinstance(frame, TranscriptionFrame):
            report = {"type": "heard", "text": frame.text}
        elif isinstance(frame, TTSTextFrame):
            report = {"type": "said", "text": frame.text}
        else:
            report = {"type": "bot_stopped"}
        await self.push_frame(OutputTransportMessageUrgentFrame(message=report), FrameDirection.DOWNSTREAM)


async def run(args: argparse.Namespace) -> None:
    transport = WebsocketServerTransport(
        host="127.0.0.1",
        port=args.port,
        params=WebsocketServerParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=RawAudioSerializer(),
        ),
    )
    stt = WhisperSTTService(
        settings=WhisperSTTService.Settings(model=args.whisper_dir), device="cpu", compute_type="int8"
    )
    llm = OpenAILLMService(
        api_key="not-needed-on-loopback", base_url=args.llm_url, settings=OpenAILLMService.Settings(model=args.model)
    )
    tts = PiperTTSService(settings=PiperTTSService.Settings(voice=PIPER_VOICE), download_dir=Path(args.piper_dir))
    context = LLMContext([{"role": "system", "content": args.system_prompt}])
    aggregators = LLMContextAggregatorPair(
        context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
    )
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            Reporter(TranscriptionFrame),
            aggregators.user(),
            llm,
            tts,
            Reporter(TTSTextFrame, BotStoppedSpeakingFrame),
            transport.output(),
            aggregators.assistant(),
        ]
    )
    task = PipelineTask(pipeline, params=PipelineParams(audio_in_sample_rate=IN_RATE, audio_out_sample_rate=OUT_RATE))

    @transport.event_handler("on_websocket_ready")
    async def on_ready(_transport: object) -> None:
        # The line tests.support.processes waits for.
        print(
            json.dumps({"msg": "pipecat listening", "url": f"ws://127.0.0.1:{args.port}"}), file=sys.stderr, flush=True
        )

    await PipelineRunner(handle_sigint=True).run(task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--llm-url", required=True, help="an OpenAI-compatible base URL, ending in /v1")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--whisper-dir", required=True, help="a CTranslate2 Whisper model directory")
    parser.add_argument("--piper-dir", required=True, help=f"a directory holding {PIPER_VOICE}.onnx and its .json")
    parser.add_argument("--system-prompt", required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
