"""The Faust application: topics, the ingest and aggregate agents, and the decay timer.

Agents stay thin: decode, call the domain (`scoring`), write state (`state`), send. Each batch
is finished -- state stored, score changes delivered -- before its offsets are acknowledged, so a
crash at any point replays work that the state store then recognises (watermarks, dedupe).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from redis.asyncio import Redis

from scoring.errors import InvalidEvent
from scoring.events import Event, is_binary_mode, parse_binary, parse_structured
from scoring.model import Model, load_model
from state.benchmarks import record_connections, record_scores
from state.codec import EventDelta, StoredUser, route_event, sighting
from state.keys import Keys
from state.pipeline import ScoreChange, process_batch, sweep
from state.store import StateStore
from streams.config import Settings
from streams.ingest import ActivityConsumer, retry_delay
from streams.metrics import Metrics
from streams.sensors import ScorerSensor

log = logging.getLogger("ssi")

SIGNALS_FORMAT = 1  # version of the internal ssi.signals message layout


def _headers(raw: Any) -> list[tuple[str, bytes | None]]:
    """Record headers as (name, value) pairs; a null value stays None (not the text "None")."""
    if not raw:
        return []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(str(k), v if isinstance(v, bytes) or v is None else str(v).encode()) for k, v in items]


def decode_record(
    value: bytes | None, headers: list[tuple[str, bytes | None]], model: Model, now: datetime
) -> Event:
    """One `ssi.activity` record, structured or binary CloudEvents mode."""
    if is_binary_mode(headers):
        return parse_binary(headers, value, model, now)
    return parse_structured(value or b"", model, now)


def dead_letter_headers(
    headers: list[tuple[str, bytes | None]],
    code: str,
    message: str,
    topic: str,
    partition: int,
    offset: int,
) -> list[tuple[str, bytes | None]]:
    """The original headers plus the `ssi-error-*` and source headers (DESIGN 3.3)."""
    return [
        *headers,
        ("ssi-error-code", code.encode()),
        ("ssi-error-message", message.encode("utf-8", "replace")[:1000]),
        ("ssi-source-topic", topic.encode()),
        ("ssi-source-partition", str(partition).encode()),
        ("ssi-source-offset", str(offset).encode()),
    ]


Headers = list[tuple[str, bytes | None]]


@dataclass(slots=True)
class IngestBatch:
    """One fetch of `ssi.activity` records on its way through the three ingest phases."""

    records: Sequence[Any]
    now: datetime
    t0: float  # perf_counter at decode, for the processing-duration histogram
    valid: list[tuple[Any, Event, Headers]] = field(default_factory=list)
    # dead letters: (record, headers, error code, message)
    rejects: list[tuple[Any, Headers, str, str]] = field(default_factory=list)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, outcome) → n
    signals: dict[int, bytes] = field(default_factory=dict)  # ssi.signals partition → record
    connections: list[tuple[str, str]] = field(default_factory=list)
    late: int = 0


def bootstrap_servers(broker_url: str) -> list[str]:
    """`kafka://host:port[;host:port]` (commas too) as aiokafka's bootstrap list."""
    hosts = broker_url.split("://", 1)[-1].replace(";", ",")
    return [h.strip() for h in hosts.split(",") if h.strip()]


def app_options(settings: Settings) -> dict[str, Any]:
    """The Faust settings of the scorer's app (besides id, broker and credentials).

    Shared with the throughput benchmark so its bare Faust baseline runs with the same broker,
    consumer and producer settings as the scorer.
    """
    return {
        "store": "memory://",
        "autodiscover": False,
        "datadir": str(settings.data_dir) if settings.data_dir else None,
        "web_enabled": True,
        "web_port": settings.web_port,
        "web_host": settings.web_host,
        "web_bind": settings.web_host,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "topic_allow_declare": True,
        "broker_session_timeout": settings.session_timeout,
        "broker_heartbeat_interval": max(0.5, settings.session_timeout / 6),
        "broker_rebalance_timeout": max(settings.session_timeout * 2, 10),
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "producer_linger_ms": 5,
        "broker_commit_interval": 1.0,
        "stream_wait_empty": False,
        "stream_processing_timeout": 120,
        "logging_config": None,
    }


