"""The ingest consumer: `ssi.activity` read in whole fetches, straight from aiokafka.

Why not a Faust agent: Faust's consumer hands records to agents one at a time. For every record
it builds a `Message` and an `Event`, runs the sensors and, in `Consumer._drain_messages`, awaits
`wait_first(callback(message), ...)`, which creates two asyncio tasks; the record then crosses a
queue to the agent's stream. That costs more per record than everything the scorer itself does
with an event (see "Throughput" in the README: a bare Faust agent that only counts records is the
baseline). `ssi.activity` is the one topic with a record per event, so its records are consumed
here in batches of up to `SSI_BATCH_SIZE`, with the same Kafka client Faust uses underneath.
`ssi.signals` (one record per destination partition and batch), the decay timer, the web API and
the metrics stay in the Faust app.

Delivery is at least once, as with the agent: a batch's signals and dead letters are
acknowledged by the broker before its offsets are committed; a batch that fails is sought back
and retried; a rebalance waits for the batch in flight. Replays are recognised downstream by the
dedupe store and the apply watermarks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from mode import Service

if TYPE_CHECKING:
    from streams.app import Scorer

log = logging.getLogger("ssi.ingest")

# Fetched batches in flight: while one waits for the broker's acknowledgements and its commit,
# the next is fetched, decoded and deduped (bench/throughput.py measures the difference).
PIPELINE_DEPTH = 2
RETRY_BACKOFF = (0.5, 1.0, 2.0, 5.0)  # seconds before retrying a failed batch, then stays at 5


def retry_delay(failures: int) -> float:
    """Seconds to wait before retrying a batch that has failed `failures` times before."""
    return RETRY_BACKOFF[min(failures, len(RETRY_BACKOFF) - 1)]


class _Abandoned(Exception):
    """A batch given up because an earlier one failed; both are fetched again."""


class _Batch:
    """A fetched batch in the ingest pipeline, and the task that finishes it."""

    __slots__ = ("fetched", "screened", "task")

    def __init__(
        self,
        fetched: dict[Any, list[Any]],
        run: Callable[[_Batch], Coroutine[Any, Any, None]],
    ) -> None:
        self.fetched = fetched
        self.screened = asyncio.Event()  # its dedupe is done (the next batch's may start)
        self.task: asyncio.Future[None] = asyncio.ensure_future(run(self))

    def ok(self) -> bool:
        t = self.task
        return t.done() and not t.cancelled() and t.exception() is None


class _Listener(ConsumerRebalanceListener):
    def __init__(self, owner: ActivityConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.owner.joined = False
        # Let the batch in flight finish and commit before the partitions move, so the next
        # owner starts where this one stopped (a timeout keeps a stuck batch from holding the
        # group; its records are then replayed, which the state store recognises).
        try:
            await asyncio.wait_for(self.owner.idle(), self.owner.revoke_wait)
        except TimeoutError:
            log.warning("rebalance: the batch in flight did not finish; it will be replayed")

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.owner.joined = True
        log.info("ingest: assigned %s", sorted(tp.partition for tp in assigned))


class ActivityConsumer(Service):
    """Consumes `ssi.activity` in batches and hands them to `Scorer.ingest_batch`."""

    def __init__(
        self,
        scorer: Scorer,
        bootstrap: list[str],
        auth: Mapping[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        s = scorer.settings
        self.scorer = scorer
        self.topic = s.topic("activity")
        self.group_id = s.group_id + "-ingest"
        self.batch_size = s.batch_size
        self.wait_ms = int(s.batch_within * 1000)
        self.revoke_wait = max(s.session_timeout, 5.0)
        self.bootstrap = bootstrap
        self.auth = dict(auth)  # aiokafka security settings (SASL / TLS)
        self._consumer: AIOKafkaConsumer | None = None
        self._inflight: deque[_Batch] = deque()  # fetched batches not settled yet, in order
        self._failures = 0  # consecutive failed attempts, for the retry delay
        self.joined = False  # in the group with an assignment (possibly empty), not rebalancing

    def _new_consumer(self) -> AIOKafkaConsumer:
        s = self.scorer.settings
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            client_id=f"{s.group_id}-ingest",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(max(0.5, s.session_timeout / 6) * 1000),
            rebalance_timeout_ms=int(max(s.session_timeout * 2, 10) * 1000),
            max_poll_records=self.batch_size,
            **self.auth,
        )

    async def on_start(self) -> None:
        await self.scorer.declare_topics()
        consumer = self._new_consumer()
        consumer.subscribe([self.topic], listener=_Listener(self))
        await consumer.start()
        self._consumer = consumer

    async def on_stop(self) -> None:
        await self.idle()
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The aiokafka consumer (None before start and after stop), for the offset gauges."""
        return self._consumer

    async def idle(self) -> None:
        """Return once no batch is in flight."""
        while True:
            pending = [b.task for b in self._inflight if not b.task.done()]
            if not pending:
                return
            await asyncio.wait(pending)

    def assignment(self) -> set[TopicPartition]:
        if self._consumer is None:
            return set()
        try:
            return set(self._consumer.assignment())
        except Exception:  # not subscribed yet, or stopping
            return set()

    @Service.task
    async def _consume(self) -> None:
        while not self.should_stop:
            consumer = self._consumer
            if consumer is None:
                await self.sleep(0.1)
                continue
            try:
                fetched = await consumer.getmany(
                    timeout_ms=self.wait_ms, max_records=self.batch_size
                )
            except ConsumerStoppedError:
                return
            except KafkaError as exc:
                log.warning("ingest fetch failed: %s", type(exc).__name__)
                await self.sleep(1.0)
                continue
            if fetched:
                self._start(consumer, fetched)
            # settle finished batches; wait for the oldest while the pipeline is full
            while self._inflight and (
                len(self._inflight) >= PIPELINE_DEPTH or self._inflight[0].task.done()
            ):
                await self._settle_oldest(consumer)

    def _start(self, consumer: AIOKafkaConsumer, fetched: dict[Any, list[Any]]) -> None:
        """Start the task that decodes and finishes a fetched batch; it overlaps the next fetch."""
        prev = self._inflight[-1] if self._inflight else None
        self._inflight.append(_Batch(fetched, lambda b: self._run(consumer, b, prev)))

    async def _run(self, consumer: AIOKafkaConsumer, batch: _Batch, prev: _Batch | None) -> None:
        """Decode → dedupe and route → (after the previous batch is done) send → commit.

        Dedupe runs in fetch order (first seen wins), and a batch's records are handed to the
        producer only once the previous batch is acknowledged and committed: the apply step's
        per-source watermarks need each source partition's events to reach `ssi.signals` in
        offset order, and a failed batch must not be overtaken by the next one.
        """
        try:
            work = self.scorer.decode_batch([r for recs in batch.fetched.values() for r in recs])
            if prev is not None:
                await prev.screened.wait()
            await self.scorer.screen_batch(work)
        finally:
            batch.screened.set()
        if prev is not None:
            await asyncio.wait([prev.task])  # not `await prev.task`: that would cancel it too
            if not prev.ok():
                raise _Abandoned("an earlier batch failed")
        await self.scorer.deliver_batch(work)
        await self._commit(consumer, batch.fetched)

    async def _settle_oldest(self, consumer: AIOKafkaConsumer) -> None:
        """Wait for the oldest batch; after a failure, replay it and everything fetched since."""
        batch = self._inflight[0]
        await asyncio.wait([batch.task])
        if batch.ok():
            self._inflight.popleft()
            self._failures = 0
            return
        await self.idle()  # later batches see the failure and stop before sending anything
        starts: dict[Any, int] = {}
        for b in self._inflight:  # oldest first: the first offset seen is where to resume
            for tp, recs in b.fetched.items():
                starts.setdefault(tp, recs[0].offset)
        records = sum(len(recs) for recs in batch.fetched.values())
        exc = batch.task.exception() if not batch.task.cancelled() else None
        delay = retry_delay(self._failures)
        self._failures += 1
        log.warning(
            "ingest batch of %d records failed (%s: %s); fetching it and the %d batches after "
            "it again in %.1f s",
            records,
            type(exc).__name__,
            exc,
            len(self._inflight) - 1,
            delay,
        )
        self._inflight.clear()
        owned = self.assignment()
        for tp, offset in starts.items():
            if tp in owned:  # nothing of these batches is committed: fetch them again
                consumer.seek(tp, offset)
        await self.sleep(delay)

    async def _commit(self, consumer: AIOKafkaConsumer, fetched: Mapping[Any, list[Any]]) -> None:
        owned = self.assignment()
        offsets = {
            tp: OffsetAndMetadata(recs[-1].offset + 1, "")
            for tp, recs in fetched.items()
            if tp in owned
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # rebalance or broker trouble: the next owner replays
            log.warning("ingest commit failed (%s); records will be replayed", type(exc).__name__)
