"""Fault-injection helpers for the chaos tests (tests/integration/test_chaos.py).

A chaos scenario runs real `ssi worker` processes against its own broker and Redis, feeds a
held-out stream into `ssi.activity` at a steady pace in the background, injects faults (SIGKILL,
SIGSTOP/SIGCONT of Redis or the broker, Redis restarted empty + `ssi rebuild`) while a
subscriber reads `ssi.score-changes` from the beginning, and finally compares what a subscriber
keeping the highest version per user holds with the independent model (tests/reference).

- :class:`Feed` produces records in order at a pace, remembering where each one landed;
- :class:`Subscriber` reads score changes for the whole scenario and checks the version order;
- :class:`Scenario` counts what was done (kills, freezes, records, users, duration) and prints it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.embedded import free_port
from tests.integration.worker_proc import ROOT, WorkerProcess, consume_all, worker_env
from tests.reference import heldout
from tests.reference import model as ref

FULL = os.environ.get("SSI_CHAOS_FULL") == "1"
PARTITIONS = 8
TOPICS = ("activity", "signals", "score-changes", "dead-letters")
TOLERANCE = 0.011  # scores and pillars carry 2 decimals; the model is compared to 0.01


@dataclass(frozen=True)
class Rec:
    """One record to produce, and the dead-letter code it must get (None: a valid event)."""

    key: bytes | None
    value: bytes | None
    code: str | None = None
    kind: str = "event"


def stream(seed: int, users: int, events: int) -> list[Rec]:
    """A held-out stream (tests/reference/heldout.py) keyed by actor, as producers would.

    Conflicting duplicates are left out: when the copies name different actors they land in
    different partitions and the stream keeps whichever it reads first (README), so the result
    would depend on timing rather than on the model.
    """
    out = []
    for line, code in heldout.build(seed, users, events, conflicting_duplicates=False):
        if not line.strip():  # a blank line in a file is nothing; poison() adds empty records
            continue
        raw = line.encode("utf-8", "surrogateescape")
        try:
            key = str(json.loads(raw)["subject"]).encode()
        except (ValueError, KeyError, TypeError):
            key = b"bad"
        out.append(Rec(key, raw, code, "heldout-invalid" if code else "event"))
    return out


def poison(now: datetime, copies: int = 1) -> list[Rec]:
    """The poison records of issue 6's "Done when": deeply nested, invalid UTF-8, NaN, empty,
    oversize (> 64 KiB). Codes are the independent model's, except the empty record which the
    model skips as a blank line; the stream dead-letters it as `invalid_json` ("empty record")."""
    t = heldout.rfc3339(now)

    def event(**extra: Any) -> dict[str, Any]:
        ev = {
            "specversion": "1.0",
            "id": "poison",
            "source": "app://chaos",
            "type": "post.published",
            "time": t,
            "subject": "poison-user",
            "data": {"post_id": "p1", "format": "text"},
        }
        ev.update(extra)
        return ev

    bodies: list[tuple[str, bytes | None]] = []
    for i in range(copies):
        deep = ("[" * 30000 + "]" * 30000).encode()  # 60 000 bytes, under the size limit
        nested = json.dumps(event(id=f"deep-{i}", data={"post_id": "p", "format": "text"}))
        nested = nested.replace('"text"}', '"text", "x": ' + "[" * 20000 + "]" * 20000 + "}")
        utf8 = json.dumps(event(id=f"utf8-{i}", subject="poison-\udcff"), ensure_ascii=False)
        nan = json.dumps(event(id=f"nan-{i}", data={"post_id": "p", "format": "text", "x": 1}))
        nan = nan.replace('"x": 1', '"x": NaN')
        big = json.dumps(event(id=f"big-{i}", data={"post_id": "x" * 70000, "format": "text"}))
        bodies += [
            ("deeply-nested", deep),
            ("deeply-nested", nested.encode()),
            ("invalid-utf8", utf8.encode("utf-8", "surrogateescape")),
            ("invalid-utf8", b"\xff\xfe\xc3\x28" + b'{"a": 1}'),
            ("nan", nan.encode()),
            ("nan", b'{"specversion": "1.0", "x": Infinity}'),
            ("empty", b""),
            ("empty", None),  # a tombstone: no value at all
            ("oversize", big.encode()),
        ]
    out = []
    for kind, body in bodies:
        if not body:
            code = "invalid_json"
        else:
            try:
                ref.parse_line(body)
            except ref.Rejected as err:
                code = err.code
            else:  # pragma: no cover - a poison body the model accepts is a bug in this list
                raise AssertionError(f"poison record {kind} is valid")
        out.append(Rec(b"poison-user", body, code, kind))
    return out


def mix(records: list[Rec], extra: list[Rec], seed: int) -> list[Rec]:
    """`extra` spread at random positions through `records` (order of each kept)."""
    rng = random.Random(seed)
    out = list(records)
    for rec in extra:
        out.insert(rng.randrange(len(out) + 1), rec)
    return out


def expected_scores(records: list[Rec], now: datetime) -> dict[str, dict[str, Any]]:
    """The independent model's score per user for the valid records of a stream."""
    lines: list[str | bytes] = [r.value for r in records if r.value]
    scores, _ = ref.score_lines(lines, now)
    return scores


