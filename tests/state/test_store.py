"""The Redis state layer against a real Redis-protocol server (no fakes).

The streaming path -- dedupe, route, per-partition batch apply, rescore and commit -- must end
where the batch reference scorer ends, whatever the order, duplicates, replays and late events;
the decay index must name the users whose window contributions leave, and the sweep must
publish exactly the scores that change; versions, dedupe codes, the history ring and the
benchmark helpers are checked from tables.
"""

from __future__ import annotations

import itertools
import json
import random
import struct
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context, event
from redis.asyncio import Redis

from scoring.aggregate import UserState
from scoring.batch import records, score_lines
from scoring.events import parse_structured
from scoring.model import SENIORITIES, load_model
from scoring.score import score
from state.benchmarks import (
    group_scores,
    percentile,
    record_scores,
    standing_of,
)
from state.codec import (
    EventDelta,
    fingerprint,
    published_string,
    route_event,
    sighting,
)
from state.keys import DEDUPE_GENERATIONS, HISTORY_DAYS, Keys, partition_of
from state.pipeline import ScoreChange, process_batch, sweep
from state.store import Commit, StateStore, decode_history

ASYNC = pytest.mark.asyncio(loop_scope="session")  # the session loop of the fixtures

MODEL = load_model()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
USERS = ("a0", "a1", "a2", "a3", "a4", "a5")
PARTITIONS = 3  # ssi.signals partitions
SOURCES = 2  # ssi.activity partitions


@pytest.fixture
async def redis(redis_server: Any, key_prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=False)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=key_prefix + "*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i : i + 500])
        await client.aclose()


# ---------------------------------------------------------------------------- strategies

users = st.sampled_from(USERS)
seniorities = st.sampled_from(SENIORITIES)
_post = st.sampled_from(["p1", "p2"])
_DATA: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "profile.updated": st.fixed_dictionaries(
        {},
        optional={
            "photo": st.booleans(),
            "headline": st.booleans(),
            "experience_count": st.integers(0, 4),
            "skills_count": st.integers(0, 7),
            "industry": st.sampled_from(["software", "banking"]),
            "seniority": seniorities,
        },
    ),
    "post.published": st.fixed_dictionaries({"post_id": _post, "format": st.just("text")}),
    "post.reacted": st.fixed_dictionaries(
        {"post_id": _post, "author_id": users, "reaction": st.just("like")}
    ),
    "post.commented": st.fixed_dictionaries({"post_id": _post, "author_id": users}),
    "post.shared": st.fixed_dictionaries({"post_id": _post, "author_id": users}),
    "connection.requested": st.fixed_dictionaries(
        {"recipient_id": users, "personalized": st.booleans()}
    ),
    "connection.accepted": st.fixed_dictionaries(
        {"requester_id": users},
        optional={"requester_seniority": seniorities, "acceptor_seniority": seniorities},
    ),
    "connection.declined": st.fixed_dictionaries({"requester_id": users}),
    "inmail.sent": st.fixed_dictionaries({"recipient_id": users}),
    "inmail.replied": st.fixed_dictionaries({"sender_id": users}),
    "message.sent": st.fixed_dictionaries({"recipient_id": users}),
    "profile.viewed": st.fixed_dictionaries(
        {"viewed_id": users, "degree": st.sampled_from([1, 2, 3, "out"])}
    ),
    "search.performed": st.fixed_dictionaries({"kind": st.sampled_from(["people", "content"])}),
    "lead.saved": st.fixed_dictionaries(
        {"lead_id": st.just("l1"), "kind": st.sampled_from(["lead", "account"])}
    ),
    "group.joined": st.fixed_dictionaries({"group_id": st.just("g1")}),
    "group.posted": st.fixed_dictionaries({"group_id": st.just("g1")}),
    "endorsement.given": st.fixed_dictionaries({"recipient_id": users, "skill": st.just("x")}),
    "follow.started": st.fixed_dictionaries({"followee_id": users}),
}
assert set(_DATA) == set(MODEL.events), "a catalogue type has no strategy"


