"""Settings, secrets and credential mapping (no servers needed).

Secrets stay out of `repr`, validation errors and printable URLs; the Kafka security settings
become the aiokafka arguments Faust passes on (through Faust's own mapping function); the Redis
settings become the redis-py connection arguments; API tokens load plain or as SHA-256 digests
and are compared against every known digest.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import ssl
from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError
from redis.asyncio.connection import SSLConnection

from streams import web
from streams.config import ConfigError, Settings, redacted_url
from streams.web import TokenError, load_tokens, principal_for
from streams.worker import broker_credentials, redis_client
from tests.integration.test_security import Certs, make_certs

REDIS_PW = "r3dis-Secret-pw"
SASL_PW = "s4sl-Secret-pw"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSI_REDIS_URL", f"rediss://ssi:{REDIS_PW}@redis.example:6380/0")
    monkeypatch.setenv("SSI_REDIS_PASSWORD", REDIS_PW)
    monkeypatch.setenv("SSI_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SSI_KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setenv("SSI_KAFKA_SASL_PASSWORD", SASL_PW)


def test_secrets_not_in_repr_or_dumps(secret_env: None) -> None:
    s = Settings()
    assert s.redis_url.get_secret_value().startswith("rediss://ssi:")
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump()), f"{s!r:}"):
        assert REDIS_PW not in text and SASL_PW not in text


def test_secrets_not_in_validation_errors(
    secret_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSI_WEB_PORT", "not-a-port")
    monkeypatch.setenv("SSI_KAFKA_SASL_MECHANISM", "GSSAPI")
    with pytest.raises(ValidationError) as info:
        Settings()
    text = str(info.value) + repr(info.value.errors())
    assert "web_port" in text and "kafka_sasl_mechanism" in text
    assert REDIS_PW not in text and SASL_PW not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://user@h:6379/0", "redis://user@h:6379/0"),
        ("rediss://user:pw@h:6380/0", "rediss://user:***@h:6380/0"),
        ("rediss://:pw@h/2", "rediss://:***@h/2"),
        ("rediss://u:p%40ss@[::1]:6380/0", "rediss://u:***@[::1]:6380/0"),
        ("redis://u:a@b@h:1/0", "redis://u:***@h:1/0"),
    ],
)
def test_redacted_url(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


# ------------------------------------------------------------------------------------- Kafka


def kafka_auth(**settings: Any) -> dict[str, Any]:
    """What Faust's aiokafka driver passes to the consumer and producer."""
    auth: dict[str, Any] = credentials_to_aiokafka_auth(broker_credentials(Settings(**settings)))
    return auth


def test_kafka_plaintext() -> None:
    assert broker_credentials(Settings()) is None
    assert kafka_auth() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_sasl_plaintext(mechanism: str) -> None:
    auth = kafka_auth(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="alice",
        kafka_sasl_password=SASL_PW,
    )
    assert auth == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "alice",
        "sasl_plain_password": SASL_PW,
        "ssl_context": None,
    }