async def create_topics(bootstrap: str, prefix: str) -> None:
    """Create the scorer's topics up front, so a subscriber can assign every partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(prefix + t, PARTITIONS, 1) for t in TOPICS])
    finally:
        await admin.close()


class Feed:
    """Produces `records` in order, `rate` records a second, in a background task.

    Each record's (partition, offset) is kept for the dead-letter check. A frozen broker stalls
    the feed (sends wait for acknowledgement), as it would stall any producer.
    """

    def __init__(self, bootstrap: str, topic: str, records: list[Rec], rate: float) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.records = records
        self.rate = rate
        self.sent = 0
        self.landed: list[tuple[int, int] | None] = [None] * len(records)
        self._task: asyncio.Task[None] | None = None
        self._resume = asyncio.Event()
        self._resume.set()
        self._stop_at = len(records)

    @property
    def done(self) -> bool:
        return self.sent >= len(self.records)

    def start(self, stop_at: int | None = None) -> None:
        """Start producing (up to record `stop_at`, exclusive, then wait for `resume`)."""
        self._stop_at = len(self.records) if stop_at is None else stop_at
        self._task = asyncio.create_task(self._run())

    def hurry(self, rate: float = 3000) -> None:
        """Produce the rest at `rate` records a second (the faults are over)."""
        self.rate = max(self.rate, rate)

    def resume(self, stop_at: int | None = None) -> None:
        self._stop_at = len(self.records) if stop_at is None else stop_at
        self._resume.set()

    async def paused(self, timeout: float = 120) -> None:
        """Wait until every record before the stop point is acknowledged."""
        async with asyncio.timeout(timeout):
            while self.sent < self._stop_at:
                self._check()
                await asyncio.sleep(0.1)

    async def finished(self, timeout: float = 300) -> None:
        assert self._task is not None
        await asyncio.wait_for(asyncio.shield(self._task), timeout)

    def _check(self) -> None:
        if self._task is not None and self._task.done() and self._task.exception():
            raise AssertionError("feed failed") from self._task.exception()

    async def _run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=5,
            request_timeout_ms=60000,
            max_request_size=4 * 1024 * 1024,
        )
        await producer.start()
        try:
            t0 = time.monotonic()
            i = 0
            while i < len(self.records):
                chunk = max(1, int(self.rate / 20))  # 20 sends a second
                if i >= self._stop_at:
                    self._resume.clear()
                    await self._resume.wait()
                    t0 = time.monotonic()
                    continue
                end = min(i + chunk, self._stop_at, len(self.records))
                futs = [
                    await producer.send(self.topic, r.value, key=r.key) for r in self.records[i:end]
                ]
                for n, fut in enumerate(futs, start=i):
                    meta = await fut
                    self.landed[n] = (meta.partition, meta.offset)
                n_chunk = end - i
                i = end
                self.sent = i
                t0 += n_chunk / self.rate
                delay = t0 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    t0 = time.monotonic()  # behind (a frozen broker): no burst to catch up
        finally:
            await producer.stop()


@dataclass
class Change:
    partition: int
    offset: int
    user: str
    version: int
    score: float
    pillars: dict[str, float]
    cause: str


class Subscriber:
    """Reads `ssi.score-changes` from the beginning for the whole scenario, in the background."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.changes: list[Change] = []
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        consumer.assign([TopicPartition(self.topic, p) for p in range(PARTITIONS)])
        await consumer.seek_to_beginning()
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=500)
            for tp, msgs in batch.items():
                for m in msgs:
                    v = json.loads(m.value)
                    self.changes.append(
                        Change(
                            tp.partition,
                            m.offset,
                            v["user_id"],
                            v["version"],
                            v["score"],
                            v["pillars"],
                            v["cause"],
                        )
                    )

    def latest(self) -> dict[str, Change]:
        """What a subscriber keeping the highest version per user holds."""
        out: dict[str, Change] = {}
        for c in self.changes:
            cur = out.get(c.user)
            if cur is None or c.version >= cur.version:
                out[c.user] = c
        return out

    def version_violations(self) -> list[str]:
        """Per user, in offset order: versions never fall, rise by one at a time, and the same
        version always carries the same score and pillars."""
        by_user: dict[str, list[Change]] = defaultdict(list)
        for c in sorted(self.changes, key=lambda c: (c.partition, c.offset)):
            by_user[c.user].append(c)
        bad = []
        for user, seq in by_user.items():
            if len({c.partition for c in seq}) != 1:
                bad.append(f"{user}: changes on more than one partition")
            for a, b in itertools.pairwise(seq):
                if b.version < a.version:
                    bad.append(f"{user}: version {b.version} @{b.offset} after {a.version}")
                elif b.version == a.version and (b.score, b.pillars) != (a.score, a.pillars):
                    bad.append(f"{user}: version {a.version} carries {a.score} and {b.score}")
                elif b.version > a.version + 1:
                    bad.append(f"{user}: version {b.version} @{b.offset} skips from {a.version}")
        return bad

    def resent(self) -> int:
        """Score changes delivered again with the same version (crash redelivery)."""
        seen: set[tuple[str, int]] = set()
        n = 0
        for c in self.changes:
            if (c.user, c.version) in seen:
                n += 1
            seen.add((c.user, c.version))
        return n

    def mismatches(self, expected: dict[str, dict[str, Any]]) -> list[str]:
        latest = self.latest()
        bad = []
        for user in sorted(set(expected) | set(latest)):
            exp, got = expected.get(user), latest.get(user)
            if exp is None or got is None:
                bad.append(f"{user}: expected {exp and exp['score']}, got {got and got.score}")
                continue
            if abs(got.score - exp["score"]) > TOLERANCE or any(
                abs(got.pillars[p] - v) > TOLERANCE for p, v in exp["pillars"].items()
            ):
                bad.append(f"{user}: expected {exp['score']} {exp['pillars']}, got {got}")
        return bad

    async def converged(self, expected: dict[str, dict[str, Any]], timeout: float) -> float:
        """Wait until the latest score per user equals `expected`; seconds waited."""
        t0 = time.monotonic()
        while self.mismatches(expected):
            if self._task is not None and self._task.done():
                raise AssertionError("subscriber failed") from self._task.exception()
            if time.monotonic() - t0 > timeout:
                bad = self.mismatches(expected)
                raise AssertionError(f"{len(bad)} users differ after {timeout} s: {bad[:5]}")
            await asyncio.sleep(0.5)
        return time.monotonic() - t0


