"""``python -m services.common.healthcheck``: a container health check.

    python -m services.common.healthcheck grpc 127.0.0.1:50051     # gRPC health protocol, SERVING?
    python -m services.common.healthcheck http http://127.0.0.1:8006/healthz   # HTTP 200?

Exits 0 when healthy, 1 otherwise (with the reason on stderr), within a few seconds.
"""

from __future__ import annotations

import ssl
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 3


def grpc_serving(address: str) -> str | None:
    """None when the server at ``address`` reports SERVING, else why not."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            return f"{address}: {exc.code().name}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"{address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def http_ok(url: str) -> str | None:
    """None when ``url`` answers 200, else why not."""
    # The edge beyond loopback serves HTTPS, often with its own self-signed certificate: a
    # process checking itself has nothing to verify.
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS, context=context) as response:
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url}: {exc}"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("grpc", "http"):
        print("usage: python -m services.common.healthcheck grpc HOST:PORT | http URL", file=sys.stderr)
        return 2
    problem = grpc_serving(argv[1]) if argv[0] == "grpc" else http_ok(argv[1])
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
