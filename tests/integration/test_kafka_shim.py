"""The kafka shim (tests/integration/kafka_shim.py) lets kcat talk to Tansu; nothing else changes.

Why it exists: kcat's librdkafka 2.0.2 cannot skip the default-valued tagged fields that Tansu
0.6 puts at the end of its ApiVersions v3 answer ("Read underflow"); the shim re-encodes that
one answer without them.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.embedded import EmbeddedBroker
from tests.integration.kafka_shim import strip_api_versions_tags
from tests.integration.worker_proc import (
    KcatError,
    ShimmedBroker,
    consume_all,
    kcat_produce,
    run_kcat,
)

# The end of Tansu 0.6's ApiVersions v3 body: throttle_time_ms 0, then 4 tagged fields, all
# defaults: SupportedFeatures (empty), FinalizedFeaturesEpoch (-1), FinalizedFeatures
# (empty), ZkMigrationReady (false).
TANSU_TAIL = bytes.fromhex("00000000 04 00 01 01 01 08 ffffffffffffffff 02 01 01 03 01 00")


def api_versions_body(entries: list[tuple[int, int, int]], tail: bytes) -> bytes:
    """error_code 0, the compact array of (key, min, max) without entry tags, then ``tail``."""
    out = struct.pack(">hB", 0, len(entries) + 1)
    for key, low, high in entries:
        out += struct.pack(">hhh", key, low, high) + b"\x00"
    return out + tail


def test_strip_drops_the_trailing_tagged_fields() -> None:
    entries = [(0, 0, 9), (3, 0, 12), (18, 0, 3)]
    body, dropped = strip_api_versions_tags(api_versions_body(entries, TANSU_TAIL))
    assert dropped == 4
    assert body == api_versions_body(entries, b"\x00\x00\x00\x00" + b"\x00")
    # an answer without tagged fields is left as it is
    assert strip_api_versions_tags(body) == (body, 0)


def test_strip_drops_entry_tags_and_refuses_what_does_not_parse() -> None:
    tagged_entry = struct.pack(">hBhhh", 0, 2, 18, 0, 3) + bytes.fromhex("01 05 02 abcd")
    body, dropped = strip_api_versions_tags(tagged_entry + b"\x00\x00\x00\x07\x00")
    assert (body, dropped) == (struct.pack(">hBhhhBiB", 0, 2, 18, 0, 3, 0, 7, 0), 1)
    good = api_versions_body([(18, 0, 3)], TANSU_TAIL)
    with pytest.raises(ValueError):
        strip_api_versions_tags(good[:-1])  # truncated
    with pytest.raises(ValueError):
        strip_api_versions_tags(good + b"\x00")  # trailing bytes


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_kcat_cannot_talk_to_tansu_directly(broker: EmbeddedBroker, kcat: str) -> None:
    """The reason for the shim: without it kcat fails at its first request."""
    with pytest.raises(KcatError, match="Read underflow"):
        run_kcat(["-L", "-b", broker.bootstrap, "-m", "5"], timeout=60)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_kcat_lists_the_broker_through_the_shim(shimmed_broker: ShimmedBroker, kcat: str) -> None:
    meta = json.loads(run_kcat(["-L", "-J", "-b", shimmed_broker.bootstrap, "-m", "10"]))
    # Tansu names itself at the shim's port, so kcat's next connections go through it too
    assert [b["name"] for b in meta["brokers"]] == [shimmed_broker.bootstrap]
    assert "ApiVersions v3 answer: dropped" in shimmed_broker.shim.tail()


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_kcat_records_read_back_exactly_with_aiokafka(
    shimmed_broker: ShimmedBroker, kcat: str, topic_prefix: str, tmp_path: Path
) -> None:
    bootstrap = shimmed_broker.bootstrap
    topic = topic_prefix + "kcat"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:  # one partition: the read-back order is the produce order
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    records = [
        (f"user-{n % 7}".encode(), json.dumps({"n": n, "text": "héllo\tworld"}).encode())
        for n in range(200)
    ]
    records[100] = (b"big", b"x" * 300_000)  # frames longer than one socket read
    headers = [("ce_type", "post.published"), ("trace-id", "a=b c"), ("utf8", "héllo")]
    kcat_produce(bootstrap, topic, records, tmp_path, headers=headers)

    got = await consume_all(bootstrap, topic, idle=2)
    assert [(r.key, r.value) for r in got] == records
    want_headers = [(name, text.encode()) for name, text in headers]
    assert all(list(r.headers) == want_headers for r in got)
