"""Event validation (DESIGN 3.2): every event type accepted, every bad record rejected by code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scoring.errors import REASON_CODES, InvalidEvent
from scoring.events import is_binary_mode, parse_binary, parse_structured, parse_time
from scoring.model import load_model

MODEL = load_model()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
T = "2026-11-20T10:15:00Z"


def envelope(type_: str, data: Any = None, **overrides: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "app://crm",
        "type": type_,
        "time": T,
        "subject": "u42",
    }
    if data is not None:
        env["data"] = data
    env.update(overrides)
    return env


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def rejected(raw: bytes | str, now: datetime | None = NOW) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        parse_structured(raw, MODEL, now)
    return info.value


# --------------------------------------------------------------------------------- valid events

VALID = [
    (
        "profile.updated",
        {
            "photo": True,
            "headline": True,
            "summary": False,
            "experience_count": 3,
            "skills_count": 12,
            "featured_count": 0,
            "recommendations_count": 1,
            "industry": "software",
            "seniority": "vp",
            "team": "emea",
            "company": "acme",
        },
    ),
    ("profile.updated", {}),
    ("post.published", {"post_id": "p1", "format": "text"}),
    ("post.published", {"post_id": "p2", "format": "article"}),
    ("post.published", {"post_id": "p3", "format": "image"}),
    ("post.published", {"post_id": "p4", "format": "video"}),
    ("post.published", {"post_id": "p5", "format": "document"}),
    ("post.published", {"post_id": "p6", "format": "poll"}),
    ("post.reacted", {"post_id": "p9", "author_id": "u7", "reaction": "like"}),
    ("post.commented", {"post_id": "p9", "author_id": "u7"}),
    ("post.shared", {"post_id": "p9", "author_id": "u7"}),
    ("connection.requested", {"recipient_id": "u7", "personalized": True}),
    ("connection.requested", {"recipient_id": "u7", "personalized": False}),
    ("connection.accepted", {"requester_id": "u7"}),
    (
        "connection.accepted",
        {"requester_id": "u7", "requester_seniority": "cxo", "acceptor_seniority": "entry"},
    ),
    ("connection.declined", {"requester_id": "u7"}),
    ("inmail.sent", {"recipient_id": "u7"}),
    ("inmail.replied", {"sender_id": "u7"}),
    ("message.sent", {"recipient_id": "u7"}),
    ("profile.viewed", {"viewed_id": "u7", "degree": 1}),
    ("profile.viewed", {"viewed_id": "u7", "degree": 2}),
    ("profile.viewed", {"viewed_id": "u7", "degree": 3}),
    ("profile.viewed", {"viewed_id": "u7", "degree": "out"}),
    ("profile.viewed", {"viewed_id": "u7", "degree": "2"}),
    ("search.performed", {"kind": "people"}),
    ("search.performed", {"kind": "company"}),
    ("search.performed", {"kind": "content"}),
    ("lead.saved", {"lead_id": "l1", "kind": "lead"}),
    ("lead.saved", {"lead_id": "a1", "kind": "account"}),
    ("group.joined", {"group_id": "g1"}),
    ("group.posted", {"group_id": "g1"}),
    ("endorsement.given", {"recipient_id": "u7", "skill": "negotiation"}),
    ("follow.started", {"followee_id": "u7"}),
]


@pytest.mark.parametrize(("type_", "data"), VALID)
def test_valid_event_is_accepted_structured(type_: str, data: dict[str, Any]) -> None:
    event = parse_structured(dumps(envelope(type_, data)), MODEL, NOW)
    assert (event.type, event.subject, event.key) == (type_, "u42", ("app://crm", "evt-1"))
    assert event.time == datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
    expected = {k: (str(v) if k == "degree" else v) for k, v in data.items()}
    assert dict(event.data) == expected


def test_every_catalogue_type_has_a_valid_example() -> None:
    assert {t for t, _ in VALID} == set(MODEL.events)


@pytest.mark.parametrize(("type_", "data"), VALID)
def test_valid_event_is_accepted_from_str(type_: str, data: dict[str, Any]) -> None:
    assert parse_structured(json.dumps(envelope(type_, data)), MODEL, NOW).type == type_


def test_unknown_extra_fields_are_ignored() -> None:
    env = envelope(
        "post.commented",
        {"post_id": "p9", "author_id": "u7", "mood": "happy", "nested": {"a": [1, 2]}},
    )
    env["datacontenttype"] = "application/json"
    env["x-tenant"] = 17
    event = parse_structured(dumps(env), MODEL, NOW)
    assert dict(event.data) == {"post_id": "p9", "author_id": "u7"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(None, {}, id="no-data-at-all"),
        pytest.param({}, {}, id="empty-data"),
        pytest.param({"photo": True}, {"photo": True}, id="photo-only"),
        pytest.param(
            {"skills_count": 0, "headline": False},
            {"skills_count": 0, "headline": False},
            id="explicit-false-and-zero",
        ),
        pytest.param(
            {"industry": "banking", "team": "t1"},
            {"industry": "banking", "team": "t1"},
            id="strings-only",
        ),
        pytest.param({"seniority": None, "company": None}, {}, id="nulls-are-absent"),
        pytest.param({"industry": "", "team": ""}, {}, id="empty-optional-text-is-absent"),
    ],
)
def test_profile_updated_fields_are_optional(
    data: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    event = parse_structured(dumps(envelope("profile.updated", data)), MODEL, NOW)
    assert dict(event.data) == expected


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        ("2026-11-20T10:15:00Z", datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
        ("2026-11-20t10:15:00z", datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
        ("2026-11-20T10:15:00+00:00", datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
        ("2026-11-20T01:30:00+05:30", datetime(2026, 11, 19, 20, 0, tzinfo=UTC)),
        ("2026-11-19T20:00:00-08:00", datetime(2026, 11, 20, 4, 0, tzinfo=UTC)),
        ("2026-11-20T10:15:00.5Z", datetime(2026, 11, 20, 10, 15, 0, 500000, tzinfo=UTC)),
        ("2026-11-20T10:15:00.123456789Z", datetime(2026, 11, 20, 10, 15, 0, 123456, tzinfo=UTC)),
    ],
)
def test_time_offsets_are_normalised_to_utc(time: str, expected: datetime) -> None:
    event = parse_structured(
        dumps(envelope("group.joined", {"group_id": "g"}, time=time)), MODEL, NOW
    )
    assert event.time == expected
    assert event.time.utcoffset() == timedelta(0)
    assert event.day == expected.date().toordinal()


def test_event_day_is_the_utc_date_not_the_local_one() -> None:
    # 23:30 at -05:00 on the 19th is 04:30 UTC on the 20th.
    event = parse_structured(
        dumps(envelope("group.joined", {"group_id": "g"}, time="2026-11-19T23:30:00-05:00")),
        MODEL,
        NOW,
    )
    assert event.day == datetime(2026, 11, 20).date().toordinal()


def test_future_tolerance_edge() -> None:
    edge = "2026-11-20T12:05:00Z"
    assert parse_structured(
        dumps(envelope("group.joined", {"group_id": "g"}, time=edge)), MODEL, NOW
    ).time == NOW + timedelta(minutes=5)
    assert (
        rejected(
            dumps(envelope("group.joined", {"group_id": "g"}, time="2026-11-20T12:05:00.001Z"))
        ).code
        == "future_time"
    )


def test_without_a_clock_nothing_is_future() -> None:
    raw = dumps(envelope("group.joined", {"group_id": "g"}, time="2099-01-01T00:00:00Z"))
    assert parse_structured(raw, MODEL, None).time.year == 2099


# ------------------------------------------------------------------------------- invalid events


def padded(total: int) -> bytes:
    """A valid event padded with an ignored extra field to exactly `total` bytes."""
    base = dumps(envelope("group.joined", {"group_id": "g"}, pad=""))
    raw = dumps(envelope("group.joined", {"group_id": "g"}, pad="x" * (total - len(base))))
    assert len(raw) == total
    return raw


def data_case(type_: str, data: Any) -> bytes:
    return dumps(envelope(type_, data))


def without(key: str) -> bytes:
    env = envelope("group.joined", {"group_id": "g"})
    del env[key]
    return dumps(env)


COMMENT = {"post_id": "p9", "author_id": "u7"}

INVALID = [
    # size, encoding, JSON
    pytest.param(padded(65537), "too_large", id="one-byte-over-64KiB"),
    pytest.param(b"[" * 100000, "too_large", id="100000-brackets-is-too-large-first"),
    pytest.param(
        json.dumps(envelope("group.joined", {"group_id": "g"}, pad="é" * 33000)),
        "too_large",
        id="multibyte-str-counted-in-bytes",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}))[:-2] + b'\xff"}',
        "invalid_encoding",
        id="latin1-byte",
    ),
    pytest.param(b'{"id": "\xed\xa0\x80"}', "invalid_encoding", id="utf8-encoded-surrogate"),
    pytest.param(b"", "invalid_json", id="empty"),
    pytest.param(b"  \t ", "invalid_json", id="whitespace-only"),
    pytest.param(b"{", "invalid_json", id="truncated"),
    pytest.param(b"{'id': 1}", "invalid_json", id="single-quotes"),
    pytest.param(b"NaN", "invalid_json", id="bare-NaN"),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}))[:-1] + b', "x": NaN}',
        "invalid_json",
        id="NaN-inside",
    ),
    pytest.param(b'{"x": Infinity}', "invalid_json", id="Infinity"),
    pytest.param(b'{"x": -Infinity}', "invalid_json", id="minus-Infinity"),
    pytest.param(b"[" * 30000 + b"]" * 30000, "invalid_json", id="nested-30000-deep"),
    pytest.param(b'{"a":' * 10000 + b"1" + b"}" * 10000, "invalid_json", id="objects-nested-deep"),
    # not an object
    pytest.param(b"[]", "schema", id="array"),
    pytest.param(b'"event"', "schema", id="string"),
    pytest.param(b"42", "schema", id="number"),
    pytest.param(b"null", "schema", id="null"),
    # envelope
    pytest.param(without("specversion"), "schema", id="missing-specversion"),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, specversion="0.3")),
        "schema",
        id="specversion-0.3",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, specversion=1.0)),
        "schema",
        id="specversion-number",
    ),
    pytest.param(without("id"), "schema", id="missing-id"),
    pytest.param(without("source"), "schema", id="missing-source"),
    pytest.param(without("subject"), "schema", id="missing-subject"),
    pytest.param(without("type"), "schema", id="missing-type"),
    pytest.param(without("time"), "schema", id="missing-time"),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, id=123)), "schema", id="id-number"
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, id="")), "schema", id="id-empty"
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, subject=None)),
        "schema",
        id="subject-null",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, subject="u" * 257)),
        "schema",
        id="subject-too-long",
    ),
    pytest.param(
        b'{"specversion": "1.0", "id": "\\ud800", "source": "s", "type": "group.joined", '
        b'"time": "2026-11-20T10:15:00Z", "subject": "u1", "data": {"group_id": "g"}}',
        "invalid_encoding",
        id="escaped-lone-surrogate",
    ),
    # type
    pytest.param(data_case("post.liked", COMMENT), "unknown_type", id="unknown-type"),
    pytest.param(data_case("POST.COMMENTED", COMMENT), "unknown_type", id="type-case-matters"),
    # data
    pytest.param(dumps(envelope("post.commented")), "schema", id="missing-data"),
    pytest.param(data_case("post.commented", ["p9", "u7"]), "schema", id="data-array"),
    pytest.param(
        data_case("post.commented", {"post_id": "p9"}), "schema", id="missing-required-field"
    ),
    pytest.param(
        data_case("post.commented", {"post_id": 9, "author_id": "u7"}),
        "schema",
        id="id-field-number",
    ),
    pytest.param(
        data_case("post.commented", {"post_id": "p9", "author_id": ""}),
        "schema",
        id="user-field-empty",
    ),
    pytest.param(
        data_case("post.reacted", {"post_id": "p9", "author_id": "u7", "reaction": 1}),
        "schema",
        id="text-field-number",
    ),
    pytest.param(
        data_case("connection.requested", {"recipient_id": "u7", "personalized": "yes"}),
        "schema",
        id="bool-field-string",
    ),
    pytest.param(
        data_case("connection.requested", {"recipient_id": "u7", "personalized": 1}),
        "schema",
        id="bool-field-int",
    ),
    pytest.param(data_case("profile.updated", {"photo": "true"}), "schema", id="photo-string"),
    pytest.param(
        data_case("profile.updated", {"skills_count": True}), "schema", id="bool-for-count"
    ),
    pytest.param(data_case("profile.updated", {"skills_count": 3.0}), "schema", id="3.0-for-count"),
    pytest.param(data_case("profile.updated", {"skills_count": -1}), "schema", id="negative-count"),
    pytest.param(
        data_case("profile.updated", {"experience_count": "3"}), "schema", id="string-count"
    ),
    pytest.param(data_case("profile.updated", {"seniority": "ceo"}), "schema", id="bad-seniority"),
    pytest.param(
        data_case("profile.updated", {"seniority": "VP"}), "schema", id="seniority-case-matters"
    ),
    pytest.param(
        data_case("connection.accepted", {"requester_id": "u7", "requester_seniority": "boss"}),
        "schema",
        id="bad-requester-seniority",
    ),
    pytest.param(
        data_case("profile.viewed", {"viewed_id": "u7", "degree": 4}), "schema", id="degree-4"
    ),
    pytest.param(
        data_case("profile.viewed", {"viewed_id": "u7", "degree": 0}), "schema", id="degree-0"
    ),
    pytest.param(
        data_case("profile.viewed", {"viewed_id": "u7", "degree": "in"}), "schema", id="degree-in"
    ),
    pytest.param(
        data_case("profile.viewed", {"viewed_id": "u7", "degree": 2.0}), "schema", id="degree-float"
    ),
    pytest.param(
        data_case("profile.viewed", {"viewed_id": "u7", "degree": True}), "schema", id="degree-bool"
    ),
    pytest.param(data_case("profile.viewed", {"viewed_id": "u7"}), "schema", id="degree-missing"),
    pytest.param(
        data_case("post.published", {"post_id": "p1", "format": "gif"}),
        "schema",
        id="bad-format-enum",
    ),
    pytest.param(data_case("search.performed", {"kind": "People"}), "schema", id="bad-search-kind"),
    pytest.param(
        data_case("lead.saved", {"lead_id": "l1", "kind": "contact"}), "schema", id="bad-lead-kind"
    ),
    # time
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time="2026-11-20T10:15:00")),
        "invalid_time",
        id="naive-time",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time="2026-11-20")),
        "invalid_time",
        id="date-only",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time="2026-13-01T00:00:00Z")),
        "invalid_time",
        id="month-13",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time="2026-02-30T00:00:00Z")),
        "invalid_time",
        id="feb-30",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time="2026-11-20T25:00:00Z")),
        "invalid_time",
        id="hour-25",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time="2026-11-20T10:00:00+24:00")),
        "invalid_time",
        id="offset-24h",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time="yesterday")),
        "invalid_time",
        id="words",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time=1763633700)),
        "schema",
        id="epoch-number-is-a-type-error",
    ),
    pytest.param(
        dumps(envelope("post.commented", COMMENT, time="2016-12-31T23:59:60Z")),
        "invalid_time",
        id="leap-second",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time="")), "invalid_time", id="empty-time"
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time="2026-11-20T12:05:01Z")),
        "future_time",
        id="future-by-301s",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time="2026-11-20T13:06:00+01:00")),
        "future_time",
        id="future-with-offset",
    ),
    pytest.param(
        dumps(envelope("group.joined", {"group_id": "g"}, time="2027-01-01T00:00:00Z")),
        "future_time",
        id="next-year",
    ),
]


@pytest.mark.parametrize(("raw", "code"), INVALID)
def test_invalid_record_is_rejected_with_reason(raw: bytes | str, code: str) -> None:
    exc = rejected(raw)
    assert exc.code == code, exc
    assert exc.code in REASON_CODES
    assert exc.message
    assert str(exc).startswith(f"{code}: ")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(padded(65536), id="exactly-64KiB"),
        pytest.param(
            dumps(envelope("group.joined", {"group_id": "g"}, time="2026-11-20T13:05:00+01:00")),
            id="exactly-now-plus-5-min-with-offset",
        ),
        pytest.param(
            b"\n" + dumps(envelope("group.joined", {"group_id": "g"})) + b"  \n",
            id="surrounding-whitespace",
        ),
        pytest.param(
            dumps(envelope("group.joined", {"group_id": "g"}, subject="u" * 256)),
            id="256-char-subject",
        ),
    ],
)
def test_edge_records_are_accepted(raw: bytes) -> None:
    assert parse_structured(raw, MODEL, NOW).subject.startswith("u")


def test_error_messages_point_at_the_field() -> None:
    assert "skills_count" in rejected(data_case("profile.updated", {"skills_count": -1})).message
    assert "subject" in rejected(without("subject")).message
    assert "post.liked" in rejected(data_case("post.liked", COMMENT)).message


def test_parse_time_rejects_non_strings() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_time(None)
    assert info.value.code == "invalid_time"


# ---------------------------------------------------------------------------------- binary mode


def ce_headers(**overrides: str | None) -> list[tuple[str, bytes]]:
    attrs: dict[str, str | None] = {
        "specversion": "1.0",
        "id": "evt-b1",
        "source": "app://crm",
        "type": "post.commented",
        "time": T,
        "subject": "u42",
    }
    attrs.update(overrides)
    headers = [(f"ce_{k}", v.encode()) for k, v in attrs.items() if v is not None]
    return [("content-type", b"application/json"), *headers]


def test_binary_mode_event_is_accepted() -> None:
    event = parse_binary(ce_headers(), dumps(COMMENT), MODEL, NOW)
    assert event.key == ("app://crm", "evt-b1")
    assert event.type == "post.commented"
    assert event.subject == "u42"
    assert event.time == datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
    assert dict(event.data) == COMMENT


def test_binary_mode_equals_structured_mode() -> None:
    data = {"viewed_id": "u7", "degree": 3, "extra": 1}
    binary = parse_binary(ce_headers(type="profile.viewed", id="evt-1"), dumps(data), MODEL, NOW)
    structured = parse_structured(dumps(envelope("profile.viewed", data)), MODEL, NOW)
    assert binary == structured


def test_binary_mode_time_offset_is_normalised() -> None:
    event = parse_binary(ce_headers(time="2026-11-20T11:15:00+01:00"), dumps(COMMENT), MODEL, NOW)
    assert event.time == datetime(2026, 11, 20, 10, 15, tzinfo=UTC)


def test_binary_mode_snapshot_with_empty_object() -> None:
    event = parse_binary(ce_headers(type="profile.updated"), b"{}", MODEL, NOW)
    assert dict(event.data) == {}


def test_is_binary_mode() -> None:
    assert is_binary_mode(ce_headers())
    assert not is_binary_mode([("content-type", b"application/cloudevents+json")])
    assert not is_binary_mode([])


BINARY_INVALID = [
    pytest.param(ce_headers(specversion=None), dumps(COMMENT), "schema", id="no-specversion"),
    pytest.param(ce_headers(id=None), dumps(COMMENT), "schema", id="no-id"),
    pytest.param(ce_headers(source=None), dumps(COMMENT), "schema", id="no-source"),
    pytest.param(ce_headers(subject=None), dumps(COMMENT), "schema", id="no-subject"),
    pytest.param(ce_headers(time=None), dumps(COMMENT), "schema", id="no-time"),
    pytest.param(ce_headers(type="post.liked"), dumps(COMMENT), "unknown_type", id="unknown-type"),
    pytest.param(ce_headers(), b"{not json", "invalid_json", id="value-not-json"),
    pytest.param(ce_headers(), b"NaN", "invalid_json", id="value-NaN"),
    pytest.param(ce_headers(), b"\xff\xfe", "invalid_encoding", id="value-not-utf8"),
    pytest.param(
        [*ce_headers(), ("ce_extra", b"\xff")],
        dumps(COMMENT),
        "invalid_encoding",
        id="header-not-utf8",
    ),
    pytest.param(ce_headers(), b"[1, 2]", "schema", id="value-not-object"),
    pytest.param(ce_headers(), None, "schema", id="no-value"),
    pytest.param(ce_headers(), dumps({"post_id": "p9"}), "schema", id="missing-field"),
    pytest.param(
        ce_headers(time="2026-11-20T10:15:00"), dumps(COMMENT), "invalid_time", id="naive-time"
    ),
    pytest.param(
        ce_headers(time="2026-11-20T12:10:00Z"), dumps(COMMENT), "future_time", id="future-time"
    ),
    pytest.param(
        ce_headers(), dumps({**COMMENT, "pad": "x" * 65536}), "too_large", id="value-too-large"
    ),
    pytest.param(
        [*ce_headers(), ("ce_pad", b"x" * 65500)],
        dumps(COMMENT),
        "too_large",
        id="headers-plus-value-too-large",
    ),
]


@pytest.mark.parametrize(("headers", "value", "code"), BINARY_INVALID)
def test_binary_mode_invalid_is_rejected_with_reason(
    headers: list[tuple[str, bytes]], value: bytes | None, code: str
) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_binary(headers, value, MODEL, NOW)
    assert info.value.code == code, info.value