def _note(what: str) -> None:
    """Count a case in hypothesis' statistics (`--hypothesis-show-statistics`)."""
    if currently_in_test_context():
        event(what)


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def bodies(draw: st.DrawFn, max_days: int = 40) -> dict[str, Any]:
    """One valid event without its id: up to 40 days old (a 28-day window), or 5 min ahead."""
    type_ = draw(st.sampled_from(sorted(_DATA)))
    # days and seconds drawn apart: hypothesis favours small integers, we want every day
    age = draw(st.integers(0, max_days)) * 86400 + draw(st.integers(-300, 86399))
    return {
        "specversion": "1.0",
        "source": draw(st.sampled_from(["app://crm", "app://web"])),
        "type": type_,
        "time": _stamp(NOW - timedelta(seconds=age)),
        "subject": draw(users),
        "data": draw(_DATA[type_]),
    }


@dataclass
class Scenario:
    """An ssi.activity log: unique ids, exact (also re-serialised) and conflicting duplicates,
    shuffled."""

    records: list[bytes]
    sources: list[int]  # activity partition of each record
    rnd: random.Random  # batch sizes, crashes and replays


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    evs = draw(st.lists(bodies(), min_size=1, max_size=50))
    lines = [json.dumps({**e, "id": f"e{i}"}).encode() for i, e in enumerate(evs)]
    log: list[bytes] = []
    for i, line in enumerate(lines):
        log += [line] * (1 + draw(st.sampled_from([0, 0, 1, 2])))
        if draw(st.sampled_from([False] * 5 + [True])):  # re-serialised: same meaning, new bytes
            log.append(json.dumps({**evs[i], "id": f"e{i}"}, indent=1, sort_keys=True).encode())
        if draw(st.sampled_from([False] * 5 + [True])):  # same identity, different content
            other = evs[draw(st.integers(0, len(evs) - 1))]
            log.append(json.dumps({**other, "id": f"e{i}"}).encode())
    log = draw(st.permutations(log))
    sources = draw(st.lists(st.integers(0, SOURCES - 1), min_size=len(log), max_size=len(log)))
    return Scenario(log, sources, draw(st.randoms(use_true_random=False)))


# ---------------------------------------------------------------------------- stream driver


@dataclass
class Stream:
    """Drives a scenario through the production path and records what a subscriber sees."""

    store: StateStore
    now: datetime
    processing_time: float
    queues: dict[int, list[EventDelta]] = field(default_factory=dict)
    first_seen: list[bytes] = field(default_factory=list)  # records in first-dedupe order
    changes: list[ScoreChange] = field(default_factory=list)
    latest: dict[str, ScoreChange] = field(default_factory=dict)

    async def ingest(self, chunk: Sequence[tuple[int, int, bytes]], forward: bool) -> list[int]:
        """Dedupe a chunk of (source partition, offset, record) and forward codes 0 and 1."""
        model = self.store.model
        parsed = [(p, o, raw, parse_structured(raw, model, self.now)) for p, o, raw in chunk]
        codes = await self.store.dedupe(
            [sighting(e, p, o) for p, o, raw, e in parsed],
            self.processing_time,
        )
        first = self.now.date().toordinal() - model.window_days + 1
        for (p, o, raw, ev), code in zip(parsed, codes, strict=True):
            _note(f"dedupe code {code}")
            if code == 0:
                self.first_seen.append(raw)
                if ev.day < first:
                    _note("late event (before the window)")
            if code >= 2 or not forward:
                continue
            for q, delta in route_event(ev, model, PARTITIONS, p, o).items():
                self.queues.setdefault(q, []).append(delta)
        return codes

    def _record(self, change: ScoreChange) -> None:
        self.changes.append(change)
        cur = self.latest.get(change.user_id)
        if change.republished:
            # a replay re-sends exactly the stored latest version
            assert cur is not None and change.version == cur.version, (change, cur)
            assert (change.score, change.pillars) == (cur.score, cur.pillars)
            return
        expected = 1 if cur is None else cur.version + 1
        assert change.version == expected, (change, cur)
        self.latest[change.user_id] = change

    async def apply(self, q: int, batch: list[EventDelta]) -> None:
        out = await process_batch(self.store, q, batch, self.now)
        assert out.applied + out.replayed == len(batch)
        for c in out.changes:
            # "profile" exactly when every signal of the user in the batch is its own snapshot
            entries = [u for d in batch for u in d.users if u[0] == c.user_id]
            profile_only = bool(entries) and all(u[4] for u in entries)
            assert c.cause == ("profile" if profile_only else "activity"), (c, entries)
            self._record(c)

    async def replay(self, q: int, batch: list[EventDelta]) -> None:
        """The same signals batch again (a redelivery): nothing applied, nothing changes."""
        before = await self.store.load(q, {u[0] for d in batch for u in d.users})
        _note("replayed signals batch")
        out = await process_batch(self.store, q, batch, self.now)
        assert out.applied == 0 and out.replayed == len(batch)
        assert all(c.republished for c in out.changes)
        for c in out.changes:
            self._record(c)
        after = await self.store.load(q, before)
        assert {u: (s.state, s.version) for u, s in after.items()} == {
            u: (s.state, s.version) for u, s in before.items()
        }

    async def drain(self, q: int, rnd: random.Random, limit: int | None = None) -> None:
        queue = self.queues.get(q, [])
        done = 0
        while queue and (limit is None or done < limit):
            n = rnd.randint(1, 8)
            batch, queue[:] = queue[:n], queue[n:]
            await self.apply(q, batch)
            if rnd.random() < 0.25:
                await self.replay(q, batch)
            done += 1