@dataclass
class Scenario:
    """What a chaos scenario did, printed at its end (and appended to $SSI_CHAOS_REPORT)."""

    name: str
    seed: int
    kills: int = 0
    restarts: int = 0
    redis_freezes: int = 0
    broker_freezes: int = 0
    redis_restarts: int = 0
    rebuilds: int = 0
    records: int = 0
    poison: int = 0
    users: int = 0
    score_changes: int = 0
    resent: int = 0
    dead_letters: int = 0
    dead_letters_resent: int = 0
    events: list[str] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def note(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self.t0:6.1f}s {text}")

    def summary(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("events", "t0")}
        d["full"] = FULL
        d["seconds"] = round(time.monotonic() - self.t0, 1)
        return d

    def report(self) -> str:
        text = f"chaos {self.name}: " + json.dumps(self.summary())
        text += "".join("\n    " + e for e in self.events)
        path = os.environ.get("SSI_CHAOS_REPORT")
        if path:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({**self.summary(), "events": self.events}) + "\n")
        return text


async def ready_status(worker: WorkerProcess) -> int:
    status, _ = await asyncio.to_thread(worker.get, "/readyz")
    return status


async def wait_status(worker: WorkerProcess, want: int, timeout: float) -> float:
    """Poll /readyz until it answers `want`; seconds waited."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        assert worker.proc is not None
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited {worker.proc.returncode}:\n{worker.tail()}")
        last = await ready_status(worker)
        if last == want:
            return time.monotonic() - t0
        await asyncio.sleep(0.25)
    raise AssertionError(f"/readyz answered {last}, not {want}, for {timeout} s:\n{worker.tail()}")


async def hold_status(worker: WorkerProcess, want: int, seconds: float) -> int:
    """Poll /readyz for `seconds`; every answer must be `want`. Returns the number of polls."""
    t_end = time.monotonic() + seconds
    polls = 0
    while time.monotonic() < t_end:
        status = await ready_status(worker)
        assert status == want, f"/readyz answered {status} while {want} was due"
        polls += 1
        await asyncio.sleep(0.5)
    return polls


async def start_worker(worker: WorkerProcess, timeout: float = 120) -> float:
    t0 = time.monotonic()
    await asyncio.to_thread(worker.start, timeout)
    return time.monotonic() - t0


def alive(worker: WorkerProcess) -> bool:
    return worker.proc is not None and worker.proc.poll() is None


def run_rebuild(env: dict[str, str], timeout: float = 180) -> str:
    """`ssi rebuild` as an operator would run it; returns its report line."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "rebuild"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
    )
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 0, err[-3000:]
    return err.strip().splitlines()[-1]


