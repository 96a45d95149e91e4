"""The service kit shared by every Parley service: settings, logging, the gRPC server bootstrap."""

try:
    import parley.v1  # noqa: F401  (generated from protos/ by `make install`)
except ModuleNotFoundError as exc:  # pragma: no cover - only without an install
    raise ModuleNotFoundError(
        "Parley's generated gRPC stubs are missing: run `make install` "
        "(it generates them from protos/ into services/common/gen)."
    ) from exc
