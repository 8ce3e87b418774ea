"""Hostile input against a real worker (issue 6, bad input).

A corpus of broken records of many kinds, interleaved with a held-out stream of valid events,
goes to one worker process on the bundled broker and a real Redis. Then:

- the worker is still running and ready, and its log holds no traceback or crashed agent;
- every broken record is in the dead-letter topic exactly once, with the expected
  `ssi-error-code`, its original key, value and headers (first, unchanged), and source
  headers naming the topic, partition and offset the producer got back for it;
- nothing valid is dead-lettered, and `ssi_dead_letters_total` counts the same;
- the valid records around the broken ones are scored exactly: the latest score-change per
  user equals the independent model (tests/reference) on the valid records alone.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from scoring.errors import DEAD_LETTER_CODES
from tests.integration.worker_proc import WorkerProcess, consume_all, latest_by_version, worker_env
from tests.reference import heldout
from tests.reference import model as ref

pytestmark = pytest.mark.integration

SEED = 1  # heldout's second clock: now + 5 min is already tomorrow
NOW = heldout.now_for(SEED)
DAY = (NOW - timedelta(days=2)).strftime("%Y-%m-%d")
T = f"{DAY}T10:00:00Z"


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    kind: str = "valid"
    code: str | None = None  # expected dead-letter code; None: accepted (or an exact duplicate)
    partition: int = -1
    offset: int = -1


def event(type_: str, data: dict[str, Any], **over: Any) -> dict[str, Any]:
    ev = {
        "specversion": "1.0",
        "id": "bad-0",
        "source": "app://hostile",
        "type": type_,
        "time": T,
        "subject": "u001",
        "data": data,
    }
    ev.update(over)
    return ev


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def binary(type_: str = "post.published", **over: bytes | None) -> list[tuple[str, bytes]]:
    attrs: dict[str, bytes | None] = {
        "ce_specversion": b"1.0",
        "ce_id": b"bin-bad",
        "ce_source": b"app://hostile",
        "ce_type": type_.encode(),
        "ce_time": T.encode(),
        "ce_subject": b"u002",
    }
    attrs.update(over)
    return [(k, v) for k, v in attrs.items() if v is not None] + [("x-trace", b"t-1")]


POST = dumps({"post_id": "p1", "format": "text"})


def bad_corpus() -> list[Record]:
    """(kind, code) for every broken record; each gets a unique key so its dead letter is found."""
    good = event("post.commented", {"post_id": "p1", "author_id": "u003"})
    text = json.dumps(good)
    items: list[tuple[str, str, bytes | None, list[tuple[str, bytes]]]] = [
        ("invalid JSON: truncated", "invalid_json", text[:-1].encode(), []),
        ("invalid JSON: trailing comma", "invalid_json", (text[:-1] + ",}").encode(), []),
        ("invalid JSON: two objects", "invalid_json", (text + text).encode(), []),
        ("invalid JSON: single quotes", "invalid_json", b"{'specversion': '1.0'}", []),
        (
            "invalid UTF-8: lone continuation byte",
            "invalid_encoding",
            text.replace('"p1"', '"p\x01"').encode().replace(b"\x01", b"\x80"),
            [],
        ),
        (
            "invalid UTF-8: overlong encoding",
            "invalid_encoding",
            text.encode().replace(b"u003", b"u\xc0\xaf3"),
            [],
        ),
        (
            "invalid UTF-8: UTF-16 surrogate escape",
            "invalid_encoding",
            text.replace("u003", "\\ud800").encode(),
            [],
        ),
        ("empty value", "invalid_json", b"", []),
        ("whitespace-only value", "invalid_json", b" \n\t ", []),
        ("JSON not an object: array", "schema", b"[]", []),
        ("JSON not an object: number", "schema", b"42", []),
        ("JSON not an object: string", "schema", b'"post.published"', []),
        ("JSON not an object: null", "schema", b"null", []),
        (
            "deeply nested JSON (30,000 levels)",
            "invalid_json",
            text[:-1].encode() + b', "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
            [],
        ),
        (
            "NaN",
            "invalid_json",
            dumps(event("profile.updated", {})).replace(b"{}", b'{"skills_count": NaN}'),
            [],
        ),
        (
            "Infinity",
            "invalid_json",
            dumps(event("profile.updated", {})).replace(b"{}", b'{"experience_count": Infinity}'),
            [],
        ),
        (
            "-Infinity",
            "invalid_json",
            dumps(event("profile.updated", {})).replace(b"{}", b'{"featured_count": -Infinity}'),
            [],
        ),
        (
            "wrong type: bool as string",
            "schema",
            dumps(event("connection.requested", {"recipient_id": "u004", "personalized": "yes"})),
            [],
        ),
        (
            "wrong type: count negative",
            "schema",
            dumps(event("profile.updated", {"skills_count": -1})),
            [],
        ),
        (
            "wrong type: degree 2.0",
            "schema",
            dumps(event("profile.viewed", {"viewed_id": "u004", "degree": 2.0})),
            [],
        ),
        (
            "wrong type: id as list",
            "schema",
            dumps(
                event("post.reacted", {"post_id": "p1", "author_id": ["u004"], "reaction": "like"})
            ),
            [],
        ),
        ("wrong type: data is a list", "schema", dumps(event("post.published", [])), []),
        (
            "wrong type: specversion 1.0 as number",
            "schema",
            dumps(event("post.published", {"post_id": "p", "format": "text"}, specversion=1.0)),
            [],
        ),
        (
            "missing required field: data.post_id",
            "schema",
            dumps(event("post.published", {"format": "text"})),
            [],
        ),
        (
            "missing required envelope: subject",
            "schema",
            dumps({k: v for k, v in good.items() if k != "subject"}),
            [],
        ),
        (
            "missing required envelope: id",
            "schema",
            dumps({k: v for k, v in good.items() if k != "id"}),
            [],
        ),
        ("unknown type", "unknown_type", dumps(event("post.deleted", {"post_id": "p1"})), []),
        (
            "unknown type: case",
            "unknown_type",
            dumps(event("Post.Published", {"post_id": "p1", "format": "text"})),
            [],
        ),
        (
            "naive time",
            "invalid_time",
            dumps(event("search.performed", {"kind": "people"}, time=f"{DAY}T10:00:00")),
            [],
        ),
        (
            "malformed time: no colon in offset",
            "invalid_time",
            dumps(event("search.performed", {"kind": "people"}, time=f"{DAY}T10:00:00+0100")),
            [],
        ),
        (
            "malformed time: 25 o'clock",
            "invalid_time",
            dumps(event("search.performed", {"kind": "people"}, time=f"{DAY}T25:00:00Z")),
            [],
        ),
        (
            "malformed time: trailing newline",
            "invalid_time",
            dumps(event("search.performed", {"kind": "people"}, time=T + "\n")),
            [],
        ),
        (
            "malformed time: out of range in UTC",
            "invalid_time",
            dumps(event("search.performed", {"kind": "people"}, time="9999-12-31T23:00:00-12:00")),
            [],
        ),
        (
            "future time (clock + 6 min)",
            "future_time",
            dumps(
                event(
                    "search.performed",
                    {"kind": "people"},
                    time=heldout.rfc3339(NOW + timedelta(minutes=6)),
                )
            ),
            [],
        ),
        (
            "oversize (70 KB, otherwise valid)",
            "too_large",
            dumps(
                event("post.published", {"post_id": "p1", "format": "text", "pad": "z" * 70_000})
            ),
            [],
        ),
        (
            "oversize binary (headers + value)",
            "too_large",
            dumps({"post_id": "p1", "format": "text", "pad": "z" * 40_000}),
            binary(ce_source=b"s" * 30_000),
        ),
        ("binary: ce_time not UTF-8", "invalid_encoding", POST, binary(ce_time=b"\xff\xfe")),
        ("binary: ce_specversion 0.3", "schema", POST, binary(ce_specversion=b"0.3")),
        ("binary: ce_id missing", "schema", POST, binary(ce_id=None)),
        ("binary: ce_subject empty", "schema", POST, binary(ce_subject=b"")),
        (
            "binary: ce_subject null",
            "schema",
            POST,
            [*binary(ce_subject=None), ("ce_subject", None)],  # type: ignore[list-item]
        ),
        ("tombstone (null value)", "invalid_json", None, []),
        ("binary: ce_type unknown", "unknown_type", POST, binary("post.deleted")),
        ("binary: ce_time naive", "invalid_time", POST, binary(ce_time=T[:-1].encode())),
        ("binary: value not JSON", "invalid_json", b"post_id=p1", binary()),
        ("binary: value a JSON array", "schema", b"[1]", binary()),
        ("binary: no value for a non-snapshot type", "schema", b"", binary()),
    ]
    return [
        Record(f"bad-{n}".encode(), value, headers, kind, code)
        for n, (kind, code, value, headers) in enumerate(items)
    ]


def valid_records() -> tuple[list[Record], list[bytes]]:
    """Held-out valid events (keyed by actor), two in binary mode, one just under 64 KiB.

    Returns the records and their structured JSONL form for the reference model.
    """
    lines = [
        line.encode("utf-8", "surrogateescape")
        for line in heldout.generate(SEED, users=20, events=250, conflicting_duplicates=False)
    ]
    lines = [line for line in lines if line.strip()]
    _, rejected = ref.score_lines(list(lines), NOW)
    bad = {n for n, _ in rejected}
    valid = [line for n, line in enumerate(lines, 1) if n not in bad]
    records = [Record(json.loads(line)["subject"].encode(), line) for line in valid]
    # near the limit but under it: accepted (the unknown field is ignored)
    big = event(
        "post.published", {"post_id": "p-big", "format": "video"}, id="big-1", subject="u005"
    )
    big["data"]["pad"] = ""
    big["data"]["pad"] = "z" * (65536 - len(dumps(big)))
    assert len(dumps(big)) == 65536
    records.append(Record(b"u005", dumps(big)))
    valid.append(dumps(big))
    for n, (type_, data) in enumerate(
        [
            ("post.published", {"post_id": "p-bin", "format": "image"}),
            ("search.performed", {"kind": "people"}),
        ]
    ):
        ev = event(type_, data, id=f"bin-ok-{n}", subject="u006")
        headers = [(f"ce_{k}", str(v).encode()) for k, v in ev.items() if k != "data"]
        records.append(Record(b"u006", dumps(data), headers))
        valid.append(dumps(ev))
    return records, valid


def conflicting(records: list[Record], rng: random.Random) -> list[tuple[int, Record]]:
    """Same (source, id) as an earlier valid event, other content, same key (so the same
    partition, read after the original): the first one counts, the copy is dead-lettered."""
    out = []
    for i in rng.sample(range(len(records) // 2), 3):
        orig = records[i]
        if orig.headers:
            continue
        ev = json.loads(orig.value or b"")
        copy = dict(ev, type="search.performed", data={"kind": "people"})
        if copy == ev:
            continue
        out.append(
            (i, Record(orig.key, dumps(copy), [], "conflicting duplicate", "conflicting_duplicate"))
        )
    return out


def build_stream() -> tuple[list[Record], list[bytes]]:
    rng = random.Random(6)
    records, reference_lines = valid_records()
    # an exact copy of a valid event: skipped as a duplicate, not dead-lettered
    records.insert(
        len(records) // 2 + 1, Record(records[3].key, records[3].value, [], "exact duplicate")
    )
    stream: list[Record] = list(records)
    for i, dup in sorted(conflicting(records, rng), key=lambda x: -x[0]):
        stream.insert(i + 1 + rng.randrange(5), dup)
    for rec in bad_corpus():
        stream.insert(rng.randrange(len(stream) + 1), rec)
    return stream, reference_lines


async def produce_recording(bootstrap: str, topic: str, stream: list[Record]) -> None:
    """Produce in order and note where each record landed (for the source headers)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4_000_000)
    await producer.start()
    try:
        futs = [
            await producer.send(topic, r.value, key=r.key, headers=r.headers or None)
            for r in stream
        ]
        for rec, meta in zip(stream, await asyncio.gather(*futs), strict=True):
            rec.partition, rec.offset = meta.partition, meta.offset
    finally:
        await producer.stop()


