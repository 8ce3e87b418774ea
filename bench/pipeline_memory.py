"""Redis memory per user of a held-out population fed through the real pipeline, and its scores.

    python -m bench.pipeline_memory [--users N] [--events-per-user E] [--seed K] [--no-save]

One run, its own embedded broker (Tansu) and a fresh embedded Redis:

1. Generate a held-out population with the independent generator `tests/reference/heldout.py`
   (not the simulator the product was tuned on): N users (default 3,000), every event type,
   caps-busting days, duplicates, bad records. It spreads events over ~60 days of event time;
   the 28-day window at its clock holds about 28/60 of them. It is sized so that the window
   holds E events per user (default 55, what the simulator's default population produces in
   28 days). Conflicting duplicates are left out: across Kafka partitions "first seen" is not
   file order, so the oracle could not say which copy counts.
2. Produce every non-blank line to `<prefix>activity` keyed by its subject (8 partitions) and
   run a real `ssi worker` process on it (`SSI_CLOCK` = the generator's clock). Done is exact,
   as in `bench.throughput`: every record consumed and ingested, and the aggregate agent has
   finished as many `<prefix>signals` records as that topic holds. Then the worker is stopped
   (its connections' buffers are not state).
3. Memory, `used_memory` deltas against the empty server (the scripts loaded first):
   * everything as fed; then the connection graph (`g:*`) deleted: its delta is the graph,
     reported separately; then the dedupe hashes deleted: their delta is the dedupe data as fed.
     What remains is the scorer state (user hashes, profiles, history, due sets, counts,
     watermarks, benchmark sorted sets).
   * As fed, a backfill keeps the identity of every event for the dedupe horizon (the whole
     population arrived within a minute of processing time), which no steady stream does. So the
     dedupe store is also rebuilt at steady state: the same valid events, in event-time order,
     through the production `StateStore.dedupe` with processing time = event time shifted so
     the population ends now; generations expire against the wall clock as in production, so
     only the last ~1.5 horizons stay (as `bench.state_memory` does).
   * `MEMORY USAGE` (SAMPLES 0) of every key, by key family, as fed.
   Per tracked user = users with state (`<ns>{<ns>pN}:n` counters).
4. Scores: every user's latest score-change (highest version) against the independent model
   (`tests/reference/model.py`, `score_lines` on the same lines and clock), score and every
   pillar within 0.01; the published user set must equal the model's.

Results go to `bench/results.json` under "pipeline_memory" (other keys kept) and a summary to
stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.census import census, scan
from bench.results import RESULTS, save
from bench.throughput import _end_offsets, _metric_sums, _total
from scoring.errors import InvalidEvent
from scoring.events import Event, parse_structured
from scoring.model import load_model
from state.codec import sighting
from state.keys import HISTORY_DAYS, HISTORY_RECORD_BYTES, Keys, partition_of
from state.store import StateStore
from streams.embedded import EmbeddedBroker, start_broker, start_redis
from tests.integration.worker_proc import (
    WorkerProcess,
    consume_all,
    latest_by_version,
    produce,
    worker_env,
)
from tests.reference import heldout
from tests.reference import model as ref

KEY = "pipeline_memory"
GOAL_BYTES = 2048  # DESIGN 6: ≤ 2 KB per tracked user at steady state, dedupe included
USERS = 3000
EVENTS_PER_USER_28D = 55  # windowed events per user, as the simulator's default population
HELDOUT_SPAN_DAYS = 60  # heldout.py draws event times over the last ~60 days
WINDOW_DAYS = 28
SEED = 20261122  # held out: no other test or benchmark uses it
PARTITIONS = 8
TOLERANCE = 0.01  # outputs carry 2 decimals; the model is unrounded
INGEST_CHUNK = 4000  # sightings per dedupe call in the steady-state rebuild
CHUNK_SPAN = 300.0  # seconds of event time at most per dedupe call in that rebuild
POLL = 0.5  # seconds between /metrics scrapes while waiting for the worker


def _say(msg: str) -> None:
    print(f"[pipeline_memory] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- workload


def events_for(users: int, per_user_28d: int) -> int:
    """Random events to ask of heldout.generate so the window holds `per_user_28d` per user."""
    return round(users * per_user_28d * HELDOUT_SPAN_DAYS / WINDOW_DAYS)


def population(seed: int, users: int, events: int) -> list[bytes]:
    lines = heldout.generate(seed, users=users, events=events, conflicting_duplicates=False)
    # a blank line in a file is nothing; as a Kafka record it would be an (empty) bad record
    return [line.encode("utf-8", "surrogateescape") for line in lines if line.strip()]


def record_key(line: bytes) -> bytes:
    """`ssi.activity` is keyed by the actor; unparseable lines get a placeholder key."""
    try:
        subject = json.loads(line).get("subject")
    except (ValueError, AttributeError):
        subject = None
    return str(subject).encode() if isinstance(subject, str) and subject else b"-"


# ---------------------------------------------------------------------------- memory


async def used_memory(r: Redis) -> int:
    return int((await r.info("memory"))["used_memory"])


INFO_FIELDS = (
    "used_memory",
    "used_memory_overhead",
    "used_memory_dataset",
    "used_memory_startup",
    "mem_clients_normal",
    "used_memory_scripts",
    "used_memory_vm_eval",
    "mem_allocator",
)


async def memory_info(r: Redis) -> dict[str, Any]:
    """The INFO memory fields that say what `used_memory` holds besides keys."""
    raw = await r.info("memory")
    out = {k: raw[k] for k in INFO_FIELDS if k in raw}
    out["keys"] = int(await r.dbsize())
    return out


async def delete_matching(r: Redis, pattern: str) -> tuple[int, int]:
    """DEL every key matching `pattern`: (keys, used_memory freed)."""
    before = await used_memory(r)
    names = await scan(r, pattern)
    for i in range(0, len(names), 2000):
        await r.delete(*names[i : i + 2000])
    return len(names), before - await used_memory(r)


async def dedupe_entries(r: Redis, keys: Keys) -> int:
    names = await scan(r, keys.ns + "{" + keys.ns + "d*")
    async with r.pipeline(transaction=False) as pipe:
        for k in names:
            pipe.hlen(k)
        return sum(int(n) for n in await pipe.execute())


async def history_shape(r: Redis, keys: Keys, sample: int = 1000) -> dict[str, Any]:
    """How long the stored history rings are (the feed commits on one clock day only)."""
    names = (await scan(r, keys.ns + "{" + keys.ns + "p*}:h:*"))[:sample]
    async with r.pipeline(transaction=False) as pipe:
        for k in names:
            pipe.strlen(k)
            pipe.memory_usage(k, samples=0)
        raw = await pipe.execute()
    n = max(1, len(names))
    return {
        "sampled": len(names),
        "strlen_avg": round(sum(raw[0::2]) / n, 1),
        "memory_usage_avg": round(sum(raw[1::2]) / n, 1),
        "full_history_strlen": HISTORY_DAYS * HISTORY_RECORD_BYTES,
    }


async def steady_dedupe(
    store: StateStore, events: Sequence[Event], shift: float
) -> tuple[float, int]:
    """The production dedupe over `events` in event-time order, processing time = event time +
    `shift`: returns (seconds, calls). Generations older than the horizon expire as they would."""
    offsets = [0] * PARTITIONS
    chunk: list[tuple[str, str, str]] = []
    calls = 0
    t0 = time.perf_counter()
    ordered = sorted(events, key=lambda e: e.time)
    start = 0.0
    for i, event in enumerate(ordered):
        t = event.time.timestamp()
        if not chunk:
            start = t
        a = partition_of(event.subject, PARTITIONS)
        chunk.append(sighting(event, a, offsets[a]))
        offsets[a] += 1
        last = i == len(ordered) - 1
        # a chunk is one ingest batch: a few thousand records, or minutes of a quiet stream,
        # never enough event time to span a dedupe generation (horizon / 4)
        if (
            last
            or len(chunk) >= INGEST_CHUNK
            or ordered[i + 1].time.timestamp() - start > CHUNK_SPAN
        ):
            await store.dedupe(chunk, t + shift)
            calls += 1
            chunk = []
    return time.perf_counter() - t0, calls


# ---------------------------------------------------------------------------- pipeline


async def wait_done(
    worker: WorkerProcess, bootstrap: str, prefix: str, n: int, limit: float
) -> dict[str, Any]:
    """Until every record is consumed and ingested and every signals record is aggregated."""
    deadline = time.monotonic() + limit
    signals_total: float | None = None
    samples: dict[str, float] = {}
    while time.monotonic() < deadline:
        status, body = worker.get("/metrics")
        if status == 200 and isinstance(body, str):
            samples = _metric_sums(body)
            consumed = _total(samples, "ssi_events_consumed_total")
            ingested = samples.get('ssi_batch_size_records_sum{agent="ingest"}', 0.0)
            aggregated = samples.get('ssi_batch_size_records_sum{agent="aggregate"}', 0.0)
            if consumed >= n and ingested >= n:
                if signals_total is None:
                    ends = await _end_offsets(bootstrap, prefix + "signals")
                    signals_total = float(sum(ends.values()))
                if aggregated >= signals_total:
                    return {
                        "records_consumed": int(consumed),
                        "signals_records": int(signals_total),
                        "signals_applied": int(_total(samples, "ssi_signals_applied_total")),
                        "score_changes": int(_total(samples, "ssi_score_changes_total")),
                        "dead_letters": int(_total(samples, "ssi_dead_letters_total")),
                        "duplicates": int(_total(samples, "ssi_duplicates_skipped_total")),
                    }
        assert worker.proc is not None
        if worker.proc.poll() is not None:
            raise SystemExit(f"worker exited {worker.proc.returncode}:\n{worker.tail()}")
        await asyncio.sleep(POLL)
    raise SystemExit(f"worker not done in {limit} s: {samples}\n{worker.tail()}")


def compare(
    latest: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Every user's latest score-change against the independent model, within TOLERANCE."""
    mismatches: list[dict[str, Any]] = []
    worst = 0.0
    for user in sorted(expected):
        exp, got = expected[user], latest.get(user)
        if got is None:
            mismatches.append({"user": user, "why": "no score change published"})
            continue
        diffs = {"score": abs(got["score"] - exp["score"])}
        for pillar, value in exp["pillars"].items():
            diffs[pillar] = abs(got["pillars"][pillar] - value)
        worst = max(worst, *diffs.values())
        bad = {k: round(v, 4) for k, v in diffs.items() if v > TOLERANCE + 1e-9}
        if bad:
            mismatches.append(
                {"user": user, "diff": bad, "got": got["score"], "want": exp["score"]}
            )
    extra = sorted(set(latest) - set(expected))
    return {
        "tolerance": TOLERANCE,
        "users_expected": len(expected),
        "users_published": len(latest),
        "users_matched": len(expected) - len(mismatches),
        "unexpected_users": extra[:20],
        "mismatches": mismatches[:20],
        "mismatch_count": len(mismatches),
        "max_abs_diff": round(worst, 6),
        "all_match": not mismatches and not extra,
    }


