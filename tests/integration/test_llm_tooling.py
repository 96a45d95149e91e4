"""grpcurl, health and metrics against the running LLM service."""

import json

from parley.v1 import conversation_pb2

from tests.support.llm_client import ask
from tests.support.processes import SHARED_LLM_MAX_SESSIONS, ServiceProcess
from tests.support.tooling import grpcurl, metric_value, scrape_metrics


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
    assert load["max_sessions"] == SHARED_LLM_MAX_SESSIONS


async def test_metrics_follow_turns(llm_service: ServiceProcess, llm_channel) -> None:
    before = scrape_metrics(llm_service)
    result = await ask(llm_channel, "metrics-check", "Say hello.", generation={"max_output_tokens": 5})
    after = scrape_metrics(llm_service)

    def grew(name: str) -> float:
        return metric_value(after, name, default=0.0) - metric_value(before, name, default=0.0)

    reason = "length" if result.done.finish_reason == conversation_pb2.FINISH_REASON_LENGTH else "stop"
    assert grew(f'parley_llm_turns_total{{finish_reason="{reason}"}}') == 1
    assert grew("parley_llm_output_tokens_total") == result.done.usage.output_tokens
    assert grew("parley_llm_input_tokens_total") == result.done.usage.input_tokens
    assert grew("parley_llm_first_token_seconds_count") == 1
    assert metric_value(after, "parley_llm_turns_active") == 0
    assert metric_value(after, "parley_llm_sessions_max") == SHARED_LLM_MAX_SESSIONS
