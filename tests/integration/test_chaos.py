"""Chaos: real worker processes, a real broker and a real Redis, faults injected mid-stream.

Every scenario ends with the latest score-change per user (highest version) equal to the
independent model (tests/reference/model.py) on the same events and clock, to 0.01; with the
versions of each user, in topic order, never falling and never carrying two scores; with every
invalid record in the dead-letter topic with its code; with every worker alive and ready.

`make test` runs the small sizes; `make chaos` (SSI_CHAOS_FULL=1) more faults on bigger
streams. Each scenario prints what it did (kills, freezes, records, users, seconds); set
SSI_CHAOS_REPORT=FILE to collect those as JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.embedded import EmbeddedBroker, EmbeddedRedis, start_broker, start_redis
from tests.integration.chaos import (
    FULL,
    PARTITIONS,
    ChaosRun,
    Scenario,
    expected_scores,
    mix,
    poison,
    ready_status,
    run_rebuild,
    start_worker,
    stream,
    wait_status,
)
from tests.reference import heldout

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(900)]

FREEZE_SECONDS = 15.0

# CI's budget (~4 min on two cores) holds the held-out run, which already kills the worker twice
# and freezes Redis and the broker for 15 s each in one stream; the stand-alone kill and
# broker-freeze scenarios add the larger sizes under `make chaos`.
covered_in_ci_by_heldout = pytest.mark.skipif(
    not FULL,
    reason="in make test, test_heldout_stream_survives_every_fault does the SIGKILLs and the "
    "broker freeze; this larger stand-alone form runs under make chaos (SSI_CHAOS_FULL=1)",
)


@pytest.fixture(scope="module")
def chaos_broker() -> Iterator[EmbeddedBroker]:
    """A broker of this module's own: freezing the session one would stall other tests."""
    with start_broker() as b:
        yield b


@pytest.fixture(scope="module")
def chaos_redis() -> Iterator[EmbeddedRedis]:
    with start_redis() as r:
        yield r


@pytest.fixture
def show(capsys: pytest.CaptureFixture[str]) -> Iterator[list[Scenario]]:
    """Print each scenario's record at the end of its test, passed or failed."""
    done: list[Scenario] = []
    yield done
    with capsys.disabled():
        for s in done:
            print("\n" + s.report())


def sizes(small: tuple[int, int], full: tuple[int, int]) -> tuple[int, int]:
    """(users, generator events) for this run's size."""
    return full if FULL else small


@covered_in_ci_by_heldout
async def test_sigkill_mid_stream(chaos_broker, chaos_redis, tmp_path: Path, show) -> None:
    seed = 11
    rng = random.Random(seed)
    kills = 6 if FULL else 2
    users, events = sizes((40, 1200), (120, 6000))
    s = Scenario("sigkill", seed)
    show.append(s)
    records = mix(stream(seed, users, events), poison(heldout.now_for(seed)), seed)
    rate = len(records) / (18 * kills)  # the stream lasts as long as the kills take
    run = ChaosRun(s, chaos_broker, chaos_redis, tmp_path, records, heldout.now_for(seed), rate)
    try:
        await run.start()
        for _ in range(kills):
            # a random point while the worker is busy with the stream and its backlog
            await run.progressing()
            await asyncio.sleep(rng.uniform(0.0, 2.0))
            await run.kill_and_restart()
        await run.finish()
    finally:
        await run.close()
    assert s.kills == kills


async def test_rebalance_two_workers(chaos_broker, chaos_redis, tmp_path: Path, show) -> None:
    seed = 21
    rng = random.Random(seed)
    rounds = 3 if FULL else 1
    users, events = sizes((40, 1200), (120, 6000))
    s = Scenario("rebalance", seed)
    show.append(s)
    records = mix(stream(seed, users, events), poison(heldout.now_for(seed)), seed)
    run = ChaosRun(
        s, chaos_broker, chaos_redis, tmp_path, records, heldout.now_for(seed), 100, workers=2
    )
    try:
        await run.start()
        for r in range(rounds):
            victim, other = run.workers[r % 2], run.workers[(r + 1) % 2]
            await wait_status(other, 200, 120)  # both members hold partitions
            _, before = await asyncio.to_thread(other.get, "/readyz")
            await run.progressing()
            await asyncio.sleep(rng.uniform(0.0, 2.0))
            await asyncio.to_thread(victim.kill)
            s.kills += 1
            s.note(f"SIGKILL worker {r % 2} ({run.feed.sent} records sent)")
            # the survivor takes over every partition once the victim's session expires
            for _ in range(240):
                _, after = await asyncio.to_thread(other.get, "/readyz")
                if (
                    isinstance(after, dict)
                    and after["ready"]
                    and after["checks"]["assigned_partitions"]
                    > before["checks"]["assigned_partitions"]
                ):
                    break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError(f"the other worker did not take over: {after}")
            s.note(
                f"worker {(r + 1) % 2} took over: {before['checks']['assigned_partitions']} → "
                f"{after['checks']['assigned_partitions']} partitions"
            )
            took = await start_worker(victim)
            s.restarts += 1
            s.note(f"worker {r % 2} rejoined, ready in {took:.1f} s")
        await run.finish()
    finally:
        await run.close()