@dataclass
class Setup:
    users: int
    per_user_28d: int
    seed: int
    timeout: float  # seconds for the worker to finish the population


async def measure(setup: Setup, broker: EmbeddedBroker, tmp: Path) -> dict[str, Any]:
    """Feed the population through a worker on `broker` and a fresh Redis; measure; compare."""
    t_start = time.perf_counter()
    model = load_model()
    n_events = events_for(setup.users, setup.per_user_28d)
    t0 = time.perf_counter()
    lines = population(setup.seed, setup.users, n_events)
    gen_s = time.perf_counter() - t0
    now = heldout.now_for(setup.seed)
    _say(f"{len(lines):,} lines for {setup.users:,} users generated in {gen_s:.1f} s")

    server = start_redis()
    r = Redis.from_url(server.url, decode_responses=False)
    prefix = f"pm{uuid.uuid4().hex[:6]}."
    keys = Keys(prefix)
    worker: WorkerProcess | None = None
    try:
        store = StateStore(r, model, keys)
        await store.load_scripts()  # the worker's SCRIPT LOADs then add nothing
        info = await r.info("server")
        base = await used_memory(r)
        info_base = await memory_info(r)

        env = worker_env(
            broker.url,
            server.url,
            prefix,
            tmp,
            SSI_CLOCK=heldout.now_text(setup.seed),
            SSI_PARTITIONS=str(PARTITIONS),
            SSI_LOG_LEVEL="warning",
        )
        worker = WorkerProcess(env, tmp / "worker.log").start(timeout=120)
        t0 = time.perf_counter()
        await produce(
            broker.bootstrap, prefix + "activity", [(record_key(x), x, None) for x in lines]
        )
        produce_s = time.perf_counter() - t0
        _say(f"produced in {produce_s:.1f} s; waiting for the worker")
        done = await wait_done(worker, broker.bootstrap, prefix, len(lines), setup.timeout)
        process_s = time.perf_counter() - t0
        _say(f"worker done {process_s:.1f} s after the first record")
        worker.stop()

        changes = await consume_all(broker.bootstrap, prefix + "score-changes", idle=3, limit=600)
        latest = latest_by_version(changes)
        t0 = time.perf_counter()
        expected, rejected = ref.score_lines(list(lines), now)
        ref_s = time.perf_counter() - t0
        match = compare(latest, expected)
        _say(f"model: {match['users_matched']:,}/{match['users_expected']:,} users match")

        # ---- memory as fed
        fed_census = await census(r, keys)
        total_fed = await used_memory(r) - base
        info_fed = await memory_info(r)
        tracked = await store.users_tracked(PARTITIONS)
        fed_entries = await dedupe_entries(r, keys)
        hist = await history_shape(r, keys)
        graph_keys, graph_bytes = await delete_matching(r, keys.graph("*"))
        dedupe_keys, dedupe_fed_bytes = await delete_matching(r, keys.ns + "{" + keys.ns + "d*")
        state_bytes = await used_memory(r) - base
        info_state = await memory_info(r)

        # ---- dedupe at steady state: the same valid events, processing time = event time
        valid: list[Event] = []
        for x in lines:
            try:
                valid.append(parse_structured(x, model, now))
            except InvalidEvent:
                continue
        shift = datetime.now(UTC).timestamp() - now.timestamp()
        before = await used_memory(r)
        steady_s, _ = await steady_dedupe(store, valid, shift)
        steady_census = await census(r, keys)  # also reclaims lazily expired generations
        dedupe_steady_bytes = await used_memory(r) - before
        steady_entries = await dedupe_entries(r, keys)
        live_from = now - timedelta(seconds=1.5 * store.horizon)
        events_last_36h = sum(1 for e in valid if e.time > live_from)
        # what used_memory still holds once every key is gone: server internals the run left
        # behind (not per-user state; MEMORY USAGE of the keys does not include it)
        await r.flushall()
        residue = await used_memory(r) - base
        info_flushed = await memory_info(r)

        per = max(1, tracked)
        by_family = {
            t: {
                "keys": row["keys"],
                "bytes": row["bytes"],
                "bytes_per_user": round(row["bytes"] / per, 1),
                "avg_bytes_per_key": row["avg_bytes_per_key"],
                "encodings": row["encodings"],
            }
            for t, row in sorted(fed_census.items(), key=lambda kv: -kv[1]["bytes"])
        }
        steady_dd = steady_census.get("dedupe", {"keys": 0, "bytes": 0})
        state_keys_bytes = sum(
            row["bytes"] for t, row in fed_census.items() if t not in ("graph", "dedupe")
        )
        steady_total = state_bytes + dedupe_steady_bytes
        fed_total = state_bytes + dedupe_fed_bytes
        window_first = now.date().toordinal() - WINDOW_DAYS + 1
        in_window = sum(1 for e in valid if e.day >= window_first)
        return {
            "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": "python -m bench.pipeline_memory"
            + ("" if setup.users == USERS else f" --users {setup.users}")
            + (
                ""
                if setup.per_user_28d == EVENTS_PER_USER_28D
                else f" --events-per-user {setup.per_user_28d}"
            )
            + ("" if setup.seed == SEED else f" --seed {setup.seed}"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "redis": f"{info.get('server_name', 'redis')} "
                f"{info.get('valkey_version') or info.get('redis_version')}",
            },
            "workload": {
                "generator": "tests/reference/heldout.py (conflicting duplicates off)",
                "seed": setup.seed,
                "users": setup.users,
                "random_events_requested": n_events,
                "records_produced": len(lines),
                "valid_records": len(valid),
                "valid_in_window": in_window,
                "rejected_by_model": len(rejected),
                "event_time_span_days": HELDOUT_SPAN_DAYS,
                "window_days": WINDOW_DAYS,
                "clock": heldout.now_text(setup.seed),
                "partitions": PARTITIONS,
                "generate_seconds": round(gen_s, 1),
            },
            "run": {
                "produce_seconds": round(produce_s, 1),
                "process_seconds": round(process_s, 1),
                "events_per_s": round(len(lines) / process_s, 1),
                "reference_model_seconds": round(ref_s, 1),
                "steady_dedupe_rebuild_seconds": round(steady_s, 1),
                "total_seconds": round(time.perf_counter() - t_start, 1),
                **done,
                "score_change_records_read": len(changes),
            },
            "tracked_users": tracked,
            "memory": {
                "goal_bytes_per_user": GOAL_BYTES,
                "per_user_bytes_steady": round(steady_total / per, 1),
                "meets_goal_steady": steady_total / per <= GOAL_BYTES,
                "per_user_bytes_as_fed": round(fed_total / per, 1),
                "meets_goal_as_fed": fed_total / per <= GOAL_BYTES,
                "state_per_user_bytes": round(state_bytes / per, 1),
                "state_memory_usage_per_user_bytes": round(state_keys_bytes / per, 1),
                "steady_memory_usage_per_user_bytes": round(
                    (state_keys_bytes + steady_dd["bytes"]) / per, 1
                ),
                "non_key_residue_bytes": residue,
                "dedupe_steady_per_user_bytes": round(dedupe_steady_bytes / per, 1),
                "dedupe_as_fed_per_user_bytes": round(dedupe_fed_bytes / per, 1),
                "used_memory_delta": {
                    "as_fed_all": total_fed,
                    "graph": graph_bytes,
                    "dedupe_as_fed": dedupe_fed_bytes,
                    "state": state_bytes,
                    "dedupe_steady": dedupe_steady_bytes,
                },
                "dedupe": {
                    "as_fed": {
                        "entries": fed_entries,
                        "keys": dedupe_keys,
                        "bytes_per_entry": round(dedupe_fed_bytes / max(1, fed_entries), 1),
                    },
                    "steady": {
                        "entries": steady_entries,
                        "keys": steady_dd["keys"],
                        "memory_usage_bytes": steady_dd["bytes"],
                        "bytes_per_entry": round(dedupe_steady_bytes / max(1, steady_entries), 1),
                        "valid_events_last_1.5_horizons": events_last_36h,
                    },
                },
                "info_memory": {
                    "empty": info_base,
                    "as_fed": info_fed,
                    "state": info_state,
                    "after_flushall": info_flushed,
                },
                "memory_usage_by_family_as_fed": by_family,
                "memory_usage_sum_as_fed": sum(row["bytes"] for row in fed_census.values()),
                "history": hist,
            },
            "graph": {
                "per_user_bytes": round(graph_bytes / per, 1),
                "used_memory_delta": graph_bytes,
                "keys": graph_keys,
                "encodings": fed_census.get("graph", {}).get("encodings", {}),
            },
            "model_match": match,
        }
    finally:
        if worker is not None:
            worker.stop()
        await r.aclose()
        server.close()