async def dead_letters(bootstrap: str, topic: str) -> dict[tuple[int, int], list[str]]:
    """Dead-letter codes by the (partition, offset) of the activity record they came from."""
    out: dict[tuple[int, int], list[str]] = defaultdict(list)
    for r in await consume_all(bootstrap, topic, idle=3):
        h = dict(r.headers)
        where = (int(h["ssi-source-partition"]), int(h["ssi-source-offset"]))
        out[where].append(h["ssi-error-code"].decode())
    return out


def check_dead_letters(
    feed: Feed, letters: dict[tuple[int, int], list[str]], poison_only: bool = False
) -> list[str]:
    """Every invalid record produced is dead-lettered with its code (at least once: a crash
    after sending a dead letter and before the commit sends it again) and nothing else is."""
    bad = []
    wanted = set()
    for rec, where in zip(feed.records, feed.landed, strict=True):
        if rec.code is None or where is None:
            continue
        if poison_only and rec.kind == "heldout-invalid":
            continue
        wanted.add(where)
        codes = letters.get(where)
        if not codes:
            bad.append(f"{rec.kind} at {where}: no dead letter (want {rec.code})")
        elif set(codes) != {rec.code}:
            bad.append(f"{rec.kind} at {where}: codes {codes}, want {rec.code}")
    if not poison_only:
        extra = set(letters) - wanted
        bad += [f"unexpected dead letter at {w}: {letters[w]}" for w in sorted(extra)[:5]]
    return bad


