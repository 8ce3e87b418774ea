"""What the scorer observes about itself beyond its own code paths, into its Prometheus registry.

* `ScorerSensor`: a Faust `Sensor` turning Faust's own events (records in and acknowledged,
  sends and their latency, commits, rebalances, partition assignment) into `ssi_*` metrics in
  base units (the published score and pillar histograms are observed where changes are sent,
  `Scorer._publish`). Labels carry topic names and outcomes only, never user ids.
* `faust_offsets` / `aiokafka_offsets` / `export_offsets`: per-partition end offset, committed
  offset and lag of the partitions this worker is assigned, from the Faust consumer
  (`ssi.signals`) and the ingest consumer (`ssi.activity`); called by the app's gauges timer.
* `refresh_benchmark_gauges`: the score distribution and industry sizes and percentiles, read
  from the benchmark sorted sets with O(log N) rank queries (no full scans of a set).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from faust.sensors import Sensor
from faust.types import TP
from redis.asyncio import Redis

from state.benchmarks import MIN_GROUP
from state.keys import Keys
from streams.metrics import SCORE_BANDS, Metrics

log = logging.getLogger("ssi")

TOP_INDUSTRIES = 20  # industries exported as label values: bounded cardinality
INDUSTRY_LABEL_MAX = 64  # characters of an industry name kept in a label
INDUSTRY_QUANTILES = (0.5, 0.9)


class ScorerSensor(Sensor):
    """Feeds Faust's sensor events into the scorer's `Metrics`."""

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics
        # label children cached per topic: these hooks run once per record
        self._received: dict[str, Any] = {}
        self._acked: dict[str, Any] = {}
        self._partitions: set[tuple[str, int]] = set()
        self._industries: set[str] = set()
        self._benchmarks_at = 0.0
        self._benchmarks_every = 15.0

    async def refresh_offsets(
        self,
        faust_consumer: Any,
        faust_topics: Iterable[str],
        ingest_consumer: Any = None,
        timeout: float = 2.0,
    ) -> None:
        """Per-partition offsets and lag: the Faust consumer's partitions of `faust_topics`,
        and every partition of the aiokafka `ingest_consumer` when there is one.

        Offset requests wait for the group coordinator during a rebalance: after `timeout`
        seconds the previous values stay (raises `TimeoutError`), so the gauges timer keeps
        its 5 s rhythm.
        """

        async def collect() -> dict[tuple[str, int], tuple[int, int]]:
            offsets = await faust_offsets(faust_consumer, faust_topics)
            if ingest_consumer is not None:
                offsets.update(await aiokafka_offsets(ingest_consumer))
            return offsets

        offsets = await asyncio.wait_for(collect(), timeout)
        self._partitions = export_offsets(self.metrics, offsets, self._partitions)

    async def refresh_benchmarks(self, redis: Redis, keys: Keys) -> None:
        """Benchmark gauges. Finding the industries SCANs the keyspace, so the refresh runs at
        most once per 100 times its own last duration (≤ 1% of one connection's time), and
        between every 15 s (a small keyspace) and every 5 minutes."""
        now = time.monotonic()
        if self._benchmarks_at and now - self._benchmarks_at < self._benchmarks_every:
            return
        self._benchmarks_at = now
        self._industries = await refresh_benchmark_gauges(
            redis, keys, self.metrics, self._industries
        )
        took = time.monotonic() - now
        self._benchmarks_every = min(300.0, max(15.0, 100 * took))

    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        child = self._received.get(tp.topic)
        if child is None:
            child = self._received[tp.topic] = self.metrics.received.labels(tp.topic)
        child.inc()

    def on_message_out(self, tp: TP, offset: int, message: Any) -> None:
        child = self._acked.get(tp.topic)
        if child is None:
            child = self._acked[tp.topic] = self.metrics.acked.labels(tp.topic)
        child.inc()

    def on_topic_buffer_full(self, tp: Any) -> None:
        topic = tp.topic if isinstance(tp, TP) else str(getattr(tp, "topic", tp))
        self.metrics.buffer_full.labels(topic).inc()

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        return (topic, time.perf_counter())

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        if state:
            topic, t0 = state
            self.metrics.sent.labels(topic).inc()
            self.metrics.send_latency.labels(topic).observe(time.perf_counter() - t0)

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        topic = state[0] if state else "unknown"
        self.metrics.send_errors.labels(topic).inc()

    def on_commit_initiated(self, consumer: Any) -> Any:
        return time.perf_counter()

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        if state is not None:
            self.metrics.commit_latency.observe(time.perf_counter() - state)

    def on_assignment_start(self, assignor: Any) -> dict[str, Any]:
        return {"time_start": time.perf_counter()}

    def on_assignment_error(self, assignor: Any, state: dict[str, Any], exc: BaseException) -> None:
        self.metrics.assignments.labels("error").inc()

    def on_assignment_completed(self, assignor: Any, state: dict[str, Any]) -> None:
        self.metrics.assignments.labels("ok").inc()

    def on_rebalance_start(self, app: Any) -> dict[str, Any]:
        self.metrics.rebalances.inc()
        self.metrics.rebalancing.set(1)
        return {"time_start": time.perf_counter()}

    def on_rebalance_end(self, app: Any, state: dict[str, Any]) -> None:
        self.metrics.rebalancing.set(0)
        if state and "time_start" in state:
            self.metrics.rebalance_duration.observe(time.perf_counter() - state["time_start"])


async def faust_offsets(
    consumer: Any, topics: Iterable[str]
) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) → (end offset, committed offset) for the Faust consumer's assigned
    partitions of `topics`. Committed offsets are Faust's own bookkeeping (the next offset to
    process); before a partition's first commit, its earliest offset."""
    wanted = set(topics)
    tps = [tp for tp in consumer.assignment() if tp.topic in wanted]
    if not tps:
        return {}
    ends = await consumer.highwaters(*tps)
    known = getattr(consumer, "_committed_offset", {})
    committed = {tp: known.get(tp) for tp in tps}
    missing = [tp for tp, off in committed.items() if off is None]
    if missing:
        earliest = await consumer.earliest_offsets(*missing)
        committed.update({tp: earliest.get(tp, 0) for tp in missing})
    return {
        (tp.topic, tp.partition): (int(ends[tp]), int(committed[tp] or 0))
        for tp in tps
        if ends.get(tp) is not None
    }


async def aiokafka_offsets(consumer: Any) -> dict[tuple[str, int], tuple[int, int]]:
    """The same for a plain aiokafka consumer (the ingest consumer of `ssi.activity`): end
    offsets and committed offsets asked from the broker."""
    tps = sorted(consumer.assignment())
    if not tps:
        return {}
    ends = await consumer.end_offsets(tps)
    committed: dict[Any, int | None] = {tp: await consumer.committed(tp) for tp in tps}
    missing = [tp for tp, off in committed.items() if off is None]
    if missing:
        earliest = await consumer.beginning_offsets(missing)
        committed.update({tp: earliest.get(tp, 0) for tp in missing})
    return {
        (tp.topic, tp.partition): (int(ends[tp]), int(committed[tp] or 0))
        for tp in tps
        if ends.get(tp) is not None
    }


def export_offsets(
    metrics: Metrics,
    offsets: dict[tuple[str, int], tuple[int, int]],
    previous: set[tuple[str, int]],
) -> set[tuple[str, int]]:
    """Set end offset, committed offset and lag per partition; remove the partitions of
    `previous` not in `offsets` (moved to another worker, which reports them now)."""
    for (topic, partition), (end, done) in offsets.items():
        labels = (topic, str(partition))
        metrics.highwater.labels(*labels).set(end)
        metrics.committed.labels(*labels).set(done)
        metrics.lag.labels(*labels).set(max(0, end - done))
    current = set(offsets)
    for topic, partition in previous - current:
        for gauge in (metrics.highwater, metrics.committed, metrics.lag):
            _remove(gauge, topic, str(partition))
    return current


def _band_label(low: int, high: int) -> str:
    return f"{low}-{high}"


async def refresh_benchmark_gauges(
    redis: Redis, keys: Keys, metrics: Metrics, previous: set[str]
) -> set[str]:
    """Score bands of everyone and the largest industries' sizes and percentiles.

    Industry names come from one SCAN of the benchmark keys (call this on a slow cadence);
    returns the industries exported now, and drops the ones of `previous` no longer among them.
    """
    everyone = keys.bench_all()
    async with redis.pipeline(transaction=False) as pipe:
        for i, (low, high) in enumerate(SCORE_BANDS):
            last = i == len(SCORE_BANDS) - 1
            pipe.zcount(everyone, low, high if last else f"({high}")
        counts = await pipe.execute()
    for (low, high), n in zip(SCORE_BANDS, counts, strict=True):
        metrics.score_band.labels(_band_label(low, high)).set(int(n))

    prefix = keys.bench_industry("")
    names: list[str] = []
    async for raw in redis.scan_iter(match=_glob_escape(prefix) + "*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else raw
        names.append(key[len(prefix) :])
    sizes: dict[str, int] = {}
    if names:
        async with redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zcard(keys.bench_industry(name))
            sizes = dict(zip(names, (int(x) for x in await pipe.execute()), strict=True))
    top = sorted(sizes, key=lambda n: (-sizes[n], n))[:TOP_INDUSTRIES]
    ranks: dict[str, list[int]] = defaultdict(list)
    async with redis.pipeline(transaction=False) as pipe:
        for name in top:
            if sizes[name] >= MIN_GROUP:
                for q in INDUSTRY_QUANTILES:
                    rank = max(0, min(sizes[name], math.ceil(q * sizes[name])) - 1)  # nearest
                    ranks[name].append(rank)
                    pipe.zrange(keys.bench_industry(name), rank, rank, withscores=True)
        answers = iter(await pipe.execute())
    exported: set[str] = set()
    for name in top:
        label = name[:INDUSTRY_LABEL_MAX]
        exported.add(label)
        metrics.industry_users.labels(label).set(sizes[name])
        for q in INDUSTRY_QUANTILES:
            hit = next(answers) if name in ranks else None
            if hit:
                metrics.industry_score.labels(label, str(q)).set(float(hit[0][1]))
            else:  # below the privacy floor (again): no percentiles
                _remove(metrics.industry_score, label, str(q))
    for label in previous - exported:
        _remove(metrics.industry_users, label)
        for q in INDUSTRY_QUANTILES:
            _remove(metrics.industry_score, label, str(q))
    return exported


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never exported
        metric.remove(*labels)


def _glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters of a literal key prefix."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
