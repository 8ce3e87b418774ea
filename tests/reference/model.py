"""Independent test oracle for DESIGN 3.2 (validation) and 4 (scoring model v1).

Written from the DESIGN text alone, without looking at the product, and kept
deliberately plain: stdlib only, constants inline, no configuration.

    score_lines(lines, now) -> (users, rejected)

``lines`` are JSONL lines (``str`` or ``bytes``, trailing newline optional).
``str`` lines are turned into bytes with ``surrogateescape`` so a generator can
express invalid UTF-8 bytes as lone surrogates. ``users`` maps every user named
by a valid event to ``{"score", "pillars", "components"}`` (unrounded floats);
``rejected`` lists ``(line_number, reason_code)`` for every bad line, 1-based,
in file order. Blank lines are skipped silently.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone

MAX_LINE_BYTES = 65536
FUTURE_TOLERANCE = timedelta(minutes=5)
WINDOW_DAYS = 28
MAX_ID_LEN = 256

SENIORITIES = {
    "entry",
    "senior",
    "manager",
    "director",
    "vp",
    "cxo",
    "owner",
    "partner",
    "training",
    "unpaid",
}
PERSONA = {"director", "vp", "cxo", "owner", "partner"}
FORMATS = {"text", "article", "image", "video", "document", "poll"}
DEGREE_WEIGHT = {"1": 0.5, "2": 1.0, "3": 1.5, "out": 1.5}

# Per-day caps, applied to each day's (weighted) total before summing the window.
DAILY_CAP = {
    "posts": 3,
    "prospecting": 60,
    "searches": 10,
    "leads": 10,
    "conversations": 20,
    "reactions": 50,
    "groups": 5,
    "follow_ups": 30,
}

PILLARS = {
    "brand": ["completeness", "publishing", "engagement_received", "audience"],
    "people": ["prospecting", "searches", "leads", "active_days"],
    "insights": ["conversations", "reactions", "groups", "inmail_response", "resonance"],
    "relationships": ["network", "persona", "acceptance", "follow_ups"],
}


class Rejected(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# ---------------------------------------------------------------- validation

TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_time(text: str) -> datetime:
    """RFC 3339 date-time with Z or a numeric offset -> aware UTC datetime."""
    m = TIME_RE.fullmatch(text)
    if not m:
        raise Rejected("invalid_time")
    year, month, day, hour, minute, second, frac, zulu, sign, oh, om = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    if zulu:
        offset = timedelta(0)
    else:
        if int(oh) > 23 or int(om) > 59:
            raise Rejected("invalid_time")
        offset = timedelta(hours=int(oh), minutes=int(om))
        if sign == "-":
            offset = -offset
    try:
        local = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            micro,
            tzinfo=timezone(offset),
        )
    except ValueError:
        raise Rejected("invalid_time") from None
    return local.astimezone(UTC)


def is_id(v: object) -> bool:
    return isinstance(v, str) and 1 <= len(v) <= MAX_ID_LEN


def is_text(v: object) -> bool:
    return isinstance(v, str) and len(v) >= 1


def is_bool(v: object) -> bool:
    return isinstance(v, bool)


def is_count(v: object) -> bool:
    return type(v) is int and v >= 0


def one_of(choices: set[str]):
    return lambda v: isinstance(v, str) and v in choices


def is_degree(v: object) -> bool:
    if type(v) is int:
        return v in (1, 2, 3)
    return v in ("1", "2", "3", "out")


# type -> {field: (check, required)}
DATA_FIELDS = {
    "profile.updated": {
        "photo": (is_bool, False),
        "headline": (is_bool, False),
        "summary": (is_bool, False),
        "experience_count": (is_count, False),
        "skills_count": (is_count, False),
        "featured_count": (is_count, False),
        "recommendations_count": (is_count, False),
        "industry": (lambda v: isinstance(v, str), False),
        "seniority": (one_of(SENIORITIES), False),
        "team": (lambda v: isinstance(v, str), False),
        "company": (lambda v: isinstance(v, str), False),
    },
    "post.published": {"post_id": (is_id, True), "format": (one_of(FORMATS), True)},
    "post.reacted": {
        "post_id": (is_id, True),
        "author_id": (is_id, True),
        "reaction": (is_text, True),
    },
    "post.commented": {"post_id": (is_id, True), "author_id": (is_id, True)},
    "post.shared": {"post_id": (is_id, True), "author_id": (is_id, True)},
    "connection.requested": {"recipient_id": (is_id, True), "personalized": (is_bool, True)},
    "connection.accepted": {
        "requester_id": (is_id, True),
        "requester_seniority": (one_of(SENIORITIES), False),
        "acceptor_seniority": (one_of(SENIORITIES), False),
    },
    "connection.declined": {"requester_id": (is_id, True)},
    "inmail.sent": {"recipient_id": (is_id, True)},
    "inmail.replied": {"sender_id": (is_id, True)},
    "message.sent": {"recipient_id": (is_id, True)},
    "profile.viewed": {"viewed_id": (is_id, True), "degree": (is_degree, True)},
    "search.performed": {"kind": (one_of({"people", "company", "content"}), True)},
    "lead.saved": {"lead_id": (is_id, True), "kind": (one_of({"lead", "account"}), True)},
    "group.joined": {"group_id": (is_id, True)},
    "group.posted": {"group_id": (is_id, True)},
    "endorsement.given": {"recipient_id": (is_id, True), "skill": (is_text, True)},
    "follow.started": {"followee_id": (is_id, True)},
}

# The user-id field of each type that names another user (the "counterpart").
COUNTERPART = {
    "post.reacted": "author_id",
    "post.commented": "author_id",
    "post.shared": "author_id",
    "connection.requested": "recipient_id",
    "connection.accepted": "requester_id",
    "connection.declined": "requester_id",
    "inmail.sent": "recipient_id",
    "inmail.replied": "sender_id",
    "message.sent": "recipient_id",
    "profile.viewed": "viewed_id",
    "endorsement.given": "recipient_id",
    "follow.started": "followee_id",
}


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def parse_line(raw: bytes) -> dict:
    """Everything but the future-time check (which needs the clock)."""
    if len(raw) > MAX_LINE_BYTES:
        raise Rejected("too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("invalid_encoding") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise Rejected("invalid_json") from None
    try:  # "\ud800" escapes spell strings that are not Unicode text
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected("invalid_encoding") from None
    if not isinstance(obj, dict):
        raise Rejected("schema")
    if obj.get("specversion") != "1.0" or not isinstance(obj.get("specversion"), str):
        raise Rejected("schema")
    for attr in ("id", "source", "type"):
        if not is_text(obj.get(attr)):
            raise Rejected("schema")
    if not is_id(obj.get("subject")):
        raise Rejected("schema")
    if not isinstance(obj.get("time"), str) or not isinstance(obj.get("data"), dict):
        raise Rejected("schema")
    if obj["type"] not in DATA_FIELDS:
        raise Rejected("unknown_type")
    when = parse_time(obj["time"])
    data = obj["data"]
    for field, (check, required) in DATA_FIELDS[obj["type"]].items():
        if data.get(field) is None:  # null is absent (CloudEvents convention)
            if required:
                raise Rejected("schema")
        elif not check(data[field]):
            raise Rejected("schema")
    return {
        "source": obj["source"],
        "id": obj["id"],
        "type": obj["type"],
        "subject": obj["subject"],
        "time": when,
        "data": data,
    }


# ------------------------------------------------------------------- scoring


def s(x: float, t: float) -> float:
    return 1.0 - math.exp(-2.0 * x / t)


def score_lines(
    lines: list[str | bytes], now: datetime | None
) -> tuple[dict[str, dict], list[tuple[int, str]]]:
    rejected: list[tuple[int, str]] = []
    parsed: list[tuple[int, dict]] = []
    for number, line in enumerate(lines, start=1):
        raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogateescape")
        raw = raw.rstrip(b"\r\n")
        if raw.strip(b" \t\r\n") == b"":
            continue
        try:
            parsed.append((number, parse_line(raw)))
        except Rejected as err:
            rejected.append((number, err.code))

    if now is None:
        if not parsed:
            return {}, rejected
        now = max(ev["time"] for _, ev in parsed)
    now = now.astimezone(UTC)

    events: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for number, ev in parsed:
        if ev["time"] > now + FUTURE_TOLERANCE:
            rejected.append((number, "future_time"))
            continue
        key = (ev["source"], ev["id"])
        if key in seen:
            continue  # duplicate: the first valid one in file order wins
        seen.add(key)
        events.append(ev)
    rejected.sort()

    last_day = now.date()
    first_day = last_day - timedelta(days=WINDOW_DAYS - 1)

    users: set[str] = set()
    active: dict[str, set[date]] = defaultdict(set)
    # daily[user][component][date] = weighted amount that day
    daily: dict[str, dict[str, dict[date, float]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(float))
    )
    connections: dict[str, int] = defaultdict(int)
    persona_connections: dict[str, int] = defaultdict(int)
    profile: dict[str, tuple] = {}  # user -> (time, source, id, data)

    for ev in events:
        actor, kind, data, day = ev["subject"], ev["type"], ev["data"], ev["time"].date()
        users.add(actor)
        active[actor].add(day)
        other = data.get(COUNTERPART[kind]) if kind in COUNTERPART else None
        if other is not None:
            users.add(other)
            if other == actor:
                continue  # self-interaction: only the active day

        def add(user: str, component: str, amount: float = 1.0, day: date = day) -> None:
            daily[user][component][day] += amount

        if kind == "profile.updated":
            rank = (ev["time"], ev["source"], ev["id"])
            if actor not in profile or rank > profile[actor][:3]:
                profile[actor] = (*rank, data)
        elif kind == "post.published":
            add(actor, "posts")
        elif kind == "post.reacted":
            add(actor, "reactions")
            add(other, "engagement", 1)
        elif kind == "post.commented":
            add(actor, "conversations", 1)
            add(other, "engagement", 3)
        elif kind == "post.shared":
            add(actor, "conversations", 1.5)
            add(other, "engagement", 5)
        elif kind == "connection.requested":
            add(actor, "requests_sent")
        elif kind == "connection.accepted":
            add(other, "requests_accepted")
            connections[actor] += 1
            connections[other] += 1
            if data.get("acceptor_seniority") in PERSONA:
                persona_connections[other] += 1
            if data.get("requester_seniority") in PERSONA:
                persona_connections[actor] += 1
        elif kind == "connection.declined":
            add(other, "requests_declined")
        elif kind == "inmail.sent":
            add(actor, "inmail_sent")
        elif kind == "inmail.replied":
            add(other, "inmail_replies")
        elif kind == "message.sent":
            add(actor, "follow_ups")
        elif kind == "profile.viewed":
            add(actor, "prospecting", DEGREE_WEIGHT[str(data["degree"])])
            add(other, "audience", 1)
        elif kind == "search.performed":
            if data["kind"] == "people":
                add(actor, "searches")
        elif kind == "lead.saved":
            add(actor, "leads")
        elif kind in ("group.joined", "group.posted"):
            add(actor, "groups")
        elif kind == "endorsement.given":
            add(other, "audience", 2)
        elif kind == "follow.started":
            add(other, "audience", 1)

    def window(user: str, component: str) -> float:
        cap = DAILY_CAP.get(component, math.inf)
        return sum(
            min(amount, cap)
            for day, amount in daily[user][component].items()
            if first_day <= day <= last_day
        )

    result: dict[str, dict] = {}
    for user in users:
        c: dict[str, float] = {}

        p = profile[user][3] if user in profile else {}
        experience = p.get("experience_count", 0)
        completeness = (
            0.20 * bool(p.get("photo", False))
            + 0.15 * bool(p.get("headline", False))
            + 0.15 * bool(p.get("summary", False))
            + (0.10 if experience >= 1 else 0.0)
            + (0.05 if experience >= 3 else 0.0)
            + min(p.get("skills_count", 0), 5) / 5 * 0.15
            + (0.10 if p.get("featured_count", 0) >= 1 else 0.0)
            + (0.10 if p.get("recommendations_count", 0) >= 1 else 0.0)
        )
        c["completeness"] = 9 * completeness

        posts = window(user, "posts")
        engagement = window(user, "engagement")
        c["publishing"] = 6 * s(posts, 8)
        c["engagement_received"] = 6 * s(engagement, 60)
        c["audience"] = 4 * s(window(user, "audience"), 40)

        c["prospecting"] = 8 * s(window(user, "prospecting"), 100)
        c["searches"] = 5 * s(window(user, "searches"), 30)
        c["leads"] = 4 * s(window(user, "leads"), 20)
        days = sum(1 for d in active[user] if first_day <= d <= last_day)
        c["active_days"] = 8 * days / 28

        c["conversations"] = 8 * s(window(user, "conversations"), 40)
        c["reactions"] = 4 * s(window(user, "reactions"), 80)
        c["groups"] = 3 * s(window(user, "groups"), 10)
        sent = window(user, "inmail_sent")
        replies = window(user, "inmail_replies")
        c["inmail_response"] = 5 * min(1.0, (replies + 1) / (sent + 10) / 0.30) if sent else 0.0
        c["resonance"] = 5 * s(engagement / posts, 15) if posts else 0.0

        c["network"] = 7 * s(connections[user], 500)
        total = connections[user]
        c["persona"] = 6 * min(1.0, persona_connections[user] / total / 0.30) if total else 0.0
        requested = window(user, "requests_sent")
        accepted = window(user, "requests_accepted")
        c["acceptance"] = (
            6 * min(1.0, (accepted + 1) / (requested + 2) / 0.60) if requested else 0.0
        )
        c["follow_ups"] = 6 * s(window(user, "follow_ups"), 30)

        pillars = {name: sum(c[k] for k in comps) for name, comps in PILLARS.items()}
        result[user] = {"score": sum(pillars.values()), "pillars": pillars, "components": c}
    return result, rejected


def latest_valid_time(lines: list[str | bytes]) -> datetime | None:
    """The default clock: the latest `time` among valid events (no future check)."""
    times = []
    for line in lines:
        raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogateescape")
        raw = raw.rstrip(b"\r\n")
        if raw.strip(b" \t\r\n") == b"":
            continue
        with contextlib.suppress(Rejected):
            times.append(parse_line(raw)["time"])
    return max(times) if times else None
