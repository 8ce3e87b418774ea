"""Running a scorer worker: embedded infrastructure when not configured, Faust worker, API."""

from __future__ import annotations

import logging
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from redis.asyncio import Redis

from streams.config import ConfigError, Settings, redacted_url
from streams.embedded import EmbeddedProcess, start_broker, start_redis

log = logging.getLogger("ssi")


@dataclass
class Infra:
    """Where the broker and Redis are, and the embedded processes to stop on exit."""

    broker_url: str
    redis_url: str
    processes: list[EmbeddedProcess] = field(default_factory=list)

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()
        self.processes.clear()


def start_infra(settings: Settings) -> Infra:
    """Start the bundled broker and Redis for the settings left at `embedded`."""
    procs: list[EmbeddedProcess] = []
    broker_url = settings.broker_url
    redis_url = settings.redis_url.get_secret_value()
    if settings.embedded_broker:
        broker = start_broker()
        procs.append(broker)
        broker_url = broker.url
        log.warning("started the embedded broker (Tansu) at %s, pid %s", broker.url, broker.pid)
    if settings.embedded_redis:
        redis = start_redis()
        procs.append(redis)
        redis_url = redis.url
        log.warning("started the embedded Redis at %s, pid %s", redis.url, redis.pid)
    return Infra(broker_url, redis_url, procs)


def redis_client(settings: Settings, url: str) -> Redis:
    """A Redis client with the configured ACL user, password and TLS.

    The URL may carry the user and password itself (`rediss://user:pw@host:port/0`); the
    `SSI_REDIS_USERNAME` / `SSI_REDIS_PASSWORD` settings override it. TLS files with a plain
    `redis://` URL are refused rather than silently ignored.
    """
    kwargs: dict[str, Any] = {"decode_responses": False, "health_check_interval": 10}
    # redis-py lets a URL's user and password win over keyword arguments: take them out of the
    # URL and pass whichever applies as arguments, so that the settings do override the URL
    parts = urlsplit(url)
    username = settings.redis_username or (unquote(parts.username) if parts.username else None)
    if settings.redis_password is not None:
        password: str | None = settings.redis_password.get_secret_value()
    else:
        password = unquote(parts.password) if parts.password is not None else None
    url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if username:
        kwargs["username"] = username
    if password is not None:
        kwargs["password"] = password
    tls_files = {
        "ssl_ca_certs": settings.redis_ssl_ca_certs,
        "ssl_certfile": settings.redis_ssl_certfile,
        "ssl_keyfile": settings.redis_ssl_keyfile,
    }
    if any(tls_files.values()) and not url.startswith("rediss://"):
        raise ConfigError("SSI_REDIS_SSL_* settings need a rediss:// SSI_REDIS_URL")
    if settings.redis_ssl_keyfile and not settings.redis_ssl_certfile:
        raise ConfigError("SSI_REDIS_SSL_KEYFILE needs SSI_REDIS_SSL_CERTFILE")
    kwargs.update({k: str(v) for k, v in tls_files.items() if v})
    return Redis.from_url(url, **kwargs)


def broker_credentials(settings: Settings) -> Any:
    """Faust credentials for Kafka SASL / TLS (None for PLAINTEXT)."""
    import faust

    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    if proto.startswith("SASL_") and not (
        settings.kafka_sasl_username and settings.kafka_sasl_password
    ):
        raise ConfigError(
            f"SSI_KAFKA_SECURITY_PROTOCOL={proto} needs SSI_KAFKA_SASL_USERNAME and "
            "SSI_KAFKA_SASL_PASSWORD"
        )
    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        raise ConfigError("SSI_KAFKA_SSL_KEYFILE needs SSI_KAFKA_SSL_CERTFILE")
    context = None
    if proto in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            )
    if proto == "SSL":
        return faust.SSLCredentials(context)
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    username = settings.kafka_sasl_username or ""
    if settings.kafka_sasl_mechanism == "PLAIN":
        return faust.SASLCredentials(username=username, password=password, ssl_context=context)
    from faust.auth import SASLCredentials
    from faust.types.auth import SASLMechanism

    mech = SASLMechanism(settings.kafka_sasl_mechanism)
    return SASLCredentials(
        username=username, password=password, ssl_context=context, mechanism=mech
    )


def kafka_url(url: str) -> str:
    """Faust wants `kafka://host:port[;host:port]`; accept commas too."""
    if not url.startswith("kafka://"):
        url = "kafka://" + url
    return url.replace(",", ";")


def build_scorer(settings: Settings, infra: Infra) -> Any:
    """The Faust app with agents, timers and API installed."""
    from streams.app import Scorer
    from streams.web import Api, load_tokens

    redis = redis_client(settings, infra.redis_url)
    scorer = Scorer(
        settings,
        kafka_url(infra.broker_url),
        redis,
        broker_credentials=broker_credentials(settings),
    )
    tokens = load_tokens(settings.api_tokens) if settings.api_tokens else []
    if not tokens:
        log.warning("SSI_API_TOKENS is not set: every /v1 call will be refused (401)")
    Api(scorer, tokens).install()
    return scorer


def run_worker(settings: Settings, infra: Infra | None = None) -> int:
    """Run one worker until interrupted; stops embedded infrastructure it started."""
    import faust

    from streams.runtime import tune_gc

    own = infra is None
    infra = infra or start_infra(settings)
    try:
        scorer = build_scorer(settings, infra)
        log.warning(
            "ssi worker: broker %s, redis %s, web http://%s:%s",
            infra.broker_url,
            redacted_url(infra.redis_url),
            settings.web_host,
            settings.web_port,
        )
        worker = faust.Worker(scorer.app, loglevel=settings.log_level.upper(), quiet=True)
        tune_gc()
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    finally:
        if own:
            infra.stop()
    return 0


def write_tokens(path: Path, pairs: list[tuple[str, str]]) -> None:
    path.write_text("".join(f"{t} {p}\n" for t, p in pairs), encoding="utf-8")
    path.chmod(0o600)


def main_worker() -> int:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr)
    return run_worker(settings)
