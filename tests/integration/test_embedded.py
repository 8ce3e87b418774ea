"""The embedded broker and Redis are real servers: Kafka and Redis clients work against them."""

from __future__ import annotations

import asyncio
import json
import os
from collections import defaultdict

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

from streams.embedded import (
    EmbeddedBroker,
    EmbeddedRedis,
    free_port,
    start_broker,
    start_redis,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# Low session timeout: with Tansu a member joins after about half of it.
GROUP_SETTINGS = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}


async def create_topic(bootstrap: str, name: str, partitions: int = 8) -> int:
    """Create a topic and return the partition count the broker reports for it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
        (described,) = await admin.describe_topics([name])
        return len(described["partitions"])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_servers_are_our_own_processes(broker: EmbeddedBroker, redis_server: EmbeddedRedis) -> None:
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    assert broker.url == f"kafka://127.0.0.1:{broker.port}"
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.port != 6379  # never the machine's own Redis
    assert alive(broker.pid) and alive(redis_server.pid)
    assert broker.running and not broker.frozen


async def test_round_trip_through_eight_partitions(
    broker: EmbeddedBroker, topic_prefix: str
) -> None:
    topic = topic_prefix + "activity"
    assert await create_topic(broker.bootstrap, topic, 8) == 8
    records = [
        (f"u{i % 20}".encode(), json.dumps({"user": f"u{i % 20}", "seq": i}).encode())
        for i in range(400)
    ]
    await produce(broker.bootstrap, topic, records)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=topic_prefix + "g",
        auto_offset_reset="earliest",
        **GROUP_SETTINGS,
    )
    await consumer.start()
    seen: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    try:
        async with asyncio.timeout(60):
            while sum(map(len, seen.values())) < len(records):
                for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                    for msg in msgs:
                        assert msg.key is not None and msg.value is not None
                        value = json.loads(msg.value)
                        assert msg.key.decode() == value["user"]
                        seen[value["user"]].append(value["seq"])
                        partitions[value["user"]].add(tp.partition)
        assert len(consumer.assignment()) == 8
    finally:
        await consumer.stop()

    assert len(seen) == 20
    for user, seqs in seen.items():
        assert seqs == sorted(seqs), f"{user}: order within a key must be kept"
        assert len(partitions[user]) == 1, f"{user}: one key, one partition"
    assert len({p for ps in partitions.values() for p in ps}) > 1  # spread over partitions


async def test_consumer_group_commits_and_resumes(
    broker: EmbeddedBroker, topic_prefix: str
) -> None:
    topic, group = topic_prefix + "signals", topic_prefix + "scorer"
    await create_topic(broker.bootstrap, topic, 8)
    records = [(f"u{i % 7}".encode(), b"%d" % i) for i in range(100)]
    await produce(broker.bootstrap, topic, records)

    def consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **GROUP_SETTINGS,
        )

    # First member: process some records, commit exactly those, leave.
    first: list[int] = []
    c1 = consumer()
    await c1.start()
    try:
        async with asyncio.timeout(60):
            while len(first) < 40:
                batch = await c1.getmany(timeout_ms=500, max_records=10)
                for tp, msgs in batch.items():
                    first += [int(m.value or b"") for m in msgs]
                    await c1.commit({tp: msgs[-1].offset + 1})
        committed = {tp: await c1.committed(tp) for tp in c1.assignment()}
    finally:
        await c1.stop()
    assert sum(o or 0 for o in committed.values()) == len(first)

    # Second member of the same group: resumes from the commits, nothing twice.
    rest: list[int] = []
    c2 = consumer()
    await c2.start()
    try:
        async with asyncio.timeout(60):
            while len(first) + len(rest) < len(records):
                for msgs in (await c2.getmany(timeout_ms=500)).values():
                    rest += [int(m.value or b"") for m in msgs]
    finally:
        await c2.stop()
    assert sorted(first + rest) == list(range(100))


async def test_redis_ping_set_get(redis_server: EmbeddedRedis, key_prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        assert await client.ping()
        await client.set(key_prefix + "k", b"v", ex=60)
        assert await client.get(key_prefix + "k") == b"v"
        info = await client.info("persistence")
        assert info["aof_enabled"] == 0
        assert await client.config_get("save") == {"save": ""}
    finally:
        await client.aclose()


async def test_broker_freeze_and_thaw(topic_prefix: str) -> None:
    # Its own broker: freezing the session one would stall other tests.
    with start_broker() as b:
        topic = topic_prefix + "x"
        await create_topic(b.bootstrap, topic, 1)
        b.freeze()
        assert b.frozen and b.running
        producer = AIOKafkaProducer(bootstrap_servers=b.bootstrap, request_timeout_ms=1000)
        # A stopped process still completes TCP handshakes (the kernel does) but answers
        # nothing, so a client fails by timeout, not by refusal.
        with pytest.raises((TimeoutError, KafkaConnectionError)):
            async with asyncio.timeout(2):
                await producer.start()
        await producer.stop()
        b.thaw()
        assert not b.frozen
        await produce(b.bootstrap, topic, [(b"k", b"after-thaw")])
        consumer = AIOKafkaConsumer(bootstrap_servers=b.bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            msg = await asyncio.wait_for(consumer.getone(), 10)
        finally:
            await consumer.stop()
        assert msg.value == b"after-thaw"


async def test_redis_freeze_and_thaw() -> None:
    with start_redis() as server:
        client = aioredis.Redis.from_url(server.url, socket_timeout=0.5)
        try:
            assert await client.ping()
            server.freeze()
            with pytest.raises(RedisTimeout):
                await client.ping()
            server.thaw()
            assert await client.ping()
        finally:
            await client.aclose()


async def test_restart_empty_gives_an_empty_server_on_the_same_port() -> None:
    with start_redis() as server:
        url, pid = server.url, server.pid
        client = aioredis.Redis.from_url(url)
        await client.set("survives?", b"1")
        await client.aclose()

        server.restart_empty()
        assert server.url == url and server.pid != pid
        assert not alive(pid)

        client = aioredis.Redis.from_url(url)
        try:
            assert await client.get("survives?") is None
            assert await client.dbsize() == 0
        finally:
            await client.aclose()


async def test_password_is_required_and_kept_secret() -> None:
    secret = 'p@ss "word"'
    with start_redis(password=secret) as server:
        assert secret not in server.url and secret not in repr(server)
        assert server.password == secret
        anonymous = aioredis.Redis.from_url(server.url)
        with pytest.raises((AuthenticationError, ResponseError)):
            await anonymous.set("k", b"v")
        await anonymous.aclose()
        client = aioredis.Redis.from_url(server.url, password=secret)
        try:
            assert await client.ping()
        finally:
            await client.aclose()


def test_stop_ends_the_process_and_close_removes_its_dir(broker: EmbeddedBroker) -> None:
    other = start_broker()  # runs next to the session broker: no shared ports
    assert other.port != broker.port
    pid, workdir = other.pid, other.workdir
    assert other.log_path.read_text().startswith("tansu broker")
    other.stop()
    assert not alive(pid) and not other.running
    assert workdir.exists()  # kept for a restart or a post-mortem
    other.close()
    assert not workdir.exists()
    other.stop()  # idempotent


def test_fixed_port_and_free_port() -> None:
    port = free_port()
    with start_redis(port=port) as server:
        assert server.port == port
        assert server.ping()
