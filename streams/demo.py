"""`ssi demo`: embedded broker and Redis, a worker, the simulator and a live terminal view."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from scoring.errors import SsiError
from streams.config import Settings
from streams.produce import bootstrap_of, send_paced
from streams.worker import start_infra, write_tokens

HIST_EDGES = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 101)


@dataclass
class View:
    """What the live view shows, fed by the score-change and dead-letter consumers."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    changes: int = 0
    dead: dict[str, int] = field(default_factory=dict)
    latest: dict[str, float] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    movers: deque[tuple[float, str, float, float]] = field(
        default_factory=lambda: deque(maxlen=500)
    )
    causes: dict[str, int] = field(default_factory=dict)
    rates: deque[tuple[float, int, int]] = field(default_factory=lambda: deque(maxlen=10))

    def on_change(self, v: dict[str, Any]) -> None:
        user = v["user_id"]
        if v["version"] < self.versions.get(user, 0):
            return  # keep the highest version per user
        self.versions[user] = v["version"]
        self.latest[user] = v["score"]
        self.changes += 1
        self.causes[v["cause"]] = self.causes.get(v["cause"], 0) + 1
        if v.get("previous_score") is not None:
            self.movers.append((time.monotonic(), user, v["score"], v["delta"]))

    def render(self, api: str, token: str, sample_user: str | None) -> str:
        now = time.monotonic()
        self.rates.append((now, self.sent, self.changes))
        t0, s0, c0 = self.rates[0]
        dt = max(1e-6, now - t0)
        ev_rate = (self.sent - s0) / dt
        ch_rate = (self.changes - c0) / dt
        scores = list(self.latest.values())
        lines = [
            "ssi-stream demo  (Ctrl-C to stop)",
            "",
            f"  API        {api}",
            f"  token      {token}   (principal *)",
        ]
        if sample_user:
            lines.append(
                f"  try        curl -s -H 'Authorization: Bearer {token}' "
                f"{api}/v1/users/{sample_user}/score"
            )
        lines += [
            f"  metrics    {api}/metrics",
            "",
            f"  events sent      {self.sent:>9}   {ev_rate:8.0f}/s",
            f"  score changes    {self.changes:>9}   {ch_rate:8.0f}/s   "
            + "  ".join(f"{k}={v}" for k, v in sorted(self.causes.items())),
            f"  users scored     {len(scores):>9}"
            + (f"   mean {sum(scores) / len(scores):5.1f}" if scores else ""),
            f"  dead letters     {sum(self.dead.values()):>9}   "
            + "  ".join(f"{k}={v}" for k, v in sorted(self.dead.items())),
            "",
            "  score distribution",
        ]
        n = max(1, len(scores))
        for lo, hi in itertools.pairwise(HIST_EDGES):
            k = sum(1 for s in scores if lo <= s < hi)
            bar = "█" * int(40 * k / n)
            label = f"{lo:>3}-{min(hi, 100):<3}"
            lines.append(f"    {label} {bar:<40} {100 * k / n:5.1f}%")
        recent = [m for m in self.movers if now - m[0] < 30]
        recent.sort(key=lambda m: -abs(m[3]))
        lines += ["", "  top movers (last 30 s)"]
        for _, user, score, delta in recent[:5]:
            lines.append(f"    {user:<16} {score:6.2f}  {delta:+6.2f}")
        return "\n".join(lines)


def _wait_ready(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SsiError(f"demo: the worker exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SsiError(f"demo: the worker was not ready after {timeout:.0f} s; see {log}")


async def _consume(bootstrap: str, settings: Settings, view: View) -> None:
    consumer = AIOKafkaConsumer(
        settings.topic("score-changes"),
        settings.topic("dead-letters"),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, msgs in batch.items():
                for m in msgs:
                    if tp.topic == settings.topic("dead-letters"):
                        code = dict(m.headers).get("ssi-error-code", b"?").decode()
                        view.dead[code] = view.dead.get(code, 0) + 1
                    else:
                        with contextlib.suppress(ValueError, KeyError):
                            view.on_change(json.loads(m.value))
    finally:
        await consumer.stop()


async def _run(args: Any, settings: Settings, bootstrap: str, api: str, token: str) -> None:
    from streams.simulator import generate, live

    view = View()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    consumer_task = asyncio.create_task(_consume(bootstrap, settings, view))

    def progress(sent: int, _elapsed: float) -> None:
        view.sent = sent

    async def send_all() -> int:
        sent = 0
        if args.backfill_days > 0:
            # the population's recent history first, as fast as the scorer takes it, so the
            # distribution is realistic from the start; then the same users act live
            history = generate(args.users, args.seed, args.backfill_days, datetime.now(UTC))
            sent = await send_paced(producer, topic, history, 0, 0, progress)
        base = sent

        def live_progress(n: int, elapsed: float) -> None:
            progress(base + n, elapsed)

        return base + await send_paced(
            producer,
            topic,
            live(args.users, args.seed, args.rate, lambda: datetime.now(UTC)),
            args.rate,
            args.duration,
            live_progress,
            corrupt_every=997,
        )

    topic = settings.topic("activity")
    sender = asyncio.create_task(send_all())
    tty = sys.stdout.isatty()
    try:
        last_print = 0.0
        while not sender.done():
            await asyncio.sleep(1.0)
            sample = next(iter(view.latest), None)
            screen = view.render(api, token, sample)
            if tty:
                sys.stdout.write("\x1b[H\x1b[2J" + screen + "\n")
                sys.stdout.flush()
            elif time.monotonic() - last_print >= 5:
                print(screen + "\n", flush=True)
                last_print = time.monotonic()
        await sender
        await asyncio.sleep(3)  # let the last score changes arrive
        print(view.render(api, token, next(iter(view.latest), None)), flush=True)
    finally:
        sender.cancel()
        consumer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await consumer_task
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
        await producer.stop()


def run_demo(args: Any) -> int:
    """Everything on this machine, no Docker: broker, Redis, worker, simulator, live view."""
    settings = Settings()
    print("ssi demo: starting the embedded broker and Redis ...", flush=True)
    infra = start_infra(settings)
    workdir = Path(tempfile.mkdtemp(prefix="ssi-demo-"))
    token = secrets.token_urlsafe(18)
    tokens = workdir / "tokens"
    write_tokens(tokens, [(token, "*")])
    api = f"http://127.0.0.1:{args.port}"
    log = workdir / "worker.log"
    env = dict(
        os.environ,
        SSI_BROKER_URL=infra.broker_url,
        SSI_REDIS_URL=infra.redis_url,
        SSI_API_TOKENS=str(tokens),
        SSI_WEB_PORT=str(args.port),
        SSI_SESSION_TIMEOUT=os.environ.get("SSI_SESSION_TIMEOUT", "6"),
        SSI_SWEEP_INTERVAL=os.environ.get("SSI_SWEEP_INTERVAL", "10"),
        SSI_DATA_DIR=str(workdir / "faust"),
    )
    print(f"ssi demo: starting a worker (log: {log}) ...", flush=True)
    with open(log, "wb") as fh:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(api, 90, worker, log)
        print(f"ssi demo: worker ready; API {api}  token {token}", flush=True)
        asyncio.run(_run(args, settings, bootstrap_of(infra.broker_url), api, token))
    except KeyboardInterrupt:
        print("\nssi demo: stopping ...", flush=True)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(5)
        infra.stop()
    return 0
