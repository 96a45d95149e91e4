"""Function calling benchmark: how well a model chooses tools on its own (tool_choice auto), and
what a required call (generated under its schema) costs.

    make bench-tools        (or: .venv/bin/python -m bench.tools --help)

Through the real LLM service over gRPC. Two tools (weather, time); questions that need one of
them and questions that need neither. Prints, for auto: calls of the right tool with the city
right, calls of the wrong tool, calls where none was needed; for a required call: how often its
arguments parse and validate (by construction, every time) and its latency, median and p95.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

import grpc
import jsonschema
from parley.v1 import conversation_pb2

from bench.llm import figures
from tests.support.llm_client import END, header, respond, text
from tests.support.processes import start_service

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS = [
    conversation_pb2.Tool(
        name="get_weather", description="The current weather in a city.", parameters_json=json.dumps(CITY)
    ),
    conversation_pb2.Tool(name="get_time", description="The local time in a city.", parameters_json=json.dumps(CITY)),
]
NEEDS = [  # (question, tool, city)
    ("What is the weather like in Paris right now?", "get_weather", "Paris"),
    ("Is it raining in London today?", "get_weather", "London"),
    ("How warm is it in Madrid?", "get_weather", "Madrid"),
    ("Do I need an umbrella in Berlin?", "get_weather", "Berlin"),
    ("What's the temperature in Rome?", "get_weather", "Rome"),
    ("What time is it in Tokyo?", "get_time", "Tokyo"),
    ("What is the local time in New York?", "get_time", "New York"),
    ("Is it late in Sydney now?", "get_time", "Sydney"),
    ("Tell me the current time in Cairo.", "get_time", "Cairo"),
    ("What's the time in Lima at the moment?", "get_time", "Lima"),
]
NEEDS_NONE = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Tell me a short joke.",
    "What is two plus two?",
    "Who wrote Romeo and Juliet?",
    "Translate 'thank you' into Spanish.",
    "What colour is the sky on a clear day?",
    "Name a planet in the solar system.",
    "What do bees make?",
    "How do you say hello in French?",
]


async def run(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        right = wrong_tool = wrong_city = 0
        for question, tool, city in NEEDS:
            result = await respond(channel, [header(f"b-{uuid.uuid4().hex[:8]}", tools=TOOLS), text(question), END])
            if not result.calls:
                continue
            call = result.calls[0]
            if call.name != tool:
                wrong_tool += 1
            elif json.loads(call.arguments).get("city", "").lower() != city.lower():
                wrong_city += 1
            else:
                right += 1
        unneeded = 0
        for question in NEEDS_NONE:
            result = await respond(channel, [header(f"b-{uuid.uuid4().hex[:8]}", tools=TOOLS), text(question), END])
            unneeded += bool(result.calls)
        print(
            f"auto, questions needing a tool ({len(NEEDS)}): right call {right}, right tool with wrong city "
            f"{wrong_city}, wrong tool {wrong_tool}, no call {len(NEEDS) - right - wrong_city - wrong_tool}"
        )
        print(f"auto, questions needing none ({len(NEEDS_NONE)}): a call anyway {unneeded}")

        valid = city_right = 0
        latencies = []
        for question, tool, city in NEEDS:
            forced = conversation_pb2.ToolChoice(function=tool)
            started = time.perf_counter()
            result = await respond(
                channel, [header(f"b-{uuid.uuid4().hex[:8]}", tools=TOOLS, tool_choice=forced), text(question), END]
            )
            latencies.append(time.perf_counter() - started)
            arguments = json.loads(result.calls[0].arguments)
            jsonschema.validate(arguments, CITY)
            valid += 1
            city_right += arguments["city"].lower() == city.lower()
        print(
            f"required (named tool): arguments valid {valid}/{len(NEEDS)}, city right {city_right}/{len(NEEDS)}; "
            f"whole turn {figures(latencies)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="transformers")
    parser.add_argument("--model", help="a model to measure instead of the bundled one (hub id or path)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter of the LLM service (vLLM's venv)")
    args = parser.parse_args()
    extra = ["--model", args.model] if args.model else []
    service = start_service(
        "services.llm", "--backend", args.backend, "--max-sessions=64", *extra, timeout=600, python=args.python
    )
    try:
        asyncio.run(run(service.grpc_address))
    finally:
        service.stop()


if __name__ == "__main__":
    main()