class Scorer:
    """Everything a worker wires together: settings, model, Redis store, Faust app, metrics."""

    def __init__(
        self,
        settings: Settings,
        broker_url: str,
        redis: Redis,
        model: Model | None = None,
        metrics: Metrics | None = None,
        broker_credentials: Any = None,
    ) -> None:
        self.settings = settings
        self.model = model or load_model(settings.model)
        self.redis = redis
        self.keys = Keys(settings.topic_prefix)
        self.store = StateStore(
            redis, self.model, self.keys, settings.dedupe_horizon_seconds, require_init=True
        )
        self.metrics = metrics or Metrics()
        self.partitions = settings.partitions
        self._fixed_now = settings.fixed_clock()
        self._locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.last_sweep = 0.0
        self.app = faust.App(
            settings.group_id,
            broker=broker_url,
            broker_credentials=broker_credentials,
            **app_options(settings),
        )
        self.activity = self._topic("activity")
        self.signals = self._topic("signals")
        self.score_changes = self._topic("score-changes")
        self.dead_letters = self._topic("dead-letters")
        # ssi.activity is consumed in whole fetches by a service of the app, not a Faust agent
        # (see streams.ingest for why); everything else is Faust
        self.ingest = ActivityConsumer(
            self, bootstrap_servers(broker_url), credentials_to_aiokafka_auth(broker_credentials)
        )
        self.app.service(cast(Any, self.ingest))
        self.app.agent(self.signals, name="ssi.aggregate")(self._aggregate_agent)
        self.app.timer(settings.sweep_interval, name="ssi.decay")(self._decay_timer)
        self.app.timer(5.0, name="ssi.gauges")(self._gauges_timer)
        self._declared = asyncio.Lock()
        self._declared_done = False
        self.app.task(self.declare_topics)
        self.app.task(self._init_state)
        self.metrics.build.info({"version": "0.1.0", "model_version": self.model.model_version})
        self.sensor = ScorerSensor(self.metrics)
        self.app.sensors.add(self.sensor)

    def _topic(self, name: str) -> faust.TopicT:
        return self.app.topic(
            self.settings.topic(name),
            partitions=self.partitions,
            replicas=self.settings.replication_factor,
            key_serializer="raw",
            value_serializer="raw",
            internal=True,
        )

    async def declare_topics(self) -> None:
        """Create the topics with the configured partitions: Faust declares only the topics its
        agents consume, and a broker would auto-create the others with its own default
        partition count on first use (the ingest consumer waits for this)."""
        async with self._declared:
            if self._declared_done:
                return
            for topic in (self.activity, self.score_changes, self.dead_letters):
                await topic.maybe_declare()
            self._declared_done = True

    async def _init_state(self) -> None:
        """Mark the state store complete on a first start; refuse to when it was lost.

        Redis holding no state while `ssi.score-changes` already has records means Redis lost
        its data: scoring on would publish scores built from part of the window with versions
        starting again at 1, which subscribers keeping the highest version would ignore. The
        aggregate step refuses (`STATELOST`, retried) and /readyz says 503 until
        `ssi rebuild` restores the state and marks it complete.
        """
        await self.declare_topics()
        topic = self.settings.topic("score-changes")
        warned = False
        while True:
            try:
                if await self.store.initialized(self.partitions):
                    return
                if not await self._has_records(topic):
                    await self.store.mark_initialized(self.partitions)
                    log.info("state store initialised (no score changes published yet)")
                    return
                if not warned:
                    log.error(
                        "Redis holds no ssi state but %s has records: Redis lost its data. "
                        "Run `ssi rebuild`; this worker scores nothing until then.",
                        topic,
                    )
                    warned = True
            except Exception as exc:  # Redis or the broker away: try again
                log.warning("state check failed: %s", type(exc).__name__)
            await asyncio.sleep(5.0)

    async def _has_records(self, topic: str) -> bool:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.ingest.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            **self.ingest.auth,
        )
        await consumer.start()
        try:
            await consumer.topics()
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            if not tps:
                return False
            ends = await consumer.end_offsets(tps)
            return any(v > 0 for v in ends.values())
        finally:
            await consumer.stop()

    def now(self) -> datetime:
        return self._fixed_now or datetime.now(UTC)

    async def _timed(self, op: str, call: Awaitable[Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return await call
        except Exception:
            self.metrics.redis_errors.labels(op).inc()
            raise
        finally:
            self.metrics.redis.labels(op).observe(time.perf_counter() - t0)

    # ---------------------------------------------------------------- ingest

    async def ingest_batch(self, messages: Sequence[Any]) -> None:
        """Validate, dead-letter, dedupe and forward one batch of activity records.

        `messages` are aiokafka `ConsumerRecord`s (timestamps in milliseconds), in offset order
        per partition. Returns once every record sent for them is acknowledged by the broker.
        The three phases are separate so that `streams.ingest` can overlap one batch's broker
        round trips with the next batch's decoding and dedupe.
        """
        batch = self.decode_batch(messages)
        await self.screen_batch(batch)
        await self.deliver_batch(batch)

    def decode_batch(self, messages: Sequence[Any]) -> IngestBatch:
        """Phase 1 (CPU only): decode and validate; invalid records become dead letters."""
        batch = IngestBatch(messages, self.now(), time.perf_counter())
        model, now = self.model, batch.now
        for msg in messages:
            headers = _headers(msg.headers)
            try:
                event = decode_record(msg.value, headers, model, now)
            except InvalidEvent as exc:
                batch.outcomes["invalid", "rejected"] += 1
                batch.rejects.append((msg, headers, exc.code, exc.message))
                continue
            batch.valid.append((msg, event, headers))
        return batch

    async def screen_batch(self, batch: IngestBatch) -> None:
        """Phase 2: drop duplicates (one Redis round trip), then map events to signals."""
        valid = batch.valid
        codes = await self._timed(
            "dedupe",
            self.store.dedupe(
                [sighting(e, msg.partition, msg.offset) for msg, e, _ in valid],
                time.time(),
            ),
        )
        m = self.metrics
        per_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
        first_day = batch.now.date().toordinal() - self.model.window_days + 1
        outcomes = batch.outcomes
        for (msg, event, headers), code in zip(valid, codes, strict=True):
            if code == 2:
                outcomes[event.type, "duplicate"] += 1
                m.duplicates.labels("exact").inc()
                continue
            if code == 3:
                outcomes[event.type, "duplicate"] += 1
                m.duplicates.labels("conflicting").inc()
                batch.rejects.append(
                    (
                        msg,
                        headers,
                        "conflicting_duplicate",
                        f"an event with source {event.source!r} and id {event.id!r} was seen "
                        "before with different content; the first one counts",
                    )
                )
                continue
            outcomes[event.type, "accepted"] += 1
            if event.day < first_day:
                batch.late += 1
            if event.type == "connection.accepted" and event.data["requester_id"] != event.subject:
                batch.connections.append((event.subject, event.data["requester_id"]))
            ts = (msg.timestamp or 0) / 1000.0
            etime = event.time.timestamp()
            for q, delta in route_event(
                event, self.model, self.partitions, msg.partition, msg.offset
            ).items():
                wire = delta.to_wire()
                wire["id"] = event.id
                wire["t"] = etime
                wire["ts"] = ts
                per_partition[q].append(wire)
        batch.signals = {
            q: orjson.dumps({"v": SIGNALS_FORMAT, "events": items})
            for q, items in per_partition.items()
        }

    async def deliver_batch(self, batch: IngestBatch) -> None:
        """Phase 3: send the signals and dead letters and record the connections; return once
        the broker acknowledged every record (the caller then commits the batch's offsets)."""
        m = self.metrics
        sends: list[Awaitable[Any]] = [
            self._dead_letter(msg, headers, code, message)
            for msg, headers, code, message in batch.rejects
        ]
        sends += [
            self.signals.send(key=str(q).encode(), value=body, partition=q)
            for q, body in batch.signals.items()
        ]
        futures = await self._enqueue(sends)
        if batch.connections:
            futures.append(
                self._timed("graph", record_connections(self.redis, self.keys, batch.connections))
            )
        await asyncio.gather(*futures)  # the graph write overlaps the broker's acknowledgements
        for code in (r[2] for r in batch.rejects):
            m.dead_letters.labels(code).inc()
        for (kind, outcome), n in batch.outcomes.items():
            m.events.labels(kind, outcome).inc(n)
        if batch.late:
            m.late.inc(batch.late)
        m.batch_size.labels("ingest").observe(len(batch.records))
        m.processing.labels("ingest").observe(time.perf_counter() - batch.t0)

    async def _dead_letter(
        self, msg: Any, headers: list[tuple[str, bytes | None]], code: str, message: str
    ) -> Any:
        return await self.dead_letters.send(
            key=msg.key,
            value=msg.value,  # a null value (tombstone) stays null
            # Kafka headers may carry null values, which aiokafka sends as they are
            headers=cast(
                list[tuple[str, bytes]],
                dead_letter_headers(headers, code, message, msg.topic, msg.partition, msg.offset),
            ),
        )

    @staticmethod
    async def _enqueue(sends: Sequence[Awaitable[Any]]) -> list[Any]:
        """Hand every record to the producer, in order; returns their delivery futures."""
        futures: list[Any] = []
        try:
            for send in sends:
                futures.append(await send)
        except BaseException:
            for send in sends[len(futures) + 1 :]:  # never awaited: close them quietly
                if inspect.iscoroutine(send):
                    send.close()
            raise
        return futures

    # ------------------------------------------------------------- aggregate

    async def _aggregate_agent(self, stream: faust.StreamT) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            self.settings.batch_size, self.settings.batch_within
        ):
            # Faust acknowledges a batch once this returns, whatever happened: a batch that
            # fails (Redis away, state lost) is retried until it is done, never skipped.
            # Applying again is harmless (watermarks), and meanwhile the lag grows and alerts.
            messages = [e.message for e in events]
            failures = 0
            while True:
                try:
                    await self.aggregate_batch(messages)
                    break
                except Exception as exc:
                    delay = retry_delay(failures)
                    failures += 1
                    log.warning(
                        "aggregate batch of %d records failed (%s: %s); retrying in %.1f s",
                        len(messages),
                        type(exc).__name__,
                        str(exc)[:200],
                        delay,
                    )
                    await asyncio.sleep(delay)

    async def aggregate_batch(self, messages: Sequence[Any]) -> None:
        """Apply one batch of signals per partition, rescore, store, then publish changes.

        Partitions are independent (own keys, own lock), so they run concurrently: while Redis
        runs one partition's apply script, this process scores another partition's users.
        """
        t0 = time.perf_counter()
        now = self.now()
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for msg in messages:
            by_partition[msg.partition].append(msg)
        await asyncio.gather(
            *(self._aggregate_partition(p, msgs, now) for p, msgs in by_partition.items())
        )
        self.metrics.batch_size.labels("aggregate").observe(len(messages))
        self.metrics.processing.labels("aggregate").observe(time.perf_counter() - t0)

    async def _aggregate_partition(self, partition: int, msgs: list[Any], now: datetime) -> None:
        msgs.sort(key=lambda x: x.offset)
        deltas: list[EventDelta] = []
        event_ids: dict[str, list[str]] = defaultdict(list)
        origin: dict[str, tuple[float, float]] = {}
        signals = 0
        for msg in msgs:
            try:
                body = orjson.loads(msg.value)
            except (TypeError, ValueError):
                log.error("unreadable signals record at %s/%s", msg.partition, msg.offset)
                continue
            for ev in body.get("events", []):
                eid = ev["id"]
                when = (ev.get("t", 0.0), ev.get("ts", 0.0))
                users = ev["u"]
                for u in users:
                    event_ids[u[0]].append(eid)
                    origin[u[0]] = when
                signals += len(users)
                deltas.append(EventDelta(ev["p"], ev["o"], users))  # as received
        async with self._locks[partition]:
            outcome = await self._timed(
                "apply", process_batch(self.store, partition, deltas, now, event_ids)
            )
            self.metrics.signals.inc(signals if outcome.applied else 0)
            if outcome.replayed:
                self.metrics.duplicates.labels("replayed").inc(outcome.replayed)
            await self._record_benchmarks(outcome.changes, partition, outcome.users)
            # published under the lock: a decay sweep of this partition cannot slip a newer
            # version of a user in between
            await self._publish(outcome.changes, origin)

    async def _record_benchmarks(
        self,
        changes: Sequence[ScoreChange],
        partition: int,
        stored: dict[str, StoredUser] | None = None,
    ) -> None:
        """Latest scores into the industry / team / everyone sorted sets.

        `stored`: the changed users' states when the caller has them (else read from Redis).
        """
        if not changes:
            return
        if stored is None:
            stored = await self.store.load(partition, [c.user_id for c in changes])
        entries = []
        for c in changes:
            user = stored.get(c.user_id)
            prof = user.state.profile if user and user.state.profile else {}
            entries.append((c.user_id, c.score, prof.get("industry"), prof.get("team")))
        await self._timed("benchmarks", record_scores(self.redis, self.keys, entries))

    async def _publish(
        self, changes: Sequence[ScoreChange], origin: dict[str, tuple[float, float]] | None = None
    ) -> None:
        """Send score changes (keyed by user: Kafka's default partitioner places them) and wait
        until the broker has them all.

        They go straight to the Faust app's Kafka producer rather than through `Topic.send`,
        whose per-record bookkeeping (a `FutureMessage`, callbacks, sensors) cost more than
        scoring the user: a batch can publish thousands of changes.
        """
        if not changes:
            return
        emitted = datetime.now(UTC)
        producer = self.app.producer
        topic = self.settings.topic("score-changes")
        futures = []
        for c in changes:
            body = orjson.dumps(c.to_json(emitted))
            futures.append(await producer.send(topic, c.user_id.encode(), body, None, None, None))
        for fut in futures:
            await fut
        wall = time.time()
        m = self.metrics
        m.sent.labels(topic).inc(len(changes))
        by_cause = Counter(c.cause for c in changes)
        for cause, n in by_cause.items():
            m.changes.labels(cause).inc(n)
        for c in changes:
            m.published_score.observe(c.score)
            for pillar, points in c.pillars.items():
                m.published_pillar.labels(pillar).observe(points)
            if origin and c.user_id in origin:
                etime, ts = origin[c.user_id]
                if etime:
                    m.event_lag.observe(max(0.0, wall - etime))
                if ts:
                    m.e2e.observe(max(0.0, wall - ts))

    # ----------------------------------------------------------------- decay

    def owned_partitions(self) -> list[int]:
        """The `ssi.signals` partitions assigned to this worker."""
        name = self.settings.topic("signals")
        try:
            assignment = self.app.consumer.assignment()
        except Exception:  # not started or mid-rebalance
            return []
        return sorted(tp.partition for tp in assignment if tp.topic == name)

    async def _decay_timer(self) -> None:
        # An exception escaping a Faust timer crashes the worker: a Redis or broker outage only
        # postpones the sweep to the next tick (the due set keeps the users due).
        try:
            await self.sweep_once()
        except Exception as exc:
            log.warning("decay sweep failed (%s); retrying next tick", type(exc).__name__)

    async def sweep_once(self) -> int:
        """Rescore the due users of every owned partition (cause "decay")."""
        t0 = time.perf_counter()
        now = self.now()
        total_due = 0
        for partition in self.owned_partitions():
            async with self._locks[partition]:
                due, changes = await self._timed(
                    "sweep", sweep(self.store, partition, now, self.settings.sweep_limit)
                )
                if changes:
                    await self._record_benchmarks(changes, partition)
                    await self._publish(changes)
            total_due += due
        self.metrics.sweep_due.inc(total_due)
        self.metrics.sweep_duration.observe(time.perf_counter() - t0)
        self.last_sweep = time.time()
        self.metrics.sweep_last.set(self.last_sweep)
        return total_due

    async def _gauges_timer(self) -> None:
        try:
            self.metrics.users.set(await self.store.users_tracked(self.partitions))
        except Exception as exc:  # Redis down: readiness reports it
            log.warning("users_tracked gauge: %s", type(exc).__name__)
        counts: dict[str, int] = defaultdict(int)
        try:
            for tp in [*self.app.consumer.assignment(), *self.ingest.assignment()]:
                counts[tp.topic] += 1
        except Exception:
            pass
        for name in ("activity", "signals"):
            topic = self.settings.topic(name)
            self.metrics.assigned.labels(topic).set(counts.get(topic, 0))
        # consumer lag per partition, the benchmark gauges, and ssi_ready without a probe
        try:
            await self.sensor.refresh_offsets(
                self.app.consumer,
                [self.settings.topic("signals")],
                self.ingest.consumer,  # the aiokafka consumer of ssi.activity (or None)
            )
        except Exception as exc:  # not started, mid-rebalance, or broker away
            log.debug("consumer offsets gauges: %s", type(exc).__name__)
        try:
            await self.sensor.refresh_benchmarks(self.redis, self.keys)
        except Exception as exc:  # Redis down: readiness reports it
            log.warning("benchmark gauges: %s", type(exc).__name__)
        await self.is_ready()

    async def _redis_answers(self, timeout: float) -> str | None:
        """None when Redis answers PING within `timeout` seconds, else the error's name."""
        try:
            await asyncio.wait_for(self.redis.ping(), timeout)
        except Exception as exc:
            return type(exc).__name__
        return None

    async def _broker_answers(self, timeout: float) -> str | None:
        """None when the broker answers a metadata request within `timeout` seconds.

        The consumer keeps its assignment while the broker is frozen or partitioned away (until
        the group session expires, and Tansu expires nothing while it is stopped), so assignment
        alone says nothing about reachability. The round trip uses the producer's client, which
        carries the configured SASL / TLS settings and is needed for every send anyway.
        """
        try:
            producer = self.app.producer._ensure_producer()  # type: ignore[attr-defined]
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)
        except Exception as exc:
            return type(exc).__name__
        return None

    async def is_ready(self, timeout: float = 1.5) -> tuple[bool, dict[str, Any]]:
        """Broker reachable with partitions assigned, and Redis answering (for /readyz).

        Both probes run concurrently with short timeouts, so /readyz answers within about
        `timeout` seconds even when Redis or the broker is frozen.
        """
        checks: dict[str, Any] = {}
        redis_error, broker_error = await asyncio.gather(
            self._redis_answers(timeout), self._broker_answers(timeout)
        )
        checks["redis"] = redis_error is None
        if redis_error:
            checks["redis_error"] = redis_error
        else:
            try:
                checks["state"] = await asyncio.wait_for(
                    self.store.initialized(self.partitions), timeout
                )
            except Exception as exc:
                checks["state"] = False
                checks["state_error"] = type(exc).__name__
            if not checks["state"]:
                checks["redis"] = False
                checks.setdefault("state_error", "state missing: run ssi rebuild")
        try:
            assigned = len(self.app.consumer.assignment())
        except Exception:
            assigned = 0
        assigned += len(self.ingest.assignment())
        checks["assigned_partitions"] = assigned
        checks["rebalancing"] = bool(getattr(self.app, "rebalancing", False))
        if broker_error:
            checks["broker_error"] = broker_error
        checks["ingest_joined"] = self.ingest.joined
        broker_ok = (
            broker_error is None
            and assigned > 0
            and self.ingest.joined
            and not checks["rebalancing"]
        )
        checks["broker"] = broker_ok
        ready = bool(checks["redis"]) and broker_ok
        self.metrics.ready.set(1 if ready else 0)
        return ready, checks