class ChaosRun:
    """One scenario's moving parts: workers, feed, subscriber, on a broker and Redis of its own
    (freezing the session ones would stall other tests)."""

    def __init__(
        self,
        scenario: Scenario,
        broker: Any,
        redis: Any,
        tmp: Path,
        records: list[Rec],
        now: datetime,
        rate: float,
        workers: int = 1,
    ) -> None:
        self.scenario = scenario
        self.broker = broker
        self.redis = redis
        self.now = now
        self.prefix = f"c{os.urandom(4).hex()}."
        # a sweep every second, so the decay timer also meets the faults
        self.env = worker_env(
            broker.url,
            redis.url,
            self.prefix,
            tmp,
            SSI_CLOCK=heldout.rfc3339(now),
            SSI_SWEEP_INTERVAL="1",
        )
        self.workers = [
            WorkerProcess(
                dict(self.env, SSI_WEB_PORT=str(free_port()), SSI_DATA_DIR=str(tmp / f"faust{i}")),
                tmp / f"worker{i}.log",
            )
            for i in range(workers)
        ]
        self.feed = Feed(broker.bootstrap, self.prefix + "activity", records, rate)
        self.subscriber = Subscriber(broker.bootstrap, self.prefix + "score-changes")
        self.expected = expected_scores(records, now)
        scenario.records = len(records)
        scenario.poison = sum(1 for r in records if r.kind not in ("event", "heldout-invalid"))
        scenario.users = len(self.expected)

    async def start(self, stop_at: int | None = None) -> None:
        await create_topics(self.broker.bootstrap, self.prefix)
        for i, w in enumerate(self.workers):
            took = await start_worker(w)
            self.scenario.note(f"worker {i} ready in {took:.1f} s")
        await self.subscriber.start()
        self.feed.start(stop_at)

    async def progressing(self, timeout: float = 90) -> None:
        """Wait until the workers publish score changes again (or have nothing left to do),
        so a fault that follows hits a worker at work rather than one still joining."""
        seen = len(self.subscriber.changes)
        t0 = time.monotonic()
        while len(self.subscriber.changes) == seen:
            if self.feed.done and not self.subscriber.mismatches(self.expected):
                return
            if time.monotonic() - t0 > timeout:
                raise AssertionError(
                    f"no score change for {timeout} s with a backlog:\n{self.workers[0].tail()}"
                )
            await asyncio.sleep(0.1)

    async def kill_and_restart(self, i: int = 0) -> None:
        w = self.workers[i]
        sent = self.feed.sent
        await asyncio.to_thread(w.kill)
        self.scenario.kills += 1
        self.scenario.note(
            f"SIGKILL worker {i} ({sent}/{len(self.feed.records)} records sent, "
            f"{len(self.subscriber.changes)} score changes seen)"
        )
        took = await start_worker(w)
        self.scenario.restarts += 1
        self.scenario.note(f"worker {i} restarted, ready in {took:.1f} s")

    async def freeze(self, server: Any, what: str, seconds: float) -> None:
        """SIGSTOP `server` for `seconds`; /readyz of every live worker must answer 503 while
        it is frozen and 200 again after SIGCONT."""
        sent = self.feed.sent
        server.freeze()
        t0 = time.monotonic()
        self.scenario.note(f"{what} frozen ({sent}/{len(self.feed.records)} records sent)")
        try:
            for i, w in enumerate(self.workers):
                took = await wait_status(w, 503, timeout=seconds / 2)
                self.scenario.note(f"worker {i} /readyz 503 after {took:.1f} s")
            polls = await hold_status(self.workers[0], 503, seconds - (time.monotonic() - t0))
            self.scenario.note(f"/readyz 503 on all {polls} polls until SIGCONT")
        finally:
            server.thaw()
        self.scenario.note(f"{what} thawed after {time.monotonic() - t0:.1f} s")
        for i, w in enumerate(self.workers):
            took = await wait_status(w, 200, timeout=120)
            self.scenario.note(f"worker {i} /readyz 200 {took:.1f} s after SIGCONT")

    async def finish(self, timeout: float = 240) -> None:
        """Feed done → latest score per user equals the model, versions in order, dead letters
        complete, every worker alive and ready."""
        self.feed.hurry()
        await self.feed.finished(timeout)
        self.scenario.note(f"feed done: {self.feed.sent} records")
        took = await self.subscriber.converged(self.expected, timeout)
        self.scenario.note(f"latest score per user equals the model {took:.1f} s later")
        await asyncio.sleep(2)  # nothing may follow that breaks it
        assert not self.subscriber.mismatches(self.expected)
        bad = self.subscriber.version_violations()
        assert not bad, bad[:10]
        letters = await dead_letters(self.broker.bootstrap, self.prefix + "dead-letters")
        bad = check_dead_letters(self.feed, letters)
        assert not bad, bad[:10]
        s = self.scenario
        s.score_changes = len(self.subscriber.changes)
        s.resent = self.subscriber.resent()
        s.dead_letters = sum(len(v) for v in letters.values())
        s.dead_letters_resent = s.dead_letters - len(letters)
        for i, w in enumerate(self.workers):
            assert alive(w), f"worker {i} died:\n{w.tail()}"
            assert await ready_status(w) == 200, w.tail()

    async def close(self) -> None:
        await self.subscriber.stop()
        for w in self.workers:
            await asyncio.to_thread(w.stop)


async def uncommitted(bootstrap: str, group: str, topic: str) -> int:
    """Records of `topic` past the group's committed offsets (what a crash would replay)."""
    # a consumer that never subscribes only reads the group's offsets, it does not join
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        total = 0
        for tp in tps:
            total += ends[tp] - ((await consumer.committed(tp)) or 0)
        return total
    finally:
        await consumer.stop()
