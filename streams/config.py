"""Configuration from the environment (prefix `SSI_`), built once at the edge and frozen.

Secrets are `SecretStr`: they never appear in `repr`, logs or errors. URLs that may carry a
password (`SSI_REDIS_URL`) are secrets too; `redacted_url` gives a printable form. Checks that
involve secrets run where the settings are used (`streams.worker`), not in a model validator:
pydantic would put every raw input, secrets included, into a model-level validation error.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scoring.errors import InvalidEvent, SsiError
from scoring.events import parse_time


class ConfigError(SsiError):
    """A setting has a value that cannot work."""


def redacted_url(url: str) -> str:
    """A URL with any password replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]  # as written: keeps IPv6 brackets and the port
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, ""))


class Settings(BaseSettings):
    """Every `SSI_*` setting (DESIGN 3.1 and the operational knobs around it)."""

    model_config = SettingsConfigDict(env_prefix="SSI_", frozen=True, extra="ignore")

    broker_url: str = "embedded"
    redis_url: SecretStr = SecretStr("embedded")
    topic_prefix: str = "ssi."
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    model: Path | None = None
    clock: str = "wall"
    api_tokens: Path | None = None

    partitions: int = Field(default=8, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    group_id: str = "ssi-scorer"
    # records per agent batch; big batches coalesce a user's rescoring (bench/throughput.py)
    batch_size: int = Field(default=2000, ge=1)
    batch_within: float = Field(default=0.1, gt=0)
    sweep_interval: float = Field(default=30.0, gt=0)
    sweep_limit: int = Field(default=2000, ge=1)
    dedupe_horizon_seconds: float = Field(default=86400.0, gt=0)
    session_timeout: float = Field(default=10.0, gt=0)
    data_dir: Path | None = None
    log_level: str = "info"

    # Kafka security (mapped to aiokafka through Faust)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    # Redis ACL user / password override the URL's; TLS with rediss:// URLs: the CA that signed
    # the server's certificate, and a client certificate when the server wants one (mutual TLS)
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    redis_ssl_ca_certs: Path | None = None
    redis_ssl_certfile: Path | None = None
    redis_ssl_keyfile: Path | None = None

    @field_validator("clock")
    @classmethod
    def _clock(cls, v: str) -> str:
        if v != "wall":
            try:
                parse_time(v)
            except InvalidEvent as exc:
                raise ValueError(f"SSI_CLOCK must be 'wall' or RFC 3339: {exc.message}") from None
        return v

    def fixed_clock(self) -> datetime | None:
        return None if self.clock == "wall" else parse_time(self.clock)

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url in ("", "embedded")

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url.get_secret_value() in ("", "embedded")

    def topic(self, name: str) -> str:
        return self.topic_prefix + name
