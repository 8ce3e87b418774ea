"""Helpers for integration tests: a real `ssi worker` process, producing and consuming topics."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.embedded import EmbeddedBroker, free_port
from tests.integration.kafka_shim import ShimProcess

ROOT = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    """Whether the tests run in CI, where a missing tool is a failure, never a skip."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


@dataclass
class ShimmedBroker:
    """A Tansu broker advertised at, and reached through, a kafka shim (fixture
    ``shimmed_broker``): kcat can talk to it."""

    broker: EmbeddedBroker
    shim: ShimProcess

    @property
    def bootstrap(self) -> str:
        return self.shim.bootstrap

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"


class WorkerProcess:
    """`python -m streams.cli worker` with the given settings; stopped by pid."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = int(env["SSI_WEB_PORT"])
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> WorkerProcess:
        fh = open(self.log, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=self.env,
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        fh.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.tail()}")
            status, _ = self.get("/readyz")
            if status == 200:
                return
            time.sleep(0.5)
        raise AssertionError(f"worker not ready in {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                body = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            body = exc.read()
            status = exc.code
        except OSError:
            return 0, None
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def worker_env(
    broker_url: str, redis_url: str, prefix: str, tmp: Path, **extra: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SSI_BROKER_URL=broker_url,
        SSI_REDIS_URL=redis_url,
        SSI_TOPIC_PREFIX=prefix,
        SSI_GROUP_ID=prefix + "scorer",
        SSI_WEB_PORT=str(free_port()),
        SSI_SESSION_TIMEOUT="6",
        SSI_DATA_DIR=str(tmp / "faust"),
        SSI_LOG_LEVEL="info",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


class KcatError(RuntimeError):
    """kcat failed; the message carries its exit code and stderr."""


def kcat_binary() -> str | None:
    """kcat (or its old name, kafkacat) from PATH."""
    return shutil.which("kcat") or shutil.which("kafkacat")


def run_kcat(args: list[str], timeout: float = 120) -> str:
    """Run kcat with ``args``; its stdout, or :class:`KcatError` with its stderr."""
    kcat = kcat_binary()
    if kcat is None:
        raise KcatError("kcat is not installed")
    done = subprocess.run([kcat, *args], capture_output=True, timeout=timeout)
    if done.returncode != 0:
        raise KcatError(
            f"kcat {' '.join(args)} exited {done.returncode}:\n"
            + done.stderr.decode(errors="replace")[-4000:]
        )
    return done.stdout.decode(errors="replace")


def kcat_produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes, bytes]],
    tmp: Path,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """Produce ``(key, value)`` records with kcat, every one with ``headers``.

    Records go through a file of ``key<TAB>value`` lines: a key holds no tab or newline,
    a value no newline. Raises :class:`KcatError` (with kcat's stderr) when kcat fails.
    """
    path = tmp / "kcat-input"
    with open(path, "wb") as fh:
        for key, value in records:
            if b"\t" in key or b"\n" in key or b"\n" in value:
                raise ValueError(f"record not expressible as a kcat line: {key!r}")
            fh.write(key + b"\t" + value + b"\n")
    args = ["-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-l", str(path)]
    for name, text in headers:
        args += ["-H", f"{name}={text}"]
    # delivery failures end kcat with a non-zero code after this long, not the 5 min default
    run_kcat([*args, "-X", "message.timeout.ms=60000"])


def produce_with_kcat(bootstrap: str, topic: str, lines: Iterable[bytes], tmp: Path) -> bool:
    """Produce lines with kcat (a real, non-Python Kafka client), keyed by their subject.

    False when kcat is not installed; :class:`KcatError` with its stderr when it fails.
    Tansu must be reached through tests/integration/kafka_shim.py (fixture
    ``shimmed_broker``): kcat cannot parse its ApiVersions answer directly.
    """
    if kcat_binary() is None:
        return False
    records = []
    for line in lines:
        try:
            key = str(json.loads(line).get("subject", "-")).encode()
        except (ValueError, AttributeError):
            key = b"-"
        records.append((key.replace(b"\t", b" ").replace(b"\n", b" ") or b"-", line))
    kcat_produce(bootstrap, topic, records, tmp)
    return True


async def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]],
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        futs = [
            await producer.send(topic, value, key=key, headers=headers)
            for key, value, headers in records
        ]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


async def consume_all(
    bootstrap: str, topic: str, idle: float = 6.0, limit: float = 120
) -> list[Any]:
    """Every record of a topic, reading until nothing new arrived for `idle` seconds."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    out: list[Any] = []
    try:
        t_end = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < t_end and (not out or time.monotonic() - last < idle):
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                out.extend(msgs)
                if msgs:
                    last = time.monotonic()
    finally:
        await consumer.stop()
    return out


def latest_by_version(records: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """What a subscriber keeping the highest version per user holds."""
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        v = json.loads(r.value)
        cur = latest.get(v["user_id"])
        if cur is None or v["version"] >= cur["version"]:
            latest[v["user_id"]] = v
    return latest
