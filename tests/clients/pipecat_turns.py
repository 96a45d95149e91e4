"""Pipecat's OpenAIRealtimeLLMService, unchanged, in a headless pipeline pointed at the edge: a
text turn, then an audio turn. Run in the clients' venv (.venv-clients) by
tests/integration/test_realtime_clients.py; prints one JSON object with what came back.

    .venv-clients/bin/python tests/clients/pipecat_turns.py ws://127.0.0.1:8006/v1/realtime QUESTION.wav
"""

from __future__ import annotations

import asyncio
import json
import sys
import wave

from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    LLMFullResponseEndFrame,
    LLMRunFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineTask
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService


class Collector(FrameProcessor):
    """What the service sends down the pipeline, by response."""

    def __init__(self) -> None:
        super().__init__()
        self.responses: list[dict[str, object]] = [{"text": "", "audio_bytes": 0}]
        self.errors: list[str] = []
        self.response_ended = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        current = self.responses[-1]
        if type(frame) is LLMTextFrame:  # the words once (TTSTextFrame repeats them as spoken)
            current["text"] = str(current["text"]) + frame.text
        elif isinstance(frame, TTSAudioRawFrame):
            current["audio_bytes"] = int(current["audio_bytes"]) + len(frame.audio)  # type: ignore[call-overload]
        elif isinstance(frame, ErrorFrame):
            self.errors.append(str(frame.error))
        elif isinstance(frame, LLMFullResponseEndFrame):
            self.responses.append({"text": "", "audio_bytes": 0})
            self.response_ended.set()
        await self.push_frame(frame, direction)


async def main(url: str, question_wav: str) -> None:
    llm = OpenAIRealtimeLLMService(api_key="not-needed-on-loopback", base_url=url)
    context = LLMContext([{"role": "user", "content": "What is the capital of France?"}])
    aggregators = LLMContextAggregatorPair(context)
    collector = Collector()
    task = PipelineTask(Pipeline([aggregators.user(), llm, collector, aggregators.assistant()]))
    runner = PipelineRunner(handle_sigint=False)
    running = asyncio.create_task(runner.run(task))
    try:
        await task.queue_frames([LLMRunFrame()])
        async with asyncio.timeout(60):
            await collector.response_ended.wait()
        collector.response_ended.clear()
        with wave.open(question_wav) as clip:
            rate, pcm = clip.getframerate(), clip.readframes(clip.getnframes())
        step = rate * 2 // 10  # 100 ms
        for start in range(0, len(pcm), step):
            await task.queue_frame(
                InputAudioRawFrame(audio=pcm[start : start + step], sample_rate=rate, num_channels=1)
            )
            await asyncio.sleep(0.1)  # a microphone's pace
        async with asyncio.timeout(60):
            await collector.response_ended.wait()
    finally:
        await task.cancel()
        running.cancel()
    print(json.dumps({"responses": collector.responses[:-1], "errors": collector.errors}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
