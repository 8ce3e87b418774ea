"""Fuzzing the decoder (hypothesis): whatever arrives, the result is a valid `Event` or an
`InvalidEvent` with a known reason code -- never any other exception, which would crash the
ingest agent (`streams.app.decode_record` is what it calls on every record).

Inputs: random bytes and text, random JSON values, valid events with one mutation (a field
dropped, replaced by a random JSON value, or a string cut, padded or garbled), random
binary-mode headers, and the edges of the time format. Fixed regressions found this way sit at
the end of the file.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from scoring.errors import REASON_CODES, InvalidEvent
from scoring.events import Event, parse_binary, parse_structured, parse_time
from scoring.model import load_model
from streams.app import _headers, decode_record

MODEL = load_model()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
T = "2026-11-20T10:15:00Z"

FUZZ = settings(
    # SSI_FUZZ_EXAMPLES=20000 for a deep run; CI's default keeps the file at a few seconds
    max_examples=int(os.environ.get("SSI_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID: list[tuple[str, dict[str, Any]]] = [
    ("profile.updated", {"photo": True, "skills_count": 7, "industry": "software"}),
    ("post.published", {"post_id": "p9", "format": "article"}),
    ("post.reacted", {"post_id": "p9", "author_id": "u7", "reaction": "like"}),
    ("post.commented", {"post_id": "p9", "author_id": "u7"}),
    ("post.shared", {"post_id": "p9", "author_id": "u7"}),
    ("connection.requested", {"recipient_id": "u7", "personalized": True}),
    ("connection.accepted", {"requester_id": "u7", "requester_seniority": "vp"}),
    ("connection.declined", {"requester_id": "u7"}),
    ("inmail.sent", {"recipient_id": "u7"}),
    ("inmail.replied", {"sender_id": "u7"}),
    ("message.sent", {"recipient_id": "u7"}),
    ("profile.viewed", {"viewed_id": "u7", "degree": 2}),
    ("search.performed", {"kind": "people"}),
    ("lead.saved", {"lead_id": "l3", "kind": "account"}),
    ("group.joined", {"group_id": "g1"}),
    ("group.posted", {"group_id": "g1"}),
    ("endorsement.given", {"recipient_id": "u7", "skill": "Negotiation"}),
    ("follow.started", {"followee_id": "u7"}),
]


def envelope(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "app://crm",
        "type": type_,
        "time": T,
        "subject": "u42",
        "data": dict(data),
    }


def check_event(ev: Event) -> None:
    """What the rest of the pipeline relies on from an accepted event."""
    assert isinstance(ev, Event)
    for text in (ev.id, ev.source, ev.type, ev.subject):
        assert isinstance(text, str) and text
        text.encode("utf-8")  # keys and Redis fields are UTF-8: no lone surrogates
    assert ev.time.tzinfo is not None and ev.time.utcoffset() == timedelta(0)
    assert ev.time <= NOW + timedelta(seconds=MODEL.future_tolerance_seconds)
    assert ev.type in MODEL.events
    json.dumps(dict(ev.data), allow_nan=False).encode("utf-8")  # re-serialisable, no NaN


def note(what: str) -> None:
    """Tally an outcome for --hypothesis-show-statistics (only inside a hypothesis test)."""
    if currently_in_test_context():
        event(what)


def outcome(call: Any, *args: Any) -> str:
    """Run one decoder call: "ok" or the rejection code; any other exception fails the test."""
    try:
        ev = call(*args)
    except InvalidEvent as exc:
        assert exc.code in REASON_CODES, exc.code
        note(exc.code)  # --hypothesis-show-statistics shows the spread of outcomes
        return exc.code
    check_event(ev)
    note("ok")
    return "ok"


# ------------------------------------------------------------------------------- strategies

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# strings a mutation may put where a valid string was: cut, padded, odd characters
odd_strings = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\ud800",
            "\udfff",
            "x" * 257,
            "9999-12-31T23:59:59-12:00",
            "0001-01-01T00:00:00+14:00",
            "2026-11-20T10:15:00Z\n",
            "2026-11-20T10:15:00.1234567890Z",
            "2026-02-29T00:00:00Z",
            "NaN",
            "{",
        ]
    ),
)


@st.composite
def mutated_event(draw: st.DrawFn) -> dict[str, Any]:
    type_, data = draw(st.sampled_from(VALID))
    ev = envelope(type_, data)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["envelope", "data"]))
        target = ev if where == "envelope" or not isinstance(ev.get("data"), dict) else ev["data"]
        keys = sorted(target) or ["x"]
        key = draw(st.sampled_from([*keys, "extra"]))
        how = draw(st.sampled_from(["drop", "value", "string"]))
        if how == "drop":
            target.pop(key, None)
        elif how == "value":
            target[key] = draw(json_values)
        else:
            target[key] = draw(odd_strings)
    return ev


def dump_any(ev: Any) -> bytes:
    """JSON text of a value that may hold lone surrogates (as JSON escapes), ints of any size."""
    return json.dumps(ev).encode("ascii")


header_names = st.one_of(
    st.sampled_from(
        [
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_subject",
            "ce_data",
            "CE_TYPE",
            "ce_",
            "content-type",
        ]
    ),
    st.text(max_size=12),
)
header_values = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"1.0", b"post.published", T.encode(), b"u42", b"app://x", b"\xff\xfe"]),
    odd_strings.map(lambda s: s.encode("utf-8", "surrogatepass")),
)
headers_strategy = st.lists(st.tuples(header_names, header_values), max_size=10)


POST_DATA = b'{"post_id": "p1", "format": "text"}'


def binary_headers(type_: str, time: str = T) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"bin-1"),
        ("ce_source", b"app://test"),
        ("ce_type", type_.encode()),
        ("ce_time", time.encode()),
        ("ce_subject", b"alice"),
    ]


# ----------------------------------------------------------------------------------- fuzzing


@FUZZ
@given(st.binary(max_size=300))
@example(b"")
@example(b"\xff")
@example(b"[" * 100_000)
@example(b'{"a":' * 30_000 + b"1" + b"}" * 30_000)
@example(b'"\\ud800"')
@example(b"NaN")
@example(b"-Infinity")
@example(b"1e999")
@example(b"\xef\xbb\xbf{}")  # a UTF-8 byte order mark
def test_random_bytes(raw: bytes) -> None:
    code = outcome(parse_structured, raw, MODEL, NOW)
    assert code != "ok"  # random bytes are never a whole CloudEvent
    assert outcome(decode_record, raw, [], MODEL, NOW) == code


@FUZZ
@given(st.text(max_size=200))
@example("\ud800")
@example('{"id": "\udfff"}')
def test_random_text(text: str) -> None:
    assert outcome(parse_structured, text, MODEL, NOW) != "ok"


@FUZZ
@given(json_values)
def test_random_json_values(value: Any) -> None:
    raw = json.dumps(value).encode()
    assert outcome(parse_structured, raw, MODEL, NOW) != "ok"
    assert outcome(parse_binary, binary_headers("post.published"), raw, MODEL, NOW) in (
        "ok",
        "schema",
    )


@FUZZ
@given(mutated_event())
def test_mutated_events(ev: dict[str, Any]) -> None:
    raw = dump_any(ev)
    code = outcome(parse_structured, raw, MODEL, NOW)
    assert outcome(decode_record, raw, [], MODEL, NOW) == code
    # the same event in binary mode: the attributes as headers, `data` as the value
    headers = [
        (f"ce_{k}", json.dumps(v).strip('"').encode("utf-8", "surrogatepass"))
        for k, v in ev.items()
        if k != "data"
    ]
    value = dump_any(ev["data"]) if "data" in ev else b""
    outcome(parse_binary, headers, value, MODEL, NOW)
    outcome(decode_record, value, headers, MODEL, NOW)


@FUZZ
@given(headers_strategy, st.one_of(st.none(), st.binary(max_size=60), json_values.map(dump_any)))
def test_random_headers(headers: list[tuple[str, bytes]], value: bytes | None) -> None:
    outcome(decode_record, value, headers, MODEL, NOW)
    outcome(decode_record, value, [("ce_specversion", b"1.0"), *headers], MODEL, NOW)
    outcome(parse_binary, [*binary_headers("post.commented"), *headers], value, MODEL, NOW)


@FUZZ
@given(
    st.integers(0, 10_000),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 60),
    st.sampled_from(["Z", "z", "+00:00", "-12:00", "+14:00", "+23:59", "-23:59", "+24:00", ""]),
)
def test_time_edges(y: int, mo: int, d: int, h: int, mi: int, s: int, off: str) -> None:
    text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{off}"
    try:
        t = parse_time(text)
    except InvalidEvent as exc:
        assert exc.code == "invalid_time"
        return
    assert t.tzinfo is not None and t.utcoffset() == timedelta(0)
    ev = envelope("search.performed", {"kind": "people"}) | {"time": text}
    assert outcome(parse_structured, dump_any(ev), MODEL, NOW) in ("ok", "future_time")


# ------------------------------------------------------------------------------- regressions


@pytest.mark.parametrize(
    "time",
    [
        "9999-12-31T23:00:00-12:00",  # beyond datetime.max once in UTC: was OverflowError
        "0001-01-01T00:30:00+14:00",  # before datetime.min once in UTC: was OverflowError
    ],
)
def test_time_out_of_range_in_utc_is_invalid_time(time: str) -> None:
    ev = envelope("search.performed", {"kind": "people"}) | {"time": time}
    assert outcome(parse_structured, dump_any(ev), MODEL, NOW) == "invalid_time"
    assert outcome(
        parse_binary, binary_headers("group.joined", time), b'{"group_id":"g"}', MODEL, NOW
    ) == ("invalid_time")


@pytest.mark.parametrize("time", [T + "\n", T + "\r\n"])
def test_time_with_trailing_newline_is_invalid_time(time: str) -> None:
    # `$` matched before a final newline, so "...Z\n" was accepted as a valid time
    with pytest.raises(InvalidEvent) as info:
        parse_time(time)
    assert info.value.code == "invalid_time"


def test_text_with_lone_surrogate_is_invalid_encoding() -> None:
    # a `str` record (score-file) may hold a raw lone surrogate, not only a `\ud800` escape
    raw = json.dumps(
        envelope("post.published", {"post_id": "p\ud800", "format": "text"}), ensure_ascii=False
    )
    assert outcome(parse_structured, raw, MODEL, NOW) == "invalid_encoding"


def test_nan_and_infinity_are_invalid_json() -> None:
    for const in ("NaN", "Infinity", "-Infinity"):
        raw = dump_any(envelope("profile.updated", {})).replace(
            b"{}", b'{"skills_count": ' + const.encode() + b"}"
        )
        assert outcome(parse_structured, raw, MODEL, NOW) == "invalid_json"


def test_null_header_value_is_not_the_text_none() -> None:
    headers = [*binary_headers("post.published"), ("ce_subject", None)]
    headers = [(k, v) for k, v in headers if not (k == "ce_subject" and v == b"alice")]
    assert outcome(decode_record, POST_DATA, _headers(headers), MODEL, NOW) == "schema"