async def test_redis_freeze_then_restart_empty_and_rebuild(
    chaos_broker, chaos_redis, tmp_path: Path, show
) -> None:
    """Redis frozen for 15 s mid-stream, then restarted empty under the running worker while
    records keep arriving: the worker must publish nothing from the lost state (versions would
    start again at 1) and answer 503 until the runbook (stop the workers, `ssi rebuild` from the
    retained topic, start them) restores it; then scores follow the model again."""
    seed = 31
    users, events = sizes((40, 1200), (120, 6000))
    s = Scenario("redis", seed)
    show.append(s)
    records = mix(stream(seed, users, events), poison(heldout.now_for(seed)), seed)
    freezes = 2 if FULL else 1
    rate = len(records) / (20 * freezes + 20)  # the stream outlasts the faults
    run = ChaosRun(s, chaos_broker, chaos_redis, tmp_path, records, heldout.now_for(seed), rate)
    worker = run.workers[0]
    try:
        await run.start()
        for _ in range(freezes):
            await run.progressing()
            await run.freeze(chaos_redis, "redis", FREEZE_SECONDS)
            s.redis_freezes += 1
        await run.progressing()
        sent = run.feed.sent
        chaos_redis.restart_empty()
        s.redis_restarts += 1
        s.note(f"redis restarted empty under the running worker ({sent} records sent)")
        took = await wait_status(worker, 503, 30)
        _, body = await asyncio.to_thread(worker.get, "/readyz")
        s.note(f"/readyz 503 {took:.1f} s later: {body['checks']}")
        await asyncio.sleep(3)  # records keep arriving meanwhile
        bad = run.subscriber.version_violations()
        assert not bad, f"scores published from the lost state: {bad[:3]}"
        assert await ready_status(worker) == 503
        # the runbook
        await asyncio.to_thread(worker.stop)
        line = await asyncio.to_thread(run_rebuild, run.env)
        s.rebuilds += 1
        s.note(f"{line} ({run.feed.sent} records sent)")
        took = await start_worker(worker)
        s.note(f"worker restarted after the rebuild, ready in {took:.1f} s")
        await run.finish()
    finally:
        await run.close()


@covered_in_ci_by_heldout
async def test_broker_freeze(chaos_broker, chaos_redis, tmp_path: Path, show) -> None:
    seed = 41
    users, events = sizes((40, 1200), (120, 6000))
    s = Scenario("broker", seed)
    show.append(s)
    records = mix(stream(seed, users, events), poison(heldout.now_for(seed)), seed)
    run = ChaosRun(s, chaos_broker, chaos_redis, tmp_path, records, heldout.now_for(seed), 150)
    try:
        await run.start()
        for _ in range(2 if FULL else 1):
            await asyncio.sleep(1.0)
            await run.freeze(chaos_broker, "broker", FREEZE_SECONDS)
            s.broker_freezes += 1
        await run.finish()
    finally:
        await run.close()


async def test_heldout_stream_survives_every_fault(
    chaos_broker, chaos_redis, tmp_path: Path, show
) -> None:
    """Issue 6 "Done when": one held-out stream, four SIGKILLs of the worker (two in the small
    size), a 15 s Redis freeze, a 15 s broker freeze, poison records of every kind: every
    user's latest score equals the model, the worker is ready, every poison record is
    dead-lettered with its code."""
    seed = 97  # used by no other test
    rng = random.Random(seed)
    now = heldout.now_for(seed)
    kills = 4 if FULL else 2
    users, events = sizes((50, 1500), (200, 8000))
    s = Scenario("heldout", seed)
    show.append(s)
    records = mix(stream(seed, users, events), poison(now, copies=3), seed)
    # the stream lasts as long as the faults take, so every fault falls mid-stream
    seconds = 14 * kills + 2 * (FREEZE_SECONDS + 4)
    run = ChaosRun(s, chaos_broker, chaos_redis, tmp_path, records, now, len(records) / seconds)
    plan = ["kill"] * kills + ["redis", "broker"]
    rng.shuffle(plan)
    s.note("plan: " + ", ".join(plan))
    try:
        await run.start()
        for fault in plan:
            await run.progressing()
            await asyncio.sleep(rng.uniform(0.0, 2.0))
            if fault == "kill":
                await run.kill_and_restart()
            elif fault == "redis":
                await run.freeze(chaos_redis, "redis", FREEZE_SECONDS)
                s.redis_freezes += 1
            else:
                await run.freeze(chaos_broker, "broker", FREEZE_SECONDS)
                s.broker_freezes += 1
        await run.finish()
    finally:
        await run.close()
    assert s.kills == kills and s.redis_freezes == 1 and s.broker_freezes == 1
    assert s.poison == 27


