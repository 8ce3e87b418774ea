"""Sending activity to the broker at a target rate (`ssi simulate` without `--out`, the demo)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaProducer


def bootstrap_of(url: str) -> str:
    """`kafka://h:p[;h:p]` or `h:p,h:p` → aiokafka's `h:p,h:p`."""
    if url.startswith("kafka://"):
        url = url[len("kafka://") :]
    return url.replace(";", ",")


async def send_paced(
    producer: AIOKafkaProducer,
    topic: str,
    events: Iterator[dict[str, Any]],
    rate: float,
    duration: float,
    on_progress: Callable[[int, float], None] | None = None,
    corrupt_every: int = 0,
) -> int:
    """Send events keyed by actor at `rate` per second (0: as fast as possible) for `duration`
    seconds (0: until the iterator ends or the task is cancelled). Returns the count sent.

    `corrupt_every` > 0 sends a malformed record every that many events (demo: dead letters).
    """
    sent = 0
    t0 = time.monotonic()
    last_report = t0
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    pending = []
    for ev in events:
        now = time.monotonic()
        if duration and now - t0 >= duration:
            break
        if rate > 0:
            due = t0 + sent / rate
            if due > now:
                await asyncio.sleep(due - now)
        value = dumps(ev).encode()
        if corrupt_every and sent and sent % corrupt_every == 0:
            value = value[: len(value) // 2]  # a truncated record: invalid JSON
        pending.append(await producer.send(topic, value, key=str(ev["subject"]).encode()))
        sent += 1
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending.clear()
        if on_progress and now - last_report >= 1.0:
            on_progress(sent, now - t0)
            last_report = now
    if pending:
        await asyncio.gather(*pending)
    if on_progress:
        on_progress(sent, time.monotonic() - t0)
    return sent


def progress_bar(total_seconds: float) -> Callable[[int, float], None]:
    """A one-line progress report on stderr."""

    def report(sent: int, elapsed: float) -> None:
        rate = sent / elapsed if elapsed > 0 else 0.0
        if total_seconds:
            frac = min(1.0, elapsed / total_seconds)
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r[{bar:<30}] {sent} events, {rate:.0f}/s   ")
        else:
            sys.stderr.write(f"\r{sent} events, {rate:.0f}/s   ")
        sys.stderr.flush()

    return report
