"""grpcurl, health and metrics against the running LLM service."""

import json
import urllib.request

from parley.v1 import conversation_pb2

from tests.integration.test_vad_tooling import grpcurl, metric_value
from tests.support.llm_client import ask
from tests.support.processes import ServiceProcess


def test_grpcurl_lists_describes_and_checks_health(llm_service: ServiceProcess) -> None:
    assert "parley.v1.ConversationService" in grpcurl(llm_service, "list").split()
    description = grpcurl(llm_service, "describe", "parley.v1.ConversationService")
    for rpc in ("Respond", "TruncateReply", "ResetSession", "EndSession", "GetLoad"):
        assert f"rpc {rpc} (" in description
    health = '{"service": "parley.v1.ConversationService"}'
    assert json.loads(grpcurl(llm_service, "grpc.health.v1.Health/Check", flags=("-d", health))) == {
        "status": "SERVING"
    }
    load = json.loads(grpcurl(llm_service, "parley.v1.ConversationService/GetLoad", flags=("-d", "{}")))
    assert load["max_sessions"] == 16


def counter(text: str, name: str) -> float:
    """A metric's value, 0 when it has not been reported yet (a labelled counter's first use)."""
    return metric_value(text, name) if any(line.startswith(name + " ") for line in text.splitlines()) else 0.0


async def test_metrics_follow_turns(llm_service: ServiceProcess, llm_channel) -> None:
    def scrape() -> str:
        with urllib.request.urlopen(llm_service.metrics_url, timeout=10) as response:
            return response.read().decode()

    before = scrape()
    result = await ask(llm_channel, "metrics-check", "Say hello.", generation={"max_output_tokens": 5})
    after = scrape()

    def grew(name: str) -> float:
        return counter(after, name) - counter(before, name)

    reason = "length" if result.done.finish_reason == conversation_pb2.FINISH_REASON_LENGTH else "stop"
    assert grew(f'parley_llm_turns_total{{finish_reason="{reason}"}}') == 1
    assert grew("parley_llm_output_tokens_total") == result.done.usage.output_tokens
    assert grew("parley_llm_input_tokens_total") == result.done.usage.input_tokens
    assert grew("parley_llm_first_token_seconds_count") == 1
    assert metric_value(after, "parley_llm_turns_active") == 0
    assert metric_value(after, "parley_llm_sessions_max") == 16