_run = itertools.count()


@ASYNC
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(scenario=scenarios())
async def test_stream_equals_batch(redis: Redis, key_prefix: str, scenario: Scenario) -> None:
    keys = Keys(f"{key_prefix}s{next(_run)}.")
    store = StateStore(redis, MODEL, keys)
    stream = Stream(store, NOW, time.time())
    rnd = scenario.rnd
    # the activity log, per partition in offset order
    logs: dict[int, list[tuple[int, int, bytes]]] = {p: [] for p in range(SOURCES)}
    for raw, p in zip(scenario.records, scenario.sources, strict=True):
        logs[p].append((p, len(logs[p]), raw))
    pos = dict.fromkeys(logs, 0)
    while any(pos[p] < len(logs[p]) for p in logs):
        p = rnd.choice([p for p in logs if pos[p] < len(logs[p])])
        chunk = logs[p][pos[p] : pos[p] + rnd.randint(1, 6)]
        if rnd.random() < 0.2:
            await stream.ingest(chunk, forward=False)  # crash after dedupe, before forwarding
            codes = await stream.ingest(chunk, forward=True)
            assert 0 not in codes
        else:
            await stream.ingest(chunk, forward=True)
            if rnd.random() < 0.15:
                codes = await stream.ingest(chunk, forward=True)  # re-forwarded after a crash
                assert 0 not in codes
        pos[p] += len(chunk)
        if rnd.random() < 0.5:
            await stream.drain(rnd.randrange(PARTITIONS), rnd, limit=rnd.randint(1, 3))
    for q in range(PARTITIONS):
        await stream.drain(q, rnd)

    result = score_lines(stream.first_seen, MODEL, NOW)
    assert not result.errors
    expected = {r["user_id"]: r for r in records(result, MODEL)}
    assert set(stream.latest) == set(expected)
    for user, rec in expected.items():
        got = stream.latest[user]
        assert got.score == pytest.approx(rec["score"], abs=0.0101), (user, got, rec)
        for pillar, value in rec["pillars"].items():
            assert got.pillars[pillar] == pytest.approx(value, abs=0.0101), (user, pillar)
    # no bucket before the window is ever stored
    first = NOW.date().toordinal() - MODEL.window_days + 1
    for user in expected:
        fields = await redis.hkeys(keys.user(partition_of(user, PARTITIONS), user))
        assert all(int(f) >= first for f in fields if f.isdigit()), (user, fields)