def _ca_subjects(ctx: ssl.SSLContext) -> list[str]:
    return [dict(x[0] for x in c["subject"])["commonName"] for c in ctx.get_ca_certs()]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_kafka_sasl_ssl(mechanism: str, certs: Certs) -> None:
    auth = kafka_auth(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="alice",
        kafka_sasl_password=SASL_PW,
        kafka_ssl_cafile=certs.ca,
    )
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == mechanism
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("alice", SASL_PW)
    ctx = auth["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert _ca_subjects(ctx) == ["ssi-test-ca"]


def test_kafka_ssl_with_client_certificate(certs: Certs) -> None:
    auth = kafka_auth(
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=certs.ca,
        kafka_ssl_certfile=certs.client_cert,
        kafka_ssl_keyfile=certs.client_key,
    )
    assert auth["security_protocol"] == "SSL"
    assert _ca_subjects(auth["ssl_context"]) == ["ssi-test-ca"]
    # a client certificate needs its key: the cert alone (without the key) is refused
    with pytest.raises(ssl.SSLError):
        kafka_auth(kafka_security_protocol="SSL", kafka_ssl_certfile=certs.client_cert)


@pytest.mark.parametrize(
    "settings",
    [
        {"kafka_security_protocol": "SASL_PLAINTEXT"},
        {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "alice"},
        {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": SASL_PW},
        {"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": Path("k.pem")},
    ],
)
def test_kafka_incomplete_settings_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        broker_credentials(Settings(**settings))
    assert SASL_PW not in str(info.value)


# ------------------------------------------------------------------------------------- Redis


def pool_kwargs(settings: Settings, url: str) -> tuple[type, dict[str, Any]]:
    client = redis_client(settings, url)
    pool = client.connection_pool
    return pool.connection_class, dict(pool.connection_kwargs)


def test_redis_url_credentials_and_tls(certs: Certs) -> None:
    s = Settings(
        redis_ssl_ca_certs=certs.ca,
        redis_ssl_certfile=certs.client_cert,
        redis_ssl_keyfile=certs.client_key,
    )
    cls, kw = pool_kwargs(s, "rediss://ssi:p%40ss%3Aword@redis.example:6380/3")
    assert cls is SSLConnection
    assert (kw["username"], kw["password"]) == ("ssi", "p@ss:word")  # percent-decoded
    assert (kw["host"], kw["port"], kw["db"]) == ("redis.example", 6380, 3)
    assert kw["ssl_ca_certs"] == str(certs.ca)
    assert kw["ssl_certfile"] == str(certs.client_cert)
    assert kw["ssl_keyfile"] == str(certs.client_key)
    assert kw.get("ssl_cert_reqs", "required") in ("required", ssl.CERT_REQUIRED)


def test_redis_settings_override_url_credentials() -> None:
    s = Settings(redis_username="acl-user", redis_password=REDIS_PW)
    _, kw = pool_kwargs(s, "redis://old:old-pw@h:6379/0")
    assert (kw["username"], kw["password"]) == ("acl-user", REDIS_PW)
    _, kw = pool_kwargs(Settings(redis_password=REDIS_PW), "redis://url-user:old@h:6379/0")
    assert (kw["username"], kw["password"]) == ("url-user", REDIS_PW)
    _, kw = pool_kwargs(Settings(), "redis://h:6379/0")
    assert "password" not in kw and "username" not in kw
    assert REDIS_PW not in repr(redis_client(s, "redis://old:old-pw@h:6379/0"))


def test_redis_tls_files_need_rediss(certs: Certs) -> None:
    with pytest.raises(ConfigError):
        redis_client(Settings(redis_ssl_ca_certs=certs.ca), "redis://h:6379/0")
    with pytest.raises(ConfigError):
        redis_client(Settings(redis_ssl_keyfile=certs.client_key), "rediss://h:6380/0")


# ------------------------------------------------------------------------------------ tokens


def test_tokens_plain_and_sha256(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens"
    digest = hashlib.sha256(b"hashed-token").hexdigest()
    path.write_text(f"# c\nplain-token *   # admin\n\nsha256:{digest.upper()} u7\n")
    path.chmod(0o600)
    tokens = load_tokens(path)
    assert "readable by group or others" not in caplog.text
    assert principal_for("Bearer plain-token", tokens) == "*"
    assert principal_for("Bearer hashed-token", tokens) == "u7"
    assert principal_for("bearer hashed-token", tokens) == "u7"
    assert principal_for("BEARER  hashed-token ", tokens) == "u7"
    refused = [None, "", "Bearer", "Bearer ", "Basic hashed-token", "hashed-token"]
    refused += [f"Bearer sha256:{digest}", f"Bearer {digest}", "Bearer plain-token2"]
    for header in refused:
        assert principal_for(header, tokens) is None, header
    # the plain token is not kept
    assert all(isinstance(d, bytes) and len(d) == 32 for d, _ in tokens)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="ssi.web"):
        load_tokens(path)
    assert "readable by group or others" in caplog.text


@pytest.mark.parametrize(
    "line",
    ["sha256:abc u1", "sha256:" + "g" * 64 + " u1", "Zq9-only-a-token", "Zq9-tok u1 extra"],
)
def test_tokens_file_errors_name_the_line_not_the_token(tmp_path: Path, line: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"good-token *\n{line}\n")
    path.chmod(0o600)
    with pytest.raises(TokenError) as info:
        load_tokens(path)
    assert "line 2" in str(info.value)
    assert line.split()[0] not in str(info.value)


def test_token_comparison_does_not_stop_at_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every known digest is compared with `hmac.compare_digest`, matched or not, so the
    time taken does not say which token (or how much of one) matched."""
    tokens = [(hashlib.sha256(f"t{i}".encode()).digest(), f"u{i}") for i in range(5)]
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(web.hmac, "compare_digest", counting)
    for header, principal in [("Bearer t0", "u0"), ("Bearer t4", "u4"), ("Bearer x", None)]:
        calls.clear()
        assert principal_for(header, tokens) == principal
        assert len(calls) == len(tokens)
        assert all(len(a) == len(b) == 32 for a, b in calls)  # digests, never raw tokens
