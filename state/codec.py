"""Compact encodings of user state in Redis, and signals grouped into per-event deltas.

Day buckets are stored as one hash field per UTC day holding the counter sums in the model's
counter order ("3,,1.5"): one short field per day keeps a user's hash small enough for Redis'
compact listpack encoding. Adding counters at the end of the model keeps old data readable.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import orjson

from scoring.aggregate import UserState
from scoring.events import Event
from scoring.model import Model
from scoring.signals import named_users, to_signals
from state.keys import partition_of

PROFILE_BOOLS = ("photo", "headline", "summary")
PROFILE_COUNTS = ("experience_count", "skills_count", "featured_count", "recommendations_count")
PROFILE_TEXTS = ("industry", "seniority", "team", "company")
_SEP = "\x1f"
_ORDER_SEP = "\x1e"


def fingerprint(source: str, event_id: str) -> str:
    """64-bit hex fingerprint of an event identity `(source, id)` for the dedupe store."""
    h = hashlib.blake2b(f"{source}\x00{event_id}".encode(), digest_size=8)
    return h.hexdigest()


def content_hash(raw: bytes) -> str:
    """32-bit hex hash of bytes: tells an exact duplicate from a conflicting one."""
    return hashlib.blake2b(raw, digest_size=4).hexdigest()


def sighting(event: Event, partition: int, offset: int) -> tuple[str, str, str]:
    """What the dedupe store records of an event seen at an activity partition and offset."""
    return (fingerprint(event.source, event.id), f"{partition}:{offset}", event_hash(event))


def event_hash(event: Event) -> str:
    """Content hash of what an event means (type, actor, time, catalogue fields), not of its
    bytes: a re-serialised copy, or the same event in the other CloudEvents mode, is an exact
    duplicate; a copy that says something else is a conflicting one."""
    canon = orjson.dumps(
        [event.type, event.subject, event.time.isoformat(), event.data],
        option=orjson.OPT_SORT_KEYS,
    )
    return content_hash(canon)


def encode_profile(order: str, profile: dict[str, Any]) -> str:
    parts = [("1" if profile.get(k) else "0") for k in PROFILE_BOOLS]
    parts += [str(int(profile.get(k) or 0)) for k in PROFILE_COUNTS]
    parts += [str(profile.get(k) or "") for k in PROFILE_TEXTS]
    return order + _ORDER_SEP + _SEP.join(parts)


def decode_profile(raw: str) -> tuple[str, dict[str, Any]]:
    order, _, body = raw.partition(_ORDER_SEP)
    parts = body.split(_SEP)
    out: dict[str, Any] = {}
    i = 0
    for k in PROFILE_BOOLS:
        out[k] = parts[i] == "1" if i < len(parts) else False
        i += 1
    for k in PROFILE_COUNTS:
        out[k] = int(parts[i]) if i < len(parts) and parts[i] else 0
        i += 1
    for k in PROFILE_TEXTS:
        if i < len(parts) and parts[i]:
            out[k] = parts[i]
        i += 1
    return order, out


@dataclass
class EventDelta:
    """All deltas of one event for the users of one partition, with where the event came from.

    `(source_partition, source_offset)` is the event's position in `ssi.activity`: the apply
    script's watermark per source partition makes redelivered or re-forwarded events harmless.
    `users` are in the apply script's wire layout, one entry per user:
    `[user, day, [window position, amount, ...], [total position, amount, ...], profile|False]`
    (positions 1-based in the model's counter order).
    """

    source_partition: int
    source_offset: int
    users: list[list[Any]]

    def to_wire(self) -> dict[str, Any]:
        return {"p": self.source_partition, "o": self.source_offset, "u": self.users}


def _pairs(amounts: dict[int, float]) -> list[float]:
    out: list[float] = []
    for i in sorted(amounts):
        out += (i, amounts[i])
    return out


def user_deltas(event: Event, model: Model) -> dict[str, list[Any]]:
    """The signals of one event grouped into one wire entry per user it names (see
    `EventDelta`). Every named user gets an entry, empty or not, so that users credited nothing
    (a request's recipient) are tracked and scored like the batch scorer lists them."""
    wpos, tpos = model.counter_positions
    day = event.day
    window: dict[str, dict[int, float]] = {}
    totals: dict[str, dict[int, float]] = {}
    profiles: dict[str, str] = {}
    for s in to_signals(event, model):
        if s.profile is not None:
            profiles[s.user] = encode_profile(s.order, s.profile)
        elif (i := wpos.get(s.counter)) is not None:
            w = window.setdefault(s.user, {})
            w[i] = w.get(i, 0.0) + s.amount
        else:
            t = totals.setdefault(s.user, {})
            i = tpos[s.counter]
            t[i] = t.get(i, 0.0) + s.amount
    out: dict[str, list[Any]] = {}
    for user in (*window, *totals, *profiles, *named_users(event, model)):
        if user not in out:
            out[user] = [
                user,
                day,
                _pairs(window[user]) if user in window else [],
                _pairs(totals[user]) if user in totals else [],
                profiles.get(user, False),
            ]
    return out


def _parse_row(raw: str, names: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for name, v in zip(names, raw.split(","), strict=False):
        if v:
            x = float(v)
            if x and math.isfinite(x):
                out[name] = x
    return out


@dataclass
class StoredUser:
    """A user's state as read from Redis, with what was last published for it."""

    state: UserState
    published: str | None
    version: int


def decode_user(flat: dict[str, str], profile: str | None, model: Model) -> StoredUser:
    """A user hash (and profile string) back into the pure scorer's `UserState`."""
    wnames = model.window_counters
    tnames = model.total_counters
    state = UserState()
    published = None
    version = 0
    for f, v in flat.items():
        if f.isdigit():
            state.buckets[int(f)] = _parse_row(v, wnames)
        elif f == "t":
            state.totals = _parse_row(v, tnames)
        elif f == "s":
            published = v
        elif f == "v":
            version = int(v)
    if profile:
        state.profile_order, state.profile = decode_profile(profile)
    return StoredUser(state, published, version)


def published_string(total: float, pillars: dict[str, float]) -> str:
    """The 2-decimal score and pillars as stored: a change of this string is a published change."""
    return "|".join(f"{x:.2f}" for x in (total, *pillars.values()))


def parse_published(s: str) -> tuple[float, list[float]]:
    parts = [float(x) for x in s.split("|")]
    return parts[0], parts[1:]


def route_event(
    event: Event, model: Model, partitions: int, source_partition: int, source_offset: int
) -> dict[int, EventDelta]:
    """An accepted event as one delta per owning `ssi.signals` partition."""
    out: dict[int, EventDelta] = {}
    for user, entry in user_deltas(event, model).items():
        p = partition_of(user, partitions)
        ed = out.get(p)
        if ed is None:
            ed = out[p] = EventDelta(source_partition, source_offset, [])
        ed.users.append(entry)
    return out