# ---------------------------------------------------------------------------- window and decay


def _activity(seed: int, start: datetime, end: datetime, n: int) -> list[bytes]:
    """Seeded valid events spread over [start, end] for the USERS."""
    rnd = random.Random(seed)
    span = int((end - start).total_seconds())
    out = []
    for i in range(n):
        actor = rnd.choice(USERS)
        other = rnd.choice([u for u in USERS if u != actor])
        kind = rnd.choice(
            ["post.published", "post.reacted", "post.commented", "search.performed",
             "profile.viewed", "message.sent", "connection.accepted", "inmail.sent"]
        )  # fmt: skip
        data: dict[str, Any] = {
            "post.published": {"post_id": f"p{i}", "format": "text"},
            "post.reacted": {"post_id": "p", "author_id": other, "reaction": "like"},
            "post.commented": {"post_id": "p", "author_id": other},
            "search.performed": {"kind": "people"},
            "profile.viewed": {"viewed_id": other, "degree": rnd.choice([1, 2, "out"])},
            "message.sent": {"recipient_id": other},
            "connection.accepted": {"requester_id": other, "requester_seniority": "vp"},
            "inmail.sent": {"recipient_id": other},
        }[kind]
        at = start + timedelta(seconds=rnd.randrange(span))
        body = {"specversion": "1.0", "id": f"w{seed}-{i}", "source": "t", "type": kind,
                "time": _stamp(at), "subject": actor, "data": data}  # fmt: skip
        out.append(json.dumps(body).encode())
    return out


async def _feed(stream: Stream, lines: list[bytes], first_offset: int = 0) -> None:
    await stream.ingest([(0, first_offset + i, raw) for i, raw in enumerate(lines)], forward=True)
    for q in range(PARTITIONS):
        await stream.drain(q, random.Random(q))


def _published(state: UserState, at: datetime) -> str:
    s = score(state, MODEL, at)
    return published_string(s.total, s.pillars)


async def _day_fields(redis: Redis, keys: Keys, user: str) -> list[int]:
    fields = await redis.hkeys(keys.user(partition_of(user, PARTITIONS), user))
    return sorted(int(f) for f in fields if f.isdigit())


@ASYNC
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_window_buckets_and_decay_sweep(redis: Redis, key_prefix: str, seed: int) -> None:
    keys = Keys(key_prefix)
    store = StateStore(redis, MODEL, keys)
    early = NOW - timedelta(days=12)
    old = _activity(seed, NOW - timedelta(days=39), early, 120)
    new = _activity(seed + 100, early, NOW, 80)
    # phase 1 at an earlier clock stores buckets that are out of the window at NOW
    s1 = Stream(store, early, time.time())
    await _feed(s1, old)
    first_now = NOW.date().toordinal() - MODEL.window_days + 1
    stale = {u for u in USERS if any(d < first_now for d in await _day_fields(redis, keys, u))}
    assert stale, "the scenario should leave buckets that expire by NOW"
    # phase 2 at NOW: every user it names drops its expired buckets on commit
    s2 = Stream(store, NOW, time.time())
    s2.latest = dict(s1.latest)
    await _feed(s2, new, first_offset=len(old))
    for c in s2.changes:
        assert min(await _day_fields(redis, keys, c.user_id), default=first_now) >= first_now
    # the rest are due by NOW, and the sweep cleans them up too
    for q in range(PARTITIONS):
        _, changes = await sweep(store, q, NOW)
        for c in changes:
            assert c.cause == "decay"
            s2._record(c)
        assert await store.due_users(q, NOW.date().toordinal()) == []
    for u in USERS:
        assert min(await _day_fields(redis, keys, u), default=first_now) >= first_now

    states = score_lines(old + new, MODEL, NOW).states
    stored = {u: _published(st_, NOW) for u, st_ in states.items()}
    assert set(s2.latest) == set(states)
    for u, c in s2.latest.items():
        assert published_string(c.score, c.pillars) == stored[u], u

    prev = NOW
    for days in (1, 4, 9, 20, 27, 29):
        later = NOW + timedelta(days=days)
        today = later.date().toordinal()
        lo = prev.date().toordinal() - MODEL.window_days + 1
        hi = today - MODEL.window_days + 1
        leaving = {u for u, st_ in states.items() if any(lo <= d < hi for d in st_.buckets)}
        changing = {u for u, st_ in states.items() if _published(st_, later) != stored[u]}
        due = set()
        for q in range(PARTITIONS):
            due |= set(await store.due_users(q, today))
        assert due == leaving, (days, due, leaving)
        assert changing <= due  # a score moves only when a contribution leaves the window
        swept = []
        for q in range(PARTITIONS):
            n, changes = await sweep(store, q, later)
            assert n == len([u for u in due if partition_of(u, PARTITIONS) == q])
            swept += changes
        assert {c.user_id for c in swept} == changing, days
        for c in swept:
            assert c.cause == "decay" and not c.republished
            assert c.version == s2.latest[c.user_id].version + 1
            assert published_string(c.score, c.pillars) == _published(states[c.user_id], later)
            s2._record(c)
            stored[c.user_id] = _published(states[c.user_id], later)
        for q in range(PARTITIONS):
            assert await store.due_users(q, today) == []
        for u in USERS:
            assert min(await _day_fields(redis, keys, u), default=hi) >= hi
        prev = later


