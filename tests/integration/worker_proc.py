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
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


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


def produce_with_kcat(bootstrap: str, topic: str, lines: Iterable[bytes], tmp: Path) -> bool:
    """Produce `key<TAB>value` lines with kcat (a real, non-Python Kafka client) if present."""
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if not kcat:
        return False
    path = tmp / "kcat-input"
    with open(path, "wb") as fh:
        for line in lines:
            try:
                key = str(json.loads(line).get("subject", "-")).encode()
            except (ValueError, AttributeError):
                key = b"-"
            key = key.replace(b"\t", b" ").replace(b"\n", b" ") or b"-"
            fh.write(key + b"\t" + line + b"\n")
    done = subprocess.run(
        [kcat, "-P", "-b", bootstrap, "-t", topic, "-K", "\t", "-l", str(path)],
        capture_output=True,
        timeout=120,
    )
    # librdkafka's ApiVersionRequest fails against the embedded Tansu 0.6 broker ("Read
    # underflow") before anything is produced; the caller then produces with aiokafka.
    return done.returncode == 0


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
