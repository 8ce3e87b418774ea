"""Security against real servers (issue 6, security).

- Redis with an ACL user (default user off, keys limited to the worker's prefix), a password,
  TLS only (`rediss://`, no plain port) and client certificates, on a real `redis-server`
  started here with a CA and certificates made by the `openssl` CLI: the worker's Redis client
  connects with the URL's user and password or the SSI_REDIS_* settings, and fails cleanly
  (no secret in the error) with a wrong password, no CA, no client certificate or plain TCP.
- A real worker on that Redis, with every secret set (Redis password in the URL, a Kafka SASL
  password, API tokens): it scores, and no secret appears in its log, `/metrics`, or any
  response body; the API refuses other users' data without telling whether they exist,
  enforces the 10-member floor for industries, teams and the network standing, and answers
  every error in JSON.
- Kafka SASL: the credentials reach the broker's SASL handshake (the bundled Tansu answers
  UNSUPPORTED_SASL_MECHANISM for PLAIN and SCRAM with memory storage, so no login can succeed
  here); the password is in neither the error nor the client's debug log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.config import ConfigError, Settings
from streams.embedded import EmbeddedRedis, free_port, redis_binary
from streams.worker import broker_credentials, redis_client
from tests.integration.worker_proc import (
    WorkerProcess,
    consume_all,
    latest_by_version,
    produce,
    worker_env,
)

PREFIX_ROOT = "sec"  # the ACL user may only touch keys starting with this
REDIS_USER = "ssi-worker"
REDIS_PASSWORD = "redis-" + secrets.token_hex(12)  # distinctive: easy to grep for
SASL_PASSWORD = "sasl-" + secrets.token_hex(12)
ADMIN_TOKEN = "admin-" + secrets.token_hex(16)
U1_TOKEN = "u1-" + secrets.token_hex(16)
SECRETS = (REDIS_PASSWORD, SASL_PASSWORD, ADMIN_TOKEN, U1_TOKEN)


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certs(d: Path) -> Certs:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=ssi-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    for name, ext in [
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ]:
        (d / f"{name}.ext").write_text(ext)
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
            "-extfile", f"{name}.ext")  # fmt: skip
    return Certs(
        d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key"
    )


class SecureRedis(EmbeddedRedis):
    """redis-server with TLS only (no plain port), client certificates required, the default
    user off and one ACL user limited to `PREFIX_ROOT*` keys without dangerous commands."""

    def __init__(self, certs: Certs, workdir: Path) -> None:
        super().__init__(binary=redis_binary(), port=free_port(), workdir=workdir,
                         owns_workdir=False)  # fmt: skip
        self.certs = certs

    @property
    def url(self) -> str:
        return f"rediss://{REDIS_USER}:{REDIS_PASSWORD}@{self.host}:{self.port}/0"

    def _prepare(self) -> None:
        c = self.certs
        lines = [
            f"bind {self.host}",
            "port 0",
            f"tls-port {self.port}",
            f"tls-cert-file {c.server_cert}",
            f"tls-key-file {c.server_key}",
            f"tls-ca-cert-file {c.ca}",
            "tls-auth-clients yes",
            "protected-mode yes",
            "daemonize no",
            f'dir "{self.workdir}"',
            'logfile ""',
            'save ""',
            "appendonly no",
            "user default off",
            f"user {REDIS_USER} on >{REDIS_PASSWORD} ~{PREFIX_ROOT}* &* +@all -@dangerous",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.config_path.chmod(0o600)

    def client(self, **kw: Any) -> redis_sync.Redis:
        args: dict[str, Any] = dict(
            host=self.host, port=self.port, ssl=True, ssl_ca_certs=str(self.certs.ca),
            ssl_certfile=str(self.certs.client_cert), ssl_keyfile=str(self.certs.client_key),
            username=REDIS_USER, password=REDIS_PASSWORD, socket_timeout=2,
        )  # fmt: skip
        args.update(kw)
        return redis_sync.Redis(**args)

    def _is_ready(self) -> bool:
        try:
            return bool(self.client().ping())
        except (redis_sync.RedisError, OSError):
            return False


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def secure_redis(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRedis]:
    server = SecureRedis(certs, tmp_path_factory.mktemp("secure-redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def tls_settings(certs: Certs, **over: Any) -> Settings:
    base: dict[str, Any] = dict(
        redis_ssl_ca_certs=certs.ca,
        redis_ssl_certfile=certs.client_cert,
        redis_ssl_keyfile=certs.client_key,
    )
    base.update(over)
    return Settings(**base)


def assert_no_secret(text: str, where: str) -> None:
    for s in SECRETS:
        assert s not in text, f"a secret is in {where}"


# ------------------------------------------------------------------ Redis: ACL, password, TLS


async def test_redis_client_acl_password_tls(secure_redis: SecureRedis, certs: Certs) -> None:
    key = f"{PREFIX_ROOT}{uuid.uuid4().hex[:8]}.probe"
    host = f"{secure_redis.host}:{secure_redis.port}"

    # user and password in the URL, CA and client certificate from the settings
    r = redis_client(tls_settings(certs), secure_redis.url)
    try:
        assert await r.ping()
        await r.set(key, b"1")
        assert await r.get(key) == b"1"
        with pytest.raises(redis_sync.exceptions.NoPermissionError):
            await r.set("elsewhere", b"1")  # the ACL is really in force
        assert_no_secret(repr(r), "repr(redis client)")
    finally:
        await r.aclose()

    # SSI_REDIS_USERNAME / SSI_REDIS_PASSWORD with a URL that carries neither
    s = tls_settings(certs, redis_username=REDIS_USER, redis_password=REDIS_PASSWORD)
    r = redis_client(s, f"rediss://{host}/0")
    try:
        assert await r.get(key) == b"1"
    finally:
        await r.aclose()

    # every way to get it wrong fails, and the error names no secret
    wrong = "wrong-" + secrets.token_hex(8)
    bad_pair = "invalid username-password pair"
    cases = [
        ("wrong password", tls_settings(certs, redis_password=wrong), secure_redis.url, bad_pair),
        ("no user", tls_settings(certs), f"rediss://:{REDIS_PASSWORD}@{host}/0", bad_pair),
        ("no CA", tls_settings(certs, redis_ssl_ca_certs=None), secure_redis.url, "VERIFY_FAILED"),
        # TLS 1.3: the client's handshake ends before the server checks for a certificate, so
        # the refusal arrives on the first read, as the server's alert or as a reset
        ("no client certificate", Settings(redis_ssl_ca_certs=certs.ca), secure_redis.url,
         ("CERTIFICATE_REQUIRED", "Connection reset by peer")),
        ("plain TCP", Settings(), secure_redis.url.replace("rediss://", "redis://"), ""),
    ]  # fmt: skip
    for what, settings, url, reason in cases:
        client = redis_client(settings, url)
        try:
            with pytest.raises((redis_sync.RedisError, OSError)) as info:
                await asyncio.wait_for(client.ping(), 5)
                pytest.fail(f"{what}: connected")
        finally:
            await client.aclose()
        text = f"{info.value!r} {info.value}"
        reasons = (reason,) if isinstance(reason, str) else reason
        assert any(r in text for r in reasons), (what, text)
        assert_no_secret(text, f"the {what} error")
        assert wrong not in text, what

    # TLS files with a plain URL are refused, not ignored
    with pytest.raises(ConfigError) as cfg:
        redis_client(tls_settings(certs), f"redis://{host}/0")
    assert "rediss://" in str(cfg.value)


# ------------------------------------------------------------------------------ Kafka SASL


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_kafka_sasl_reaches_the_broker_handshake(
    broker: Any, mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError

    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="alice",
        kafka_sasl_password=SASL_PASSWORD,
    )
    auth = credentials_to_aiokafka_auth(broker_credentials(settings))
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000, **auth)
    try:
        with pytest.raises(KafkaConnectionError) as info:
            await asyncio.wait_for(producer.start(), 20)
    finally:
        await producer.stop()
    # the mapping put SASL on the wire: the client asked the broker for this mechanism ...
    assert f"SaslHandShakeRequest_v1(mechanism='{mechanism}')" in caplog.text
    # ... and Tansu 0.6 (memory storage) has no SASL users: UNSUPPORTED_SASL_MECHANISM (33)
    assert "UnsupportedSaslMechanismError" in caplog.text
    assert_no_secret(f"{info.value!r} {info.value}", "the SASL connection error")
    assert_no_secret(caplog.text, "aiokafka's debug log")


# --------------------------------------------------------------- a worker with every secret set


def http(
    base: str, path: str, token: str | None = None, method: str = "GET", scheme: str = "Bearer"
) -> tuple[int, str, str]:
    """(status, content type, body) without raising on HTTP errors."""
    req = urllib.request.Request(base + path, method=method, data=b"" if method != "GET" else None)
    if token is not None:
        req.add_header("Authorization", f"{scheme} {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def events(now: str) -> list[tuple[bytes, bytes, None]]:
    """12 users in industry `software` / team `alpha` (u1 among them), 3 in `retail` / `beta`
    (u2 among them); u1 accepts 11 connections, u2 accepts 2."""
    out: list[dict[str, Any]] = []
    n = 0

    def ev(type_: str, subject: str, data: dict[str, Any]) -> None:
        nonlocal n
        n += 1
        out.append({"specversion": "1.0", "id": f"sec-{n}", "source": "app://sec", "type": type_,
                    "time": now, "subject": subject, "data": data})  # fmt: skip

    alpha = ["u1", *[f"a{i}" for i in range(11)]]
    beta = ["u2", "b0", "b1"]
    for i, u in enumerate(alpha):
        prof = {"photo": True, "skills_count": i % 6, "industry": "software", "team": "alpha"}
        ev("profile.updated", u, prof)
    for u in beta:
        ev("profile.updated", u, {"headline": True, "industry": "retail", "team": "beta"})
    for other in alpha[1:]:
        ev("connection.accepted", "u1", {"requester_id": other})
    for other in beta[1:]:
        ev("connection.accepted", "u2", {"requester_id": other})
    return [(e["subject"].encode(), json.dumps(e).encode(), None) for e in out]


async def test_worker_secrets_access_and_floors(
    broker: Any, secure_redis: SecureRedis, certs: Certs, tmp_path: Path
) -> None:
    prefix = f"{PREFIX_ROOT}{uuid.uuid4().hex[:8]}."
    tokens = tmp_path / "tokens"
    u1_digest = hashlib.sha256(U1_TOKEN.encode()).hexdigest()
    tokens.write_text(f"# test tokens\n{ADMIN_TOKEN} *\nsha256:{u1_digest} u1\n")
    tokens.chmod(0o600)
    now = "2026-11-20T10:00:00Z"
    env = worker_env(
        broker.url,
        secure_redis.url,  # rediss://user:password@...
        prefix,
        tmp_path,
        SSI_CLOCK=now,
        SSI_API_TOKENS=str(tokens),
        SSI_REDIS_SSL_CA_CERTS=str(certs.ca),
        SSI_REDIS_SSL_CERTFILE=str(certs.client_cert),
        SSI_REDIS_SSL_KEYFILE=str(certs.client_key),
        SSI_KAFKA_SASL_USERNAME="alice",
        SSI_KAFKA_SASL_PASSWORD=SASL_PASSWORD,  # set, unused with PLAINTEXT: still never shown
        SSI_LOG_LEVEL="debug",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        batch = events(now)
        await produce(broker.bootstrap, prefix + "activity", batch)
        users = {k.decode() for k, _, _ in batch} | {"a0"}
        deadline = time.monotonic() + 60
        latest: dict[str, Any] = {}
        while time.monotonic() < deadline and set(latest) != users | {"b0", "b1"}:
            latest = latest_by_version(
                await consume_all(broker.bootstrap, prefix + "score-changes", idle=2, limit=10)
            )
        assert {"u1", "u2", "a10", "b1"} <= set(latest), worker.tail()
        base = worker.url
        bodies: list[str] = []

        def get(path: str, token: str | None = None, **kw: Any) -> tuple[int, dict[str, Any]]:
            status, ctype, body = http(base, path, token, **kw)
            bodies.append(body)
            if status >= 400:
                assert ctype.startswith("application/json"), (path, status, ctype, body)
                err = json.loads(body)["error"]
                assert set(err) == {"code", "message"}, body
                assert "Traceback" not in body
            return status, json.loads(body) if ctype.startswith("application/json") else {}

        # own data with the sha256-listed token; the scheme name is case-insensitive
        status, me = get("/v1/users/u1/score", U1_TOKEN)
        assert status == 200 and me["score"] == latest["u1"]["score"]
        assert get("/v1/users/u1/score", U1_TOKEN, scheme="bearer")[0] == 200
        assert get("/v1/users/u1/history?days=7", U1_TOKEN)[0] == 200
        # floors in the user's own response: industry 12 members, network 11 scored connections
        assert me["industry"]["available"] and me["industry"]["members"] == 12
        assert me["network"]["available"] and me["network"]["members"] == 11
        # u2's industry (3) and network (2) are under the floor, even for the `*` principal
        status, u2 = get("/v1/users/u2/score", ADMIN_TOKEN)
        assert status == 200
        assert u2["industry"] == {"name": "retail", "available": False,
                                  "reason": "fewer than 10 members"}  # fmt: skip
        assert u2["network"]["available"] is False and "members" not in u2["network"]
        assert "average" not in u2["network"] and "top_percent" not in u2["network"]

        # another user's data, existing or not: one status, one body
        for path in ("score", "history?days=7"):
            other = get(f"/v1/users/u2/{path}", U1_TOKEN)
            ghost = get(f"/v1/users/no-such-user/{path}", U1_TOKEN)
            assert other[0] == ghost[0] == 403
            assert other[1] == ghost[1]
        # only the `*` principal learns that a user does not exist
        assert get("/v1/users/no-such-user/score", ADMIN_TOKEN)[0] == 404
        # no token, a wrong one, a hash instead of the token, another scheme: 401
        for token, scheme in [
            (None, "Bearer"),
            ("nope", "Bearer"),
            (u1_digest, "Bearer"),
            (f"sha256:{u1_digest}", "Bearer"),
            (U1_TOKEN, "Basic"),
            ("", "Bearer"),
        ]:
            assert get("/v1/users/u1/score", token, scheme=scheme)[0] == 401, (token, scheme)

        # group statistics: 200 at 12 members, 403 below the floor for everyone
        for kind, big, small in [("industries", "software", "retail"), ("teams", "alpha", "beta")]:
            status, stats = get(f"/v1/{kind}/{big}/stats", U1_TOKEN)
            assert status == 200 and stats["members"] == 12
            floor = get(f"/v1/{kind}/{small}/stats", ADMIN_TOKEN)
            assert floor[0] == 403 and floor[1]["error"]["code"] == "below_privacy_floor"
            assert get(f"/v1/{kind}/nothing-here/stats", ADMIN_TOKEN) == floor
            # a non-member cannot tell a small group from a missing one
            assert get(f"/v1/{kind}/{small}/stats", U1_TOKEN) == get(
                f"/v1/{kind}/nothing-here/stats", U1_TOKEN
            )
            assert get(f"/v1/{kind}/{small}/stats", U1_TOKEN)[0] == 403

        # JSON errors from aiohttp's own routing too
        status, err = get("/no/such/route")
        assert status == 404 and err["error"]["code"] == "not_found"
        status, err = get("/v1/users/u1/score", U1_TOKEN, method="POST")
        assert status == 405 and err["error"]["code"] == "method_not_allowed"
        status, err = get("/v1/users/u1/history?days=x", U1_TOKEN)
        assert status == 400 and err["error"]["code"] == "bad_request"

        # no secret in any response, /metrics, Faust's own pages, or the log
        for path in ("/metrics", "/readyz", "/healthz", "/", "/router/", "/table/"):
            bodies.append(http(base, path)[2])
        assert worker.get("/readyz")[0] == 200
        for n, body in enumerate(bodies):
            assert_no_secret(body, f"response body {n}")
        log = worker.log.read_text(errors="replace")
        assert "DEBUG" in log  # the most talkative level was on
        assert f"{REDIS_USER}:***@" in log  # the URL is logged, redacted
        assert_no_secret(log, "the worker log")
    finally:
        worker.stop()
    assert_no_secret(worker.log.read_text(errors="replace"), "the worker log after stop")
