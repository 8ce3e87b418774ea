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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from mode import Service

if TYPE_CHECKING:
    from streams.app import Scorer

log = logging.getLogger("ssi.ingest")

RETRY_BACKOFF = (0.5, 1.0, 2.0, 5.0)  # seconds before retrying a failed batch, then stays at 5


def retry_delay(failures: int) -> float:
    """Seconds to wait before retrying a batch that has failed `failures` times before."""
    return RETRY_BACKOFF[min(failures, len(RETRY_BACKOFF) - 1)]


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
        self._busy = asyncio.Lock()
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
        if self._consumer is not None:
            async with self._busy:
                consumer, self._consumer = self._consumer, None
            await consumer.stop()

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The aiokafka consumer (None before start and after stop), for the offset gauges."""
        return self._consumer

    async def idle(self) -> None:
        """Return once no batch is in flight."""
        async with self._busy:
            return

    def assignment(self) -> set[TopicPartition]:
        if self._consumer is None:
            return set()
        try:
            return set(self._consumer.assignment())
        except Exception:  # not subscribed yet, or stopping
            return set()

    @Service.task
    async def _consume(self) -> None:
        failures = 0
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
            if not fetched:
                continue
            records = [r for recs in fetched.values() for r in recs]
            async with self._busy:
                try:
                    await self.scorer.ingest_batch(records)
                except Exception as exc:
                    # nothing of this batch is committed: seek back and retry it
                    delay = retry_delay(failures)
                    failures += 1
                    log.warning(
                        "ingest batch of %d records failed (%s: %s); retrying in %.1f s",
                        len(records),
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    owned = self.assignment()
                    for tp, recs in fetched.items():
                        if tp in owned:
                            consumer.seek(tp, recs[0].offset)
                    await self.sleep(delay)
                    continue
                failures = 0
                await self._commit(consumer, fetched)

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
