"""`ssi rebuild`: rebuild Redis state from the retained activity topic.

Run it with the workers stopped. It reads `<prefix>activity` from the beginning to its current
end, applies every valid event through the same dedupe → route → apply path the stream uses,
restores each user's last published version from `<prefix>score-changes` (so versions keep
rising for subscribers), then rescores everyone and publishes only real differences.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from scoring.errors import InvalidEvent
from scoring.model import PILLARS
from state.codec import EventDelta, published_string, route_event, sighting
from state.pipeline import rescore_and_commit
from streams.app import _headers, decode_record
from streams.config import Settings
from streams.produce import bootstrap_of

BATCH = 2000


async def _read_all(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # refreshes cluster metadata
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10000)
            for tp, msgs in batch.items():
                out.extend(msgs)
                if msgs and msgs[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


async def rebuild(settings: Settings, broker_url: str, redis_url: str) -> dict[str, int]:
    from streams.app import Scorer
    from streams.worker import redis_client

    bootstrap = bootstrap_of(broker_url)
    redis = redis_client(settings, redis_url)
    scorer = Scorer(settings, "kafka://" + bootstrap, redis)
    store, model = scorer.store, scorer.model
    store.require_init = False  # rebuilding is what makes the state complete again
    now = scorer.now()
    records = await _read_all(bootstrap, settings.topic("activity"))
    records.sort(key=lambda m: (m.partition, m.offset))
    per_partition: dict[int, list[EventDelta]] = defaultdict(list)
    stats = {"records": len(records), "accepted": 0, "rejected": 0, "duplicates": 0}
    valid = []
    for msg in records:
        try:
            event = decode_record(msg.value, _headers(msg.headers), model, now)
        except InvalidEvent:
            stats["rejected"] += 1
            continue
        valid.append((msg, event))
    for i in range(0, len(valid), BATCH):
        chunk = valid[i : i + BATCH]
        codes = await store.dedupe(
            [sighting(e, m.partition, m.offset) for m, e in chunk],
            time.time(),
        )
        for (m, e), code in zip(chunk, codes, strict=True):
            if code >= 2:
                stats["duplicates"] += 1
                continue
            stats["accepted"] += 1
            for q, delta in route_event(
                e, model, settings.partitions, m.partition, m.offset
            ).items():
                per_partition[q].append(delta)
    # restore the last published version and score per user from the score-change topic
    published: dict[str, dict[str, Any]] = {}
    for msg in await _read_all(bootstrap, settings.topic("score-changes")):
        try:
            v = json.loads(msg.value)
        except (TypeError, ValueError):
            continue
        cur = published.get(v.get("user_id"))
        if cur is None or v["version"] >= cur["version"]:
            published[v["user_id"]] = v
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    changed = 0
    try:
        for q, deltas in sorted(per_partition.items()):
            users: set[str] = set()
            for i in range(0, len(deltas), BATCH):
                # apply only: scores are computed once at the end, after versions are restored
                res = await store.apply(q, deltas[i : i + BATCH], now)
                users.update(res.users)
            async with redis.pipeline(transaction=False) as pipe:
                for u in users:
                    last = published.get(u)
                    if last is not None:
                        pillars = {p: last["pillars"][p] for p in PILLARS}
                        s = published_string(last["score"], pillars)
                        pipe.hset(store.keys.user(q, u), mapping={"v": last["version"], "s": s})
                await pipe.execute()
            loaded = await store.load(q, users)
            changes, _ = await rescore_and_commit(store, q, loaded, now, "rescore")
            await scorer._record_benchmarks(changes, q, loaded)
            emitted = time.time()
            for c in changes:
                body = json.dumps(c.to_json(datetime.fromtimestamp(emitted, UTC)))
                await producer.send(
                    settings.topic("score-changes"), body.encode(), key=c.user_id.encode()
                )
            changed += len(changes)
        await producer.flush()
        # the state is complete again: workers waiting on STATELOST resume
        await store.mark_initialized(settings.partitions)
    finally:
        await producer.stop()
        await redis.aclose()
    stats["users"] = sum(len({u[0] for d in ds for u in d.users}) for ds in per_partition.values())
    stats["published"] = changed
    return stats


def run_rebuild() -> int:
    settings = Settings()
    if settings.embedded_broker or settings.embedded_redis:
        print(
            "ssi rebuild: set SSI_BROKER_URL and SSI_REDIS_URL to the broker and Redis to "
            "rebuild (an embedded stack starts empty: there is nothing to rebuild)",
            file=sys.stderr,
        )
        return 2
    stats = asyncio.run(
        rebuild(settings, settings.broker_url, settings.redis_url.get_secret_value())
    )
    print("ssi rebuild: " + ", ".join(f"{k} {v}" for k, v in stats.items()), file=sys.stderr)
    return 0