@ASYNC
async def test_a_bucket_entering_the_window_is_due(redis: Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    store = StateStore(redis, MODEL, keys)
    clock = datetime(2026, 11, 20, 23, 57, tzinfo=UTC)
    body = {"specversion": "1.0", "id": "f1", "source": "t", "type": "post.published",
            "time": "2026-11-21T00:01:00Z", "subject": "a0",
            "data": {"post_id": "p", "format": "text"}}  # fmt: skip
    line = json.dumps(body).encode()  # 4 min ahead of the clock: accepted, tomorrow's bucket
    stream = Stream(store, clock, time.time())
    await _feed(stream, [line])
    after_midnight = clock + timedelta(minutes=10)
    state = score_lines([line], MODEL, after_midnight).states["a0"]
    assert _published(state, after_midnight) != _published(state, clock)  # the score moves
    q = partition_of("a0", PARTITIONS)
    assert await store.due_users(q, after_midnight.date().toordinal()) == ["a0"]


@ASYNC
async def test_sweep_drops_due_users_without_state(redis: Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    store = StateStore(redis, MODEL, keys)
    today = NOW.date().toordinal()
    await redis.zadd(keys.due(0), {"ghost": today - 1})  # e.g. its user hash was evicted
    assert await sweep(store, 0, NOW) == (1, [])
    assert await store.due_users(0, today) == []


# ---------------------------------------------------------------------------- versions


def _pub(total: float) -> str:
    return f"{total:.2f}|{total:.2f}|0.00|0.00|0.00"


@ASYNC
async def test_versions_rise_by_one_per_change(redis: Redis, key_prefix: str) -> None:
    store = StateStore(redis, MODEL, Keys(key_prefix))
    rows = [  # published string → (version, changed)
        (_pub(1), 1, True),
        (_pub(1), 1, False),  # identical scores: no new version
        (_pub(2), 2, True),
        (_pub(2), 2, False),
        (_pub(1.5), 3, True),
    ]
    previous = None
    for published, version, changed in rows:
        done = await store.commit(0, [Commit("u", published, -1, 101)], NOW)
        assert done["u"].version == version and done["u"].changed is changed
        assert done["u"].previous == previous
        previous = published


@ASYNC
async def test_replayed_batch_republishes_the_stored_version(redis: Redis, key_prefix: str) -> None:
    store = StateStore(redis, MODEL, Keys(key_prefix))
    lines = _activity(7, NOW - timedelta(days=3), NOW, 12)
    stream = Stream(store, NOW, time.time())
    await stream.ingest([(0, i, raw) for i, raw in enumerate(lines)], forward=True)
    batches = {q: list(d) for q, d in stream.queues.items()}
    await _feed(stream, [])
    assert stream.latest
    for q, batch in batches.items():
        out = await process_batch(store, q, batch, NOW)
        assert (out.applied, out.replayed) == (0, len(batch))
        named = {u[0] for d in batch for u in d.users}
        assert {c.user_id for c in out.changes} == named
        for c in out.changes:
            assert c.republished and c.version == stream.latest[c.user_id].version
            assert c.score == stream.latest[c.user_id].score
        # and a prefix of it (offsets at or below the watermark) too
        out = await process_batch(store, q, batch[:1], NOW)
        assert out.applied == 0 and all(c.republished for c in out.changes)
    wm = await store.watermarks(partition_of("a0", PARTITIONS))
    assert wm and max(wm.values()) <= len(lines) - 1


# ---------------------------------------------------------------------------- dedupe


@ASYNC
async def test_dedupe_codes_and_generations(redis: Redis, key_prefix: str) -> None:
    horizon = 400.0
    gen_len = horizon / DEDUPE_GENERATIONS
    keys = Keys(key_prefix)
    store = StateStore(redis, MODEL, keys, dedupe_horizon_seconds=horizon)
    # processing times ahead of the wall clock: generation keys must not be born expired
    t0 = (int(time.time() // gen_len) + 10) * gen_len
    a, b = fingerprint("s", "a"), fingerprint("s", "b")
    table = [  # (processing time, sightings, codes)
        (t0, [(a, "0:1", "h1")], [0]),
        (t0, [(a, "0:1", "h1")], [1]),  # redelivery of the first sighting
        (t0, [(a, "1:7", "h1")], [2]),  # exact duplicate elsewhere
        (t0, [(a, "0:2", "h2")], [3]),  # same identity, other content
        (t0, [(a, "0:1", "h2")], [3]),
        (t0, [(b, "0:3", "h1"), (b, "1:4", "h1"), (b, "1:5", "h9")], [0, 2, 3]),
        (t0 + horizon - 1, [(a, "1:8", "h1")], [2]),  # still within the horizon
        (t0 + horizon + gen_len - 1, [(a, "0:1", "h1")], [1]),  # oldest generation consulted
        (t0 + horizon + gen_len, [(a, "1:9", "h1")], [0]),  # forgotten: counts as new
        (t0 + horizon + gen_len, [(b, "1:4", "h1")], [0]),
        (t0 + horizon + gen_len + 1, [(a, "0:1", "h1")], [2]),  # the new sighting rules
    ]
    for at, sightings, codes in table:
        assert await store.dedupe(sightings, at) == codes, (at - t0, sightings)
    assert await store.dedupe([], t0) == []
    # every generation hash expires as a whole, after the last lookup that can need it
    found = [k async for k in redis.scan_iter(match=keys.pattern(), count=1000)]
    assert found
    g0 = int(t0 // gen_len)
    for k in found:
        gen = int(k.decode().rsplit(":", 2)[-2])
        expire_at = await redis.execute_command("EXPIRETIME", k)
        assert expire_at == int((gen + DEDUPE_GENERATIONS + 2) * gen_len), k
        assert gen in (g0, g0 + DEDUPE_GENERATIONS + 1)


@ASYNC
async def test_dedupe_spreads_over_shards(redis: Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    store = StateStore(redis, MODEL, keys)
    at = time.time() + 3600
    sightings = [(fingerprint("s", f"id{i}"), f"0:{i}", "c") for i in range(400)]
    assert await store.dedupe(sightings, at) == [0] * 400
    assert await store.dedupe(sightings[::-1], at) == [1] * 400
    found = [k async for k in redis.scan_iter(match=keys.pattern(), count=1000)]
    assert len(found) > 100  # 16 groups × 64 subshards: small listpack hashes
    for k in found[:20]:
        assert await redis.object("encoding", k) in (b"listpack", "listpack")


# ---------------------------------------------------------------------------- history


def _ring(days: dict[int, float]) -> bytes:
    raw = bytearray(HISTORY_DAYS * 4)
    for day, value in days.items():
        struct.pack_into(">HH", raw, (day % HISTORY_DAYS) * 4, day % 65536, round(value * 100) + 1)
    return bytes(raw)


WRAP = 11 * 65536 + 2  # a day ordinal just after the 16-bit day stamp wraps
_RECENT = {WRAP: 1.0, WRAP - 1: 0.0, WRAP - 3: 99.99, WRAP - 6: 25.5}


@pytest.mark.parametrize(
    ("days", "today", "expected"),
    [
        ({}, WRAP, {}),
        ({WRAP: 47.31}, WRAP, {WRAP: 47.31}),
        (_RECENT, WRAP, _RECENT),  # across the wrap of the 16-bit day stamp
        ({WRAP - 92: 30.0, WRAP - 5: 31.0}, WRAP, {WRAP - 5: 31.0}),  # stale slot skipped
        ({WRAP - 89: 12.0}, WRAP, {WRAP - 89: 12.0}),  # the oldest day kept
        ({WRAP - 3: 5.0}, None, {65535: 5.0}),  # without a clock: 16-bit day stamps
        ({739575: 100.0}, 739580, {739575: 100.0}),
    ],
)
def test_decode_history(days: dict[int, float], today: int | None, expected: dict) -> None:
    assert decode_history(_ring(days), today) == expected


@ASYNC
async def test_history_ring_in_redis(redis: Redis, key_prefix: str) -> None:
    store = StateStore(redis, MODEL, Keys(key_prefix))
    start = WRAP - 3
    timeline = [(start, 10.0), (start + 1, 11.5), (start + 2, 11.5), (start + 3, 12.25)]
    timeline += [(start + 5, 13.0), (start + HISTORY_DAYS, 20.0)]  # reuses the first slot
    for day, value in timeline:
        at = datetime.combine(date.fromordinal(day), datetime.min.time(), UTC)
        await store.commit(0, [Commit("u", _pub(value), -1, round(value * 100) + 1)], at)
    today = start + HISTORY_DAYS
    got = await store.history(0, "u", today)
    # unchanged days write nothing; the slot of `start` now holds `start + HISTORY_DAYS`
    assert got == {start + 1: 11.5, start + 3: 12.25, start + 5: 13.0, today: 20.0}
    assert await store.history(0, "nobody", today) == {}


@ASYNC
async def test_history_log_keeps_one_record_per_day_and_the_last_90(
    redis: Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    store = StateStore(redis, MODEL, keys)
    first = WRAP - 50  # crosses the uint16 day wrap
    for i in range(HISTORY_DAYS + 10):
        day = first + i
        for hour, value in ((1, 10.0 + i / 100), (20, 30.0 + i / 100)):  # two changes a day
            at = datetime.combine(date.fromordinal(day), datetime.min.time(), UTC)
            at += timedelta(hours=hour)
            await store.commit(0, [Commit("u", _pub(value), -1, round(value * 100) + 1)], at)
        # today's record is overwritten, not appended
        assert await redis.strlen(keys.history(0, "u")) == 4 * min(i + 1, HISTORY_DAYS)
    today = first + HISTORY_DAYS + 9
    got = await store.history(0, "u", today)
    assert got == {first + i: round(30.0 + i / 100, 2) for i in range(10, HISTORY_DAYS + 10)}


# ---------------------------------------------------------------------------- benchmarks


@ASYNC
async def test_benchmark_groups(redis: Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    entries = [
        ("u1", 10.0, "software", "t1"),
        ("u2", 20.0, "software", None),
        ("u3", 30.0, "banking", "t1"),
        ("u4", 40.0, None, "t1"),
    ]
    await record_scores(redis, keys, entries)
    await record_scores(redis, keys, [("u1", 15.0, "software", "t1")])  # latest score wins
    await record_scores(redis, keys, [])
    assert await group_scores(redis, keys.bench_all()) == [
        ("u1", 15.0), ("u2", 20.0), ("u3", 30.0), ("u4", 40.0)
    ]  # fmt: skip
    assert await group_scores(redis, keys.bench_industry("software")) == [
        ("u1", 15.0), ("u2", 20.0)
    ]  # fmt: skip
    assert await group_scores(redis, keys.bench_team("t1")) == [
        ("u1", 15.0), ("u3", 30.0), ("u4", 40.0)
    ]  # fmt: skip
    assert await group_scores(redis, keys.bench_team("none")) == []


@pytest.mark.parametrize(
    ("score_", "scores", "members", "average", "top"),
    [
        (30.0, [10.0, 20.0, 30.0, 40.0], 4, 25.0, 50.0),
        (40.0, [10.0, 20.0, 30.0, 40.0], 4, 25.0, 25.0),
        (10.0, [10.0, 20.0, 30.0, 40.0], 4, 25.0, 100.0),
        (1000.0, [float(i) for i in range(1, 1001)], 1000, 500.5, 1.0),  # best: Top 1%
        (50.0, [], 0, 0.0, 100.0),
        (20.0, [20.0, 20.0, 20.0], 3, 20.0, 100.0),  # ties share the rank
        (2.0, [1.0, 2.0, 3.0], 3, 2.0, 66.7),
    ],
)
def test_standing_of(
    score_: float, scores: list[float], members: int, average: float, top: float
) -> None:
    s = standing_of(score_, scores)
    assert (s.members, s.top_percent) == (members, top)
    assert s.average == pytest.approx(average)


_TEN = [float(i) for i in range(1, 11)]


@pytest.mark.parametrize(
    ("scores", "q", "expected"),
    [
        ([], 50, 0.0),
        ([7.0], 0, 7.0),
        ([7.0], 100, 7.0),
        (_TEN, 0, 1.0),
        (_TEN, 25, 3.0),
        (_TEN, 100, 10.0),
        (_TEN, 20, 2.0),  # 0.2 × 10 = 2: the 2nd value
        (_TEN, 75, 8.0),
        (_TEN, 50, 5.0),  # 0.5 × 10 = 5: the 5th value (round(5.5) would give the 6th)
        (_TEN, 90, 9.0),
        (_TEN, 10, 1.0),
    ],
)
def test_percentile_nearest_rank(scores: list[float], q: float, expected: float) -> None:
    assert percentile(scores, q) == expected


def _event(i: int, etype: str, subject: str, data: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"cause-{i}",
            "source": "test",
            "type": etype,
            "time": "2026-11-20T10:00:00Z",
            "subject": subject,
            "data": data,
        }
    ).encode()


@ASYNC
async def test_cause_profile_only_for_profile_only_batches(redis: Redis, key_prefix: str) -> None:
    """`cause: profile` when a user's signals in the batch all come from its own profile
    snapshots; a batch that also holds other activity of the user says `activity`."""
    store = StateStore(redis, MODEL, Keys(key_prefix))
    profile = {"photo": True, "headline": True, "skills_count": 3}
    richer = dict(profile, summary=True, experience_count=4)
    batches = [  # (events, expected cause of u1's change)
        ([("post.published", "u1", {"post_id": "p1", "format": "text"})], "activity"),
        ([("profile.updated", "u1", profile)], "profile"),
        (
            [
                ("profile.updated", "u1", richer),
                ("post.commented", "u1", {"post_id": "p2", "author_id": "u2"}),
            ],
            "activity",
        ),
    ]
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    offset = itertools.count()
    for events, cause in batches:
        deltas: list[EventDelta] = []
        for etype, subject, data in events:
            o = next(offset)
            ev = parse_structured(_event(o, etype, subject, data), MODEL, now)
            deltas += [d for q, d in route_event(ev, MODEL, 1, 0, o).items()]
        out = await process_batch(store, 0, deltas, now)
        got = {c.user_id: c.cause for c in out.changes}
        assert got["u1"] == cause, (events, got)
