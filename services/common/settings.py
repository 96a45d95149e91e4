"""Typed service settings read from command-line flags and environment variables."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, CliApp, SettingsConfigDict


class ProcessSettings(BaseSettings):
    """What every Parley process is configured by: flags and environment, log level and format.
    Subclasses set ``env_prefix`` and ``cli_prog_name``."""

    model_config = SettingsConfigDict(
        cli_kebab_case=True,
        cli_implicit_flags=True,
        extra="forbid",
        validate_default=True,
    )

    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest log level printed.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log line format: readable text, or one JSON object a line for log collectors."
    )


class ServiceSettings(ProcessSettings):
    """Settings every gRPC service has. Subclasses add their own and set ``env_prefix``."""

    host: str = Field(
        "127.0.0.1",
        description="Address the gRPC and metrics servers bind to. Loopback by default; "
        "use 0.0.0.0 (or [::]) to serve other hosts.",
    )
    port: int = Field(0, ge=0, le=65535, description="gRPC port (0 picks a free one).")
    tls_cert: Path | None = Field(
        None, description="PEM certificate chain: serve gRPC over TLS (with --tls-key) instead of plain text."
    )
    tls_key: Path | None = Field(None, description="PEM private key of --tls-cert.")
    metrics_port: int = Field(
        0,
        ge=-1,
        le=65535,
        description="Port of the Prometheus /metrics HTTP server (0 picks a free one, -1 disables it).",
    )
    max_message_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest gRPC message accepted or sent, in bytes; larger requests get RESOURCE_EXHAUSTED.",
    )
    drain_seconds: float = Field(
        10.0,
        ge=0,
        le=600,
        description="On SIGTERM or SIGINT: how long open calls may take to finish before they are cancelled.",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> ServiceSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        return self


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def parse_settings(settings_cls: type[SettingsT], argv: list[str] | None = None) -> SettingsT:
    """Build settings from flags (``argv``, default ``sys.argv[1:]``) over environment variables.

    Invalid values print one line per problem and exit with status 2, as argparse does.
    """
    try:
        return CliApp.run(settings_cls, cli_args=sys.argv[1:] if argv is None else argv)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]).replace("_", "-")
            print(f"error: --{field}: {error['msg']} (got {error.get('input')!r})", file=sys.stderr)
        raise SystemExit(2) from None