# ---------------------------------------------------------------------------- report


def report(res: dict[str, Any]) -> str:
    m, w, g, mm, run = res["memory"], res["workload"], res["graph"], res["model_match"], res["run"]
    dd = m["dedupe"]

    def ok(flag: bool) -> str:
        return "met" if flag else "NOT met"

    lines = [
        f"pipeline memory — held-out population: {w['users']:,} users, "
        f"{w['records_produced']:,} records ({w['valid_records']:,} valid, "
        f"{w['valid_in_window']:,} in the 28-day window), seed {w['seed']}, "
        f"{res['tracked_users']:,} tracked users, on {res['machine']['redis']}",
        f"  worker: {run['process_seconds']} s ({run['events_per_s']:,.0f} records/s), "
        f"{run['score_changes']:,} score changes, {run['dead_letters']:,} dead letters; "
        f"total {run['total_seconds']} s",
        "",
    ]
    rows = [
        (
            "per tracked user, steady state (state + live dedupe)",
            m["per_user_bytes_steady"],
            f"goal ≤ {m['goal_bytes_per_user']:,} B: {ok(m['meets_goal_steady'])}",
        ),
        (
            "per tracked user, as fed (state + backfill dedupe)",
            m["per_user_bytes_as_fed"],
            f"goal: {ok(m['meets_goal_as_fed'])}",
        ),
        ("  scorer state (no dedupe, no graph)", m["state_per_user_bytes"], ""),
        (
            "    of which in keys (MEMORY USAGE)",
            m["state_memory_usage_per_user_bytes"],
            f"the rest: server memory not in any key, {m['non_key_residue_bytes']:,} B "
            "still used after FLUSHALL",
        ),
        (
            "steady state, keys only (MEMORY USAGE)",
            m["steady_memory_usage_per_user_bytes"],
            "",
        ),
        (
            "  dedupe at steady state",
            m["dedupe_steady_per_user_bytes"],
            f"{dd['steady']['entries']:,} entries in {dd['steady']['keys']:,} hashes, "
            f"{dd['steady']['bytes_per_entry']} B/entry",
        ),
        (
            "  dedupe as fed (every event's identity live)",
            m["dedupe_as_fed_per_user_bytes"],
            f"{dd['as_fed']['entries']:,} entries in {dd['as_fed']['keys']:,} hashes, "
            f"{dd['as_fed']['bytes_per_entry']} B/entry",
        ),
        (
            "connection graph (separate)",
            g["per_user_bytes"],
            f"{g['keys']:,} keys {g['encodings']}",
        ),
    ]
    lines += [f"  {label:<52} {value:>8,.0f} B   {note}" for label, value, note in rows]
    lines += [
        "",
        "  MEMORY USAGE by key family, as fed   keys   bytes/key   bytes/user  encodings",
    ]
    for t, row in m["memory_usage_by_family_as_fed"].items():
        lines.append(
            f"    {t:<28} {row['keys']:>9,} {row['avg_bytes_per_key']:>11,.0f} "
            f"{row['bytes_per_user']:>12,.1f}  {row['encodings']}"
        )
    h = m["history"]
    lines += [
        f"  history logs: {h['strlen_avg']} B avg string (at most {h['full_history_strlen']} B), "
        f"{h['memory_usage_avg']} B MEMORY USAGE avg",
        "",
        f"  independent model: {mm['users_matched']:,} / {mm['users_expected']:,} users match "
        f"within {mm['tolerance']} (max diff {mm['max_abs_diff']}); "
        f"{mm['users_published']:,} published; "
        f"{'all match' if mm['all_match'] else 'MISMATCH: ' + json.dumps(mm['mismatches'][:3])}",
    ]
    return "\n".join(lines)


async def _run(setup: Setup, tmp: Path) -> dict[str, Any]:
    broker = start_broker()
    try:
        return await measure(setup, broker, tmp)
    finally:
        broker.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pipeline_memory", description=__doc__)
    p.add_argument("--users", type=int, default=USERS, help="held-out population")
    p.add_argument(
        "--events-per-user",
        type=int,
        default=EVENTS_PER_USER_28D,
        help="events per user in the 28-day window",
    )
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--timeout", type=float, default=1800, help="seconds for the worker")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results.json")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    tmp = Path(tempfile.mkdtemp(prefix="ssi-pipeline-memory-"))
    try:
        setup = Setup(args.users, args.events_per_user, args.seed, args.timeout)
        res = asyncio.run(_run(setup, tmp))
    finally:
        if os.environ.get("BENCH_KEEP_TMP"):
            _say(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(res))
    if not args.no_save:
        save(KEY, res)
        print(f"\nresults written to {RESULTS} (key {KEY!r})")
    # a score that differs from the model is a failure; the memory figures are reported
    return 0 if res["model_match"]["all_match"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