async def test_failed_aggregate_batch_is_retried_not_lost(
    chaos_broker, chaos_redis, tmp_path: Path, show
) -> None:
    """A Redis error while a signals batch is applied must not lose the batch.

    Deterministic form of what the freezes above hit by chance: the worker's Redis user loses
    write access to the partition keys (ACL) after ingest forwarded a batch, so the aggregate
    step fails with NOPERM, then the access comes back. The batch must be applied then.
    """
    seed = 61
    now = heldout.now_for(seed)
    s = Scenario("aggregate-failure", seed)
    show.append(s)
    records = stream(seed, 20, 300)
    half = len(records) // 2
    run = ChaosRun(s, chaos_broker, chaos_redis, tmp_path, records, now, 2000)
    ns = run.prefix
    async with worker_acl(chaos_redis, run, f"chaos-{seed}-{tmp_path.name[-8:]}") as acl:
        await run.start(stop_at=half)
        await run.subscriber.converged(expected_scores(records[:half], now), 120)
        s.note(f"first {half} records scored")
        # ingest may still dedupe ({ns d*}) and record connections (ns g:*); the partition
        # keys ({ns p*}) that the aggregate step writes are refused
        await acl("resetkeys", f"~{ns}{{{ns}d*", f"~{ns}g:*")
        before = await signals_end(chaos_broker.bootstrap, ns + "signals")
        run.feed.resume()
        await run.feed.finished(60)
        for _ in range(120):  # ingest forwards the rest; the aggregate step fails on it
            if await signals_end(chaos_broker.bootstrap, ns + "signals") > before:
                break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("ingest forwarded nothing while the partition keys were refused")
        await asyncio.sleep(3)
        s.note("partition keys refused for 3 s after ingest forwarded the second half")
        await acl("allkeys")
        s.note("access restored")
        await run.finish(timeout=90)


@contextlib.asynccontextmanager
async def worker_acl(
    redis: EmbeddedRedis, run: ChaosRun, user: str
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """The run's workers log in to Redis as an ACL user of their own (all keys to begin with).
    Yields `acl(*rules)`, which runs `ACL SETUSER <user> *rules`; at the end the run is closed
    and the user deleted."""
    password = "chaos-password"
    admin = aioredis.Redis.from_url(redis.url)
    await admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    for w in run.workers:
        w.env.update(SSI_REDIS_USERNAME=user, SSI_REDIS_PASSWORD=password)

    async def acl(*rules: str) -> Any:
        return await admin.execute_command("ACL", "SETUSER", user, *rules)

    try:
        yield acl
    finally:
        await run.close()
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()


async def signals_end(bootstrap: str, topic: str) -> int:
    """Sum of the end offsets of a topic's partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def test_failed_ingest_batch_is_fetched_again_in_order(
    chaos_broker, chaos_redis, tmp_path: Path, show
) -> None:
    """A batch that fails while the next one goes through must lose nothing.

    Ingest overlaps batches (streams/ingest.py): while one waits for its acknowledgements, the
    next is decoded and deduped. Here the worker's Redis user loses access to one of the 16
    dedupe shard groups for 4 s while a stream of small batches flows: a batch with an event
    of that group fails, the batch after it may not. The later batch must not be sent or
    committed before the failed one (the apply watermarks would then skip the failed one's
    events when it is fetched again), and the end state must equal the model.
    """
    seed = 62
    now = heldout.now_for(seed)
    s = Scenario("ingest-failure", seed)
    show.append(s)
    records = stream(seed, 30, 900)
    half = len(records) // 3
    run = ChaosRun(s, chaos_broker, chaos_redis, tmp_path, records, now, 250)
    for w in run.workers:
        w.env.update(SSI_BATCH_SIZE="8")
    ns = run.prefix
    async with worker_acl(chaos_redis, run, f"chaos-{seed}-{tmp_path.name[-8:]}") as acl:
        await run.start(stop_at=half)
        await run.subscriber.converged(expected_scores(records[:half], now), 120)
        s.note(f"first {half} records scored")
        # every key but dedupe shard group 3 ({ns d3}); groups 10-15 match d[^3]* too
        await acl("resetkeys", f"~{ns}{{{ns}p*", f"~{ns}{{{ns}d[^3]*", f"~{ns}bm:*", f"~{ns}g:*")
        run.feed.resume()
        await asyncio.sleep(4)
        s.note("dedupe shard group 3 refused for 4 s while the stream flowed")
        await acl("allkeys")
        s.note("access restored")
        await run.finish(timeout=120)
        log = run.workers[0].tail(200_000)
        failed = [line for line in log.splitlines() if "ingest batch of" in line]
        assert failed, "no ingest batch failed: the fault missed"
        s.note(f"{len(failed)} failed ingest attempts, e.g. {failed[0][-120:]}")