async def consume_count(
    bootstrap: str, topic: str, n: int, limit: float = 60, extra: float = 2.0
) -> list[Any]:
    """Read a topic until `n` records arrived (or `limit` s), then `extra` s more for strays."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_bytes=8_000_000,
        max_partition_fetch_bytes=4_000_000,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        t_end = time.monotonic() + limit
        while time.monotonic() < t_end and len(out) < n:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(msgs)
        t_end = time.monotonic() + extra
        while time.monotonic() < t_end:
            for msgs in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(msgs)
    finally:
        await consumer.stop()
    return out


async def test_bad_input_is_dead_lettered_and_valid_input_scored_exactly(
    broker, redis_server, topic_prefix, tmp_path
) -> None:
    stream, reference_lines = build_stream()
    bad = [r for r in stream if r.code]
    kinds = {r.kind.split(":")[0] for r in bad}
    assert len(kinds) >= 12, sorted(kinds)
    env = worker_env(
        broker.url, redis_server.url, topic_prefix, tmp_path, SSI_CLOCK=heldout.now_text(SEED)
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    activity = topic_prefix + "activity"
    try:
        await produce_recording(broker.bootstrap, activity, stream)
        dead = await consume_count(broker.bootstrap, topic_prefix + "dead-letters", len(bad))
        changes = await consume_all(broker.bootstrap, topic_prefix + "score-changes", idle=4)

        # the worker survived all of it
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
        assert worker.get("/readyz")[0] == 200
        log = worker.log.read_text(errors="replace")
        assert not re.search(r"Traceback|crashed|Exception in|Error in", log), log[-4000:]

        # every bad record dead-lettered once, with its code, original record and source headers
        by_place = {(r.partition, r.offset): r for r in bad}
        seen: Counter[tuple[int, int]] = Counter()
        for d in dead:
            h = d.headers
            names = [k for k, _ in h]
            hd = dict(h)
            place = (int(hd["ssi-source-partition"]), int(hd["ssi-source-offset"]))
            assert place in by_place, (place, hd.get("ssi-error-code"), d.value[:200])
            rec = by_place[place]
            seen[place] += 1
            assert hd["ssi-error-code"].decode() == rec.code, (rec.kind, hd["ssi-error-message"])
            assert rec.code in DEAD_LETTER_CODES
            assert hd["ssi-source-topic"].decode() == activity
            assert hd["ssi-error-message"], rec.kind
            assert d.key == rec.key, rec.kind
            assert d.value == rec.value, rec.kind
            assert list(h[: len(rec.headers)]) == rec.headers, (
                rec.kind
            )  # originals first, unchanged
            assert names[len(rec.headers) :] == [
                "ssi-error-code",
                "ssi-error-message",
                "ssi-source-topic",
                "ssi-source-partition",
                "ssi-source-offset",
            ]
        missing = [r.kind for r in bad if seen[r.partition, r.offset] == 0]
        assert not missing, missing
        assert max(seen.values()) == 1

        # metrics agree per reason
        status, metrics = worker.get("/metrics")
        assert status == 200
        for code, n in Counter(r.code for r in bad).items():
            assert f'ssi_dead_letters_total{{reason="{code}"}} {float(n)}' in metrics, code

        # valid records around the bad ones are scored exactly
        expected, rejected = ref.score_lines(list(reference_lines), NOW)
        assert not rejected
        latest = latest_by_version(changes)
        assert set(latest) == set(expected)
        for user, exp in expected.items():
            got = latest[user]
            assert got["score"] == pytest.approx(exp["score"], abs=0.01), user
            for pillar, value in exp["pillars"].items():
                assert got["pillars"][pillar] == pytest.approx(value, abs=0.01), (user, pillar)
        print(
            f"\nbad-input corpus: {len(kinds)} kinds, {len(bad)} bad records, "
            f"{len(stream) - len(bad)} valid records, {len(expected)} users"
        )
    finally:
        worker.stop()
