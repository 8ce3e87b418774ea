"""Redis memory per tracked user at 28-day steady state, batch apply cost and decay sweep cost.

    python -m bench.state_memory [--users N] [--seed K] [--due D] [--no-save]

One run against its own embedded Redis (`streams.embedded.start_redis`):

1. Simulate 35 days of the default population (`streams.simulator.generate`, ending now) and
   feed it through the production path of `streams/app.py`, without Kafka: validate, dedupe
   (`StateStore.dedupe`, processing time = the event's time, so dedupe generations roll like a
   steady stream and expire against the wall clock exactly as in production: only the last
   ~1.5 dedupe horizons stay alive), `route_event` to 8 `ssi.signals` partitions, batches of
   ~500 events per partition through `process_batch` with `now` = the end of the period.
2. Memory: `used_memory` before and after, per tracked user (users with a user hash), dedupe
   included; then the benchmark sorted sets as the app records them (`record_scores`); then,
   separately, the connection graph (`record_connections` for `connection.accepted`).
   `MEMORY USAGE` and `OBJECT ENCODING` of every key, grouped by key type, say where it goes.
3. Apply cost: wall time of `process_batch` per signal (one user's delta of one event, the unit
   of `ssi_signals_total`) and per event.
4. Decay sweep: the same D due users (default 1,000) swept with 0, 10,000 and 100,000 idle
   users (a due day in the future) in the due sorted sets; state restored between runs
   (DUMP/RESTORE), median of five interleaved runs each. The cost must follow the users due,
   not the idle ones.

Results go to `bench/results.json` under "state" (other keys kept) and a table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from bench.census import census as key_census
from bench.results import RESULTS, save
from scoring.errors import InvalidEvent
from scoring.events import Event, parse_structured
from scoring.model import load_model
from scoring.score import score
from state.benchmarks import record_connections, record_scores
from state.codec import EventDelta, route_event, sighting
from state.keys import Keys, partition_of
from state.pipeline import ScoreChange, process_batch, sweep
from state.store import StateStore
from streams.embedded import start_redis
from streams.simulator import generate

KEY = "state"
DAYS = 35  # a week more than the 28-day window: old connections and profiles still count
PARTITIONS = 8  # ssi.signals and ssi.activity partitions
BATCH_EVENTS = 500  # events per partition per process_batch call
INGEST_CHUNK = 4000  # records per dedupe call (the ingest agent's batch)
GOAL_BYTES = 2048  # DESIGN 6: ≤ 2 KB per tracked user at steady state
IDLE_STEPS = (0, 10_000, 100_000)
SWEEP_RUNS = 5
NS = "ssi."


class TimedStore(StateStore):
    """The production store, adding up the wall time of its apply and commit script calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.apply_s = 0.0
        self.commit_s = 0.0

    async def apply(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await super().apply(*args, **kwargs)
        finally:
            self.apply_s += time.perf_counter() - t0

    async def commit(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await super().commit(*args, **kwargs)
        finally:
            self.commit_s += time.perf_counter() - t0


@dataclass
class Feed:
    """What the feed did and how long its parts took."""

    events: int = 0
    invalid: int = 0
    duplicates: int = 0
    applied: int = 0
    batches: int = 0
    signals: int = 0
    apply_s: float = 0.0  # process_batch
    script_apply_s: float = 0.0  # of which the apply script (and decoding its reply)
    script_commit_s: float = 0.0  # of which the commit script
    rescored: int = 0  # users scored by process_batch (once per batch each)
    dedupe_s: float = 0.0
    changes: int = 0
    latest: dict[str, ScoreChange] = field(default_factory=dict)
    connections: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Pending:
    deltas: list[EventDelta] = field(default_factory=list)
    event_ids: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


async def feed(store: TimedStore, users: int, seed: int, end: datetime) -> Feed:
    """The simulated period through dedupe, route and process_batch, in event-time order."""
    model = store.model
    out = Feed()
    offsets = [0] * PARTITIONS
    chunk: list[tuple[int, int, Event]] = []
    pending: dict[int, _Pending] = defaultdict(_Pending)

    async def flush(q: int) -> None:
        batch = pending.pop(q)
        t0 = time.perf_counter()
        res = await process_batch(store, q, batch.deltas, end, batch.event_ids)
        out.apply_s += time.perf_counter() - t0
        out.batches += 1
        out.applied += res.applied
        out.signals += sum(len(d.users) for d in batch.deltas)
        out.changes += len(res.changes)
        out.rescored += len(res.scores)
        for c in res.changes:
            cur = out.latest.get(c.user_id)
            if cur is None or c.version >= cur.version:
                out.latest[c.user_id] = c

    async def ingest() -> None:
        processing_time = chunk[-1][2].time.timestamp()
        t0 = time.perf_counter()
        codes = await store.dedupe(
            [sighting(e, a, o) for a, o, e in chunk],
            processing_time,
        )
        out.dedupe_s += time.perf_counter() - t0
        for (a, o, event), code in zip(chunk, codes, strict=True):
            if code >= 2:
                out.duplicates += 1
                continue
            if event.type == "connection.accepted" and event.data["requester_id"] != event.subject:
                out.connections.append((event.subject, event.data["requester_id"]))
            for q, delta in route_event(event, model, PARTITIONS, a, o).items():
                p = pending[q]
                p.deltas.append(delta)
                for u in delta.users:
                    p.event_ids[u[0]].append(event.id)
                if len(p.deltas) >= BATCH_EVENTS:
                    await flush(q)
        chunk.clear()

    for body in generate(users, seed, DAYS, end):
        raw = json.dumps(body, separators=(",", ":")).encode()
        out.events += 1
        try:
            event = parse_structured(raw, model, end)
        except InvalidEvent:
            out.invalid += 1
            continue
        a = partition_of(event.subject, PARTITIONS)  # ssi.activity is keyed by the actor
        chunk.append((a, offsets[a], event))
        offsets[a] += 1
        if len(chunk) >= INGEST_CHUNK:
            await ingest()
    if chunk:
        await ingest()
    for q in sorted(pending):
        await flush(q)
    out.script_apply_s, out.script_commit_s = store.apply_s, store.commit_s
    return out


# ---------------------------------------------------------------------------- memory


async def used_memory(r: Redis) -> int:
    return int((await r.info("memory"))["used_memory"])


async def user_hash_shape(r: Redis, keys: Keys, sample: int = 2000) -> dict[str, Any]:
    """Fields and value sizes of user hashes, and why any left the compact listpack encoding."""
    names = [k async for k in r.scan_iter(match=keys.tag(0) + "u:*", count=2000)][:sample]
    async with r.pipeline(transaction=False) as pipe:
        for k in names:
            pipe.hgetall(k)
            pipe.object("encoding", k)
        raw = await pipe.execute()
    fields, longest, days, why = [], [], [], Counter()
    lp_entries = int((await r.config_get("hash-max-listpack-entries"))["hash-max-listpack-entries"])
    lp_value = int((await r.config_get("hash-max-listpack-value"))["hash-max-listpack-value"])
    for i in range(len(names)):
        flat: dict[bytes, bytes] = raw[2 * i]
        enc = raw[2 * i + 1]
        fields.append(len(flat))
        days.append(sum(1 for f in flat if f.isdigit()))
        longest.append(max((len(v) for v in flat.values()), default=0))
        if (enc.decode() if isinstance(enc, bytes) else enc) != "listpack":
            if len(flat) > lp_entries:
                why["more fields than hash-max-listpack-entries"] += 1
            if longest[-1] > lp_value:
                why["a value longer than hash-max-listpack-value"] += 1
    n = max(1, len(names))
    return {
        "sampled": len(names),
        "fields_avg": round(sum(fields) / n, 1),
        "fields_max": max(fields, default=0),
        "day_buckets_avg": round(sum(days) / n, 1),
        "longest_value_avg": round(sum(longest) / n, 1),
        "longest_value_max": max(longest, default=0),
        "listpack_limits": {"entries": lp_entries, "value_bytes": lp_value},
        "non_listpack_reasons": dict(why),
    }


async def profile_shape(r: Redis, keys: Keys, sample: int = 500) -> dict[str, Any]:
    """How long stored profile snapshots are, and how much of that is the ordering key."""
    names = [k async for k in r.scan_iter(match=keys.tag(0) + "pf:*", count=2000)][:sample]
    values = [v for v in await r.mget(names) if v] if names else []
    n = max(1, len(values))
    return {
        "sampled": len(values),
        "value_bytes_avg": round(sum(len(v) for v in values) / n, 1),
        "order_key_bytes_avg": round(sum(len(v.split(b"\x1e", 1)[0]) for v in values) / n, 1),
    }


async def history_probe(r: Redis, keys: Keys, users: int = 1000) -> dict[str, Any]:
    """MEMORY USAGE of a full history log (90 records, a score change every day for 90 days),
    grown day by day by APPEND as commit.lua does.

    The feed commits on one day only, so its history strings hold one record.
    """
    records, width = 90, 4
    out: dict[str, Any] = {}
    names = [keys.history(i % PARTITIONS, f"~{i:05d}") for i in range(users)]
    async with r.pipeline(transaction=False) as pipe:
        for k in names:
            for _ in range(records):
                pipe.append(k, b"\x01\x02\x03\x04")
        await pipe.execute()
    async with r.pipeline(transaction=False) as pipe:
        for k in names:
            pipe.memory_usage(k, samples=0)
        sizes = await pipe.execute()
    out["grown day by day"] = round(sum(sizes) / users, 1)
    out["bytes"] = records * width
    await r.delete(*names)
    return out


# ---------------------------------------------------------------------------- sweep


async def _due_selection(store: StateStore, today: int, want: int) -> list[tuple[int, list[str]]]:
    """The first `want` users due by `today`, partition by partition (what `sweep` will take)."""
    left = want
    out = []
    for p in range(PARTITIONS):
        if left <= 0:
            break
        users = await store.due_users(p, today, left)
        if users:
            out.append((p, users))
            left -= len(users)
    return out


async def _snapshot(r: Redis, keys: Keys, sel: list[tuple[int, list[str]]]) -> list[Any]:
    async with r.pipeline(transaction=False) as pipe:
        for p, users in sel:
            for u in users:
                pipe.dump(keys.user(p, u))
                pipe.dump(keys.history(p, u))
                pipe.zscore(keys.due(p), u)
        return list(await pipe.execute())


async def _restore(r: Redis, keys: Keys, sel: list[tuple[int, list[str]]], snap: list[Any]) -> None:
    it = iter(snap)
    async with r.pipeline(transaction=False) as pipe:
        for p, users in sel:
            for u in users:
                for key in (keys.user(p, u), keys.history(p, u)):
                    dumped = next(it)
                    if dumped is None:
                        pipe.delete(key)
                    else:
                        pipe.restore(key, 0, dumped, replace=True)
                score = next(it)
                if score is None:
                    pipe.zrem(keys.due(p), u)
                else:
                    pipe.zadd(keys.due(p), {u: score})
        await pipe.execute()


async def add_idle(r: Redis, keys: Keys, start: int, stop: int, day: int) -> None:
    """Idle users: due-set members whose due day is far in the future (ZADD only)."""
    for lo in range(start, stop, 5000):
        async with r.pipeline(transaction=False) as pipe:
            per: dict[int, dict[str, int]] = defaultdict(dict)
            for i in range(lo, min(stop, lo + 5000)):
                per[i % PARTITIONS][f"idle{i:07d}"] = day
            for p, members in per.items():
                pipe.zadd(keys.due(p), members)
            await pipe.execute()


async def sweep_bench(
    r: Redis, store: StateStore, keys: Keys, end: datetime, due: int
) -> dict[str, Any]:
    """Sweep the same `due` users with more and more idle users in the due sets."""
    today = end.date().toordinal()
    later = end
    for k in range(1, store.model.window_days + 2):
        later = end + timedelta(days=k)
        n = sum([len(u) for _, u in await _due_selection(store, later.date().toordinal(), due)])
        if n >= due:
            break
    sel = await _due_selection(store, later.date().toordinal(), due)
    n_due = sum(len(u) for _, u in sel)
    limits = dict((p, len(u)) for p, u in sel)
    snap = await _snapshot(r, keys, sel)
    idle_day = today + 10_000
    runs: dict[int, list[float]] = {idle: [] for idle in IDLE_STEPS}
    members: dict[int, int] = {}
    changes = 0
    # configurations interleaved run by run, so that drifting machine load hits all alike
    for _ in range(SWEEP_RUNS):
        for p in range(PARTITIONS):
            await r.zremrangebyscore(keys.due(p), idle_day, idle_day)
        added = 0
        for idle in IDLE_STEPS:
            await add_idle(r, keys, added, idle, idle_day)
            added = idle
            await _restore(r, keys, sel, snap)
            members[idle] = sum([await r.zcard(keys.due(p)) for p in range(PARTITIONS)])
            t0 = time.perf_counter()
            swept = changes = 0
            for p, limit in limits.items():
                n, ch = await sweep(store, p, later, limit)
                swept += n
                changes += len(ch)
            runs[idle].append(time.perf_counter() - t0)
            assert swept == n_due, (swept, n_due)
    for p in range(PARTITIONS):
        await r.zremrangebyscore(keys.due(p), idle_day, idle_day)
    rows = []
    for idle in IDLE_STEPS:
        ms = statistics.median(runs[idle]) * 1000
        rows.append(
            {
                "idle_added": idle,
                "due_set_members": members[idle],
                "idle_members": members[idle] - n_due,
                "due_users": n_due,
                "changes": changes,
                "ms_median": round(ms, 2),
                "us_per_due_user": round(ms * 1000 / max(1, n_due), 1),
                "runs_ms": [round(x * 1000, 2) for x in runs[idle]],
            }
        )
    await _restore(r, keys, sel, snap)
    # where a swept user's time goes: reading its state, scoring it (the rest is the commit)
    t0 = time.perf_counter()
    loaded = {p: await store.load(p, users) for p, users in sel}
    t1 = time.perf_counter()
    for states in loaded.values():
        for stored in states.values():
            score(stored.state, store.model, later)
    t2 = time.perf_counter()
    per = 1e6 / max(1, n_due)
    return {
        "at_day_offset": (later.date() - end.date()).days,
        "rows": rows,
        "load_us_per_user": round((t1 - t0) * per, 1),
        "score_us_per_user": round((t2 - t1) * per, 1),
    }


# ---------------------------------------------------------------------------- main


async def run(users: int, seed: int, due: int) -> dict[str, Any]:
    model = load_model()
    server = start_redis()
    r = Redis.from_url(server.url, decode_responses=False)
    try:
        keys = Keys(NS)
        store = TimedStore(r, model, keys)
        await store.load_scripts()
        info = await r.info("server")
        end = datetime.now(UTC).replace(microsecond=0)
        base = await used_memory(r)

        t0 = time.perf_counter()
        fed = await feed(store, users, seed, end)
        feed_s = time.perf_counter() - t0
        # expired dedupe generations are reclaimed lazily: touch every key once first
        census = await key_census(r, keys)
        core = await used_memory(r) - base
        tracked = await store.users_tracked(PARTITIONS)

        entries = []
        names = list(fed.latest)
        for p in range(PARTITIONS):
            mine = [u for u in names if partition_of(u, PARTITIONS) == p]
            for i in range(0, len(mine), 2000):
                loaded = await store.load(p, mine[i : i + 2000])
                for u, s in loaded.items():
                    prof = s.state.profile or {}
                    entries.append((u, fed.latest[u].score, prof.get("industry"), prof.get("team")))
        before = await used_memory(r)
        for i in range(0, len(entries), 5000):
            await record_scores(r, keys, entries[i : i + 5000])
        bench_bytes = await used_memory(r) - before

        before = await used_memory(r)
        for i in range(0, len(fed.connections), 5000):
            await record_connections(r, keys, fed.connections[i : i + 5000])
        graph_bytes = await used_memory(r) - before
        census = await key_census(r, keys)
        shape = await user_hash_shape(r, keys)
        dedupe_entries = 0
        async for k in r.scan_iter(match=keys.dedupe_base(0)[: -len("d0}:")] + "d*", count=2000):
            dedupe_entries += await r.hlen(k)

        profiles = await profile_shape(r, keys)
        history_full = await history_probe(r, keys)
        sweeps = await sweep_bench(r, store, keys, end, due)

        per_user = {
            t: round(row["bytes"] / max(1, tracked), 1) for t, row in sorted(census.items())
        }
        total = core + bench_bytes
        # the same, with every history ring full (90 days of daily changes) as it grows in place
        hist = census.get("history", {"keys": 0, "avg_bytes_per_key": 0.0})
        full_ring = hist["keys"] * (history_full["grown day by day"] - hist["avg_bytes_per_key"])
        projected = (total + full_ring) / max(1, tracked)
        return {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "redis": f"{info.get('server_name', 'redis')} "
            f"{info.get('valkey_version') or info.get('redis_version')}",
            "population": users,
            "seed": seed,
            "days": DAYS,
            "partitions": PARTITIONS,
            "events": fed.events,
            "invalid": fed.invalid,
            "duplicates": fed.duplicates,
            "tracked_users": tracked,
            "feed_seconds": round(feed_s, 1),
            "memory": {
                "goal_bytes_per_user": GOAL_BYTES,
                "per_user_bytes": round(total / max(1, tracked), 1),
                "meets_goal": total / max(1, tracked) <= GOAL_BYTES,
                "per_user_bytes_with_full_history": round(projected, 1),
                "meets_goal_with_full_history": projected <= GOAL_BYTES,
                "history_ring_full_bytes": history_full,
                "core_per_user_bytes": round(core / max(1, tracked), 1),
                "benchmarks_per_user_bytes": round(bench_bytes / max(1, tracked), 1),
                "used_memory_delta": total,
                "memory_usage_per_user_by_key_type": per_user,
                "keys_by_type": census,
                "dedupe_live_entries": dedupe_entries,
                "user_hash": shape,
                "profile": profiles,
            },
            "graph": {
                "per_user_bytes": round(graph_bytes / max(1, tracked), 1),
                "used_memory_delta": graph_bytes,
                "accepted_connections": len(fed.connections),
                "keys": census.get("graph", {}).get("keys", 0),
                "encodings": census.get("graph", {}).get("encodings", {}),
            },
            "apply": {
                "batches": fed.batches,
                "signals": fed.signals,
                "events_applied": fed.applied,
                "us_per_signal": round(fed.apply_s * 1e6 / max(1, fed.signals), 2),
                "us_per_event": round(fed.apply_s * 1e6 / max(1, fed.applied), 2),
                "apply_script_us_per_signal": round(
                    fed.script_apply_s * 1e6 / max(1, fed.signals), 2
                ),
                "commit_script_us_per_signal": round(
                    fed.script_commit_s * 1e6 / max(1, fed.signals), 2
                ),
                "users_rescored_per_batch": round(fed.rescored / max(1, fed.batches), 1),
                "signals_per_batch": round(fed.signals / max(1, fed.batches), 1),
                "dedupe_us_per_event": round(fed.dedupe_s * 1e6 / max(1, fed.events), 2),
                "changes": fed.changes,
            },
            "sweep": sweeps,
        }
    finally:
        await r.aclose()
        server.close()


def report(res: dict[str, Any]) -> str:
    m, g, a = res["memory"], res["graph"], res["apply"]
    lines = [
        f"state memory — {res['population']:,} users, {res['days']} days, "
        f"{res['events']:,} events, {res['tracked_users']:,} tracked, on {res['redis']}",
        "",
        f"  per tracked user (dedupe + benchmarks incl.) {m['per_user_bytes']:>9,.0f} B   "
        f"goal ≤ {m['goal_bytes_per_user']:,} B: {'met' if m['meets_goal'] else 'NOT met'}",
        f"    with every history ring full (90 days)      "
        f"{m['per_user_bytes_with_full_history']:>9,.0f} B   goal: "
        f"{'met' if m['meets_goal_with_full_history'] else 'NOT met'} "
        f"(full ring {m['history_ring_full_bytes']})",
        f"    state + dedupe                              {m['core_per_user_bytes']:>9,.0f} B",
        f"    benchmark sorted sets                       "
        f"{m['benchmarks_per_user_bytes']:>9,.0f} B",
        f"  connection graph (separate)                   {g['per_user_bytes']:>9,.0f} B   "
        f"{g['accepted_connections']:,} connections, {g['encodings']}",
        "",
        "  MEMORY USAGE by key type      keys    bytes/key   bytes/user  encodings",
    ]
    for t, row in sorted(m["keys_by_type"].items(), key=lambda kv: -kv[1]["bytes"]):
        lines.append(
            f"    {t:<22} {row['keys']:>9,} {row['avg_bytes_per_key']:>11,.0f} "
            f"{m['memory_usage_per_user_by_key_type'][t]:>12,.1f}  {row['encodings']}"
        )
    sh = m["user_hash"]
    lines += [
        f"  user hash: {sh['fields_avg']} fields avg (max {sh['fields_max']}), "
        f"{sh['day_buckets_avg']} day buckets, longest value avg {sh['longest_value_avg']} B "
        f"(max {sh['longest_value_max']}); listpack limits {sh['listpack_limits']}",
        f"  profile: {m['profile']['value_bytes_avg']} B avg value, of which "
        f"{m['profile']['order_key_bytes_avg']} B ordering key",
        f"  dedupe: {m['dedupe_live_entries']:,} live entries",
        "",
        f"  apply: {a['us_per_signal']} µs/signal, {a['us_per_event']} µs/event "
        f"({a['batches']:,} batches, {a['signals']:,} signals); dedupe "
        f"{a['dedupe_us_per_event']} µs/event",
        f"    of which apply script {a['apply_script_us_per_signal']} µs, commit script "
        f"{a['commit_script_us_per_signal']} µs, the rest rescoring in Python "
        f"({a['users_rescored_per_batch']} users rescored per batch of "
        f"{a['signals_per_batch']} signals)",
        "",
        f"  decay sweep (day +{res['sweep']['at_day_offset']})   idle in due sets   due    ms"
        "      µs/due user",
    ]
    for row in res["sweep"]["rows"]:
        lines.append(
            f"    +{row['idle_added']:<9,}            {row['idle_members']:>10,} "
            f"{row['due_users']:>6,} {row['ms_median']:>8.1f} {row['us_per_due_user']:>10.1f}"
        )
    lines.append(
        f"    per due user: load {res['sweep']['load_us_per_user']} µs, "
        f"score {res['sweep']['score_us_per_user']} µs, the rest commit and round trips"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.state_memory", description=__doc__)
    p.add_argument("--users", type=int, default=20_000, help="simulated population")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--due", type=int, default=1000, help="users due in the sweep benchmark")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results.json")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    res = asyncio.run(run(args.users, args.seed, args.due))
    print(report(res))
    if not args.no_save:
        save(KEY, res)
        print(f"\nresults written to {RESULTS} (key {KEY!r})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
