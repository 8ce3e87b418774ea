"""Held-out JSONL event files for equivalence tests against the product.

``generate(seed)`` returns the lines of one file (``str``; invalid UTF-8 bytes
are lone surrogates, write them with ``write_lines``). ``now_for(seed)`` is the
clock to score them with. ``build(seed)`` also returns, for every line, the
rejection code the generator meant it to get (``None`` for valid lines), so the
oracle itself can be checked against the generator's intent.

A file holds every event type of DESIGN 3.2 over ~60 days of event time, heavy
days that hit the per-day caps, self-interactions, out-of-order and tied
profile snapshots, events on window and day edges (also via UTC offsets),
exact, re-serialised and conflicting duplicates, and bad lines of every kind.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

NOWS = [
    datetime(2026, 3, 15, 14, 30, tzinfo=UTC),
    datetime(2026, 3, 15, 23, 57, 30, tzinfo=UTC),  # now + 5 min is tomorrow
    datetime(2026, 3, 16, 0, 2, tzinfo=UTC),  # just after midnight
    datetime(2028, 3, 10, 12, 0, 0, 250000, tzinfo=UTC),  # leap day in window
    datetime(2026, 1, 2, 9, 0, tzinfo=UTC),  # window spans the new year
]

SOURCES = ["app://crm", "app://web", "app://mobile"]
SENIORITIES = [
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
]
FORMATS = ["text", "article", "image", "video", "document", "poll"]
OFFSETS = [(2, 0), (-5, 0), (5, 30), (-9, -30), (0, 0), (14, 0), (-12, 0)]

TYPE_WEIGHTS = {
    "post.reacted": 15,
    "profile.viewed": 15,
    "post.commented": 8,
    "connection.requested": 6,
    "message.sent": 6,
    "search.performed": 6,
    "post.published": 5,
    "connection.accepted": 5,
    "lead.saved": 4,
    "post.shared": 3,
    "inmail.sent": 3,
    "follow.started": 3,
    "inmail.replied": 2,
    "connection.declined": 2,
    "group.posted": 2,
    "endorsement.given": 2,
    "profile.updated": 2,
    "group.joined": 1,
}
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


def now_for(seed: int) -> datetime:
    return NOWS[seed % len(NOWS)]


def now_text(seed: int) -> str:
    return rfc3339(now_for(seed))


def rfc3339(t: datetime) -> str:
    t = t.astimezone(UTC)
    frac = f".{t.microsecond:06d}" if t.microsecond else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def write_lines(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def generate(
    seed: int, users: int = 60, events: int = 3000, conflicting_duplicates: bool = True
) -> list[str]:
    return [line for line, _ in build(seed, users, events, conflicting_duplicates)]


def build(
    seed: int, users: int = 60, events: int = 3000, conflicting_duplicates: bool = True
) -> list[tuple[str, str | None]]:
    return _Gen(seed, users, conflicting_duplicates).run(events)


class _Gen:
    def __init__(self, seed: int, n_users: int, conflicts: bool) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.now = now_for(seed)
        self.conflicts = conflicts
        self.counter = 0
        self.users = [f"u{i:03d}" for i in range(n_users)]
        # a few ids that sort and encode unusually
        for i, special in enumerate(["ü-müller", "用户7", "Zed", "ann lee"]):
            if i < len(self.users):
                self.users[-1 - i] = special
        self.externals = [f"ext-{k}" for k in range(5)]  # only ever counterparts
        self.activity = {u: self.rng.choice([0.2, 0.5, 1, 1, 2, 4, 8]) for u in self.users}
        # (key, line, expected code); key orders the final file
        self.items: list[tuple[float, str, str | None]] = []
        self.valid: list[tuple[int, dict]] = []  # index in items, event

    # ------------------------------------------------------------ helpers

    def new_id(self) -> str:
        self.counter += 1
        return f"evt-{self.seed}-{self.counter}"

    def fmt_time(self, t: datetime) -> str:
        r = self.rng.random()
        if r < 0.70:
            return rfc3339(t.replace(microsecond=0))
        if r < 0.80:
            return rfc3339(t.replace(microsecond=t.microsecond // 1000 * 1000 or 1000))
        if r < 0.85:  # nanosecond precision, away from day edges
            return rfc3339(t.replace(microsecond=0))[:-1] + ".123456789Z"
        h, m = self.rng.choice(OFFSETS)
        return offset_time(t.replace(microsecond=0), h, m)

    def random_time(self, days: float = 60) -> datetime:
        return self.now - timedelta(seconds=self.rng.uniform(0, days * 86400))

    def pick_actor(self) -> str:
        return self.rng.choices(self.users, weights=[self.activity[u] for u in self.users])[0]

    def pick_other(self, actor: str) -> str:
        r = self.rng.random()
        if r < 0.04:
            return actor  # self-interaction
        if r < 0.10:
            return self.rng.choice(self.externals)
        return self.rng.choice(self.users)

    def data_for(self, kind: str, actor: str) -> dict:
        rng = self.rng
        d: dict = {}
        if kind in COUNTERPART:
            d[COUNTERPART[kind]] = self.pick_other(actor)
        if kind == "profile.updated":
            for f in ("photo", "headline", "summary"):
                if rng.random() < 0.8:
                    d[f] = rng.random() < 0.7
            for f, hi in (
                ("experience_count", 6),
                ("skills_count", 12),
                ("featured_count", 3),
                ("recommendations_count", 4),
            ):
                if rng.random() < 0.8:
                    d[f] = rng.randint(0, hi)
            if rng.random() < 0.5:
                d["seniority"] = rng.choice(SENIORITIES)
                d["industry"] = rng.choice(["software", "finance", "health"])
                d["team"] = rng.choice(["north", "south"])
                d["company"] = "Acme"
        elif kind == "post.published":
            d.update(post_id=f"p{rng.randint(0, 9999)}", format=rng.choice(FORMATS))
        elif kind in ("post.reacted", "post.commented", "post.shared"):
            d["post_id"] = f"p{rng.randint(0, 9999)}"
            if kind == "post.reacted":
                d["reaction"] = rng.choice(["like", "celebrate", "insightful", "love"])
        elif kind == "connection.requested":
            d["personalized"] = rng.random() < 0.5
        elif kind == "connection.accepted":
            for f in ("requester_seniority", "acceptor_seniority"):
                if rng.random() < 0.7:
                    d[f] = rng.choice(SENIORITIES)
        elif kind == "profile.viewed":
            d["degree"] = rng.choice([1, 2, 3, "out", 1, 2, 3, "1", "2", "3"])
        elif kind == "search.performed":
            d["kind"] = rng.choice(["people", "people", "company", "content"])
        elif kind == "lead.saved":
            d.update(lead_id=f"l{rng.randint(0, 999)}", kind=rng.choice(["lead", "account"]))
        elif kind in ("group.joined", "group.posted"):
            d["group_id"] = f"g{rng.randint(0, 30)}"
        elif kind == "endorsement.given":
            d["skill"] = rng.choice(["sales", "python", "negotiation"])
        if rng.random() < 0.05:
            d["x_extra"] = {"ignored": [1, 2, 3]}  # unknown fields are ignored
        return d

    def event(
        self,
        kind: str,
        actor: str | None = None,
        t: datetime | str | None = None,
        data: dict | None = None,
    ) -> dict:
        actor = actor or self.pick_actor()
        when = t if isinstance(t, str) else self.fmt_time(t or self.random_time())
        ev = {
            "specversion": "1.0",
            "id": self.new_id(),
            "source": self.rng.choice(SOURCES),
            "type": kind,
            "time": when,
            "subject": actor,
            "data": self.data_for(kind, actor) if data is None else data,
        }
        if self.rng.random() < 0.1:
            ev["datacontenttype"] = "application/json"
        return ev

    def dump(self, obj: object) -> str:
        return json.dumps(obj, ensure_ascii=self.rng.random() < 0.5)

    def add(self, line: str, code: str | None = None, ev: dict | None = None) -> None:
        index = len(self.items)
        self.items.append((float(index), line, code))
        if ev is not None and code is None:
            self.valid.append((index, ev))

    def add_event(self, ev: dict) -> None:
        self.add(self.dump(ev), None, ev)

    # ------------------------------------------------------------ sections

    def run(self, n_events: int) -> list[tuple[str, str | None]]:
        kinds = list(TYPE_WEIGHTS)
        weights = list(TYPE_WEIGHTS.values())
        for kind in kinds:  # every type at least a few times, also outside the window
            for _ in range(3):
                self.add_event(self.event(kind))
        for _ in range(n_events):
            self.add_event(self.event(self.rng.choices(kinds, weights)[0]))
        self.bursts()
        self.profiles()
        self.edges()
        self.self_interactions()
        self.zero_users()
        self.size_edges()
        self.rng.shuffle(self.items)
        self.items = [(float(i), line, code) for i, (_, line, code) in enumerate(self.items)]
        self.valid = []
        for i, (_, line, code) in enumerate(self.items):
            if code is None and line.strip():
                self.valid.append((i, json.loads(line)))
        self.duplicates()
        self.malformed()
        self.items.sort(key=lambda item: item[0])
        return [(line, code) for _, line, code in self.items]

    def bursts(self) -> None:
        """Heavy days that exceed the per-day caps, in and out of the window."""
        plan = [
            ("post.published", 6, None),
            ("profile.viewed", 50, {"degree": 3}),
            ("profile.viewed", 80, {"degree": "out"}),
            ("profile.viewed", 70, {"degree": 1}),
            ("search.performed", 14, {"kind": "people"}),
            ("search.performed", 14, {"kind": "company"}),
            ("lead.saved", 13, None),
            ("post.commented", 25, None),
            ("post.shared", 16, None),
            ("post.reacted", 60, None),
            ("group.posted", 8, None),
            ("message.sent", 40, None),
            ("inmail.sent", 20, None),
            ("connection.requested", 30, None),
        ]
        for kind, count, fixed in plan:
            for days_ago in (self.rng.randint(0, 27), self.rng.randint(29, 59)):
                actor = self.rng.choice(self.users[:20])
                day = (self.now - timedelta(days=days_ago)).replace(
                    hour=0, minute=0, second=0, microsecond=0
                )
                for _ in range(count):
                    t = day + timedelta(seconds=self.rng.randint(0, 86399))
                    t = min(t, self.now)
                    data = self.data_for(kind, actor)
                    if fixed:
                        data.update(fixed)
                    if kind in COUNTERPART and data[COUNTERPART[kind]] == actor:
                        data[COUNTERPART[kind]] = self.rng.choice(self.externals)
                    self.add_event(self.event(kind, actor, t, data))

    def profiles(self) -> None:
        """Several snapshots per user, out of order, some with equal times."""
        for user in self.rng.sample(self.users, len(self.users) // 2):
            times = [self.random_time(70) for _ in range(self.rng.randint(1, 4))]
            for t in times:
                self.add_event(self.event("profile.updated", user, t))
            if self.rng.random() < 0.5:  # a tie with the latest: larger (source, id) wins
                latest = max(times).replace(microsecond=0)
                for source in ("app://crm", "app://web"):
                    ev = self.event("profile.updated", user, rfc3339(latest))
                    ev["source"] = source
                    self.add_event(ev)
        # an empty snapshot (everything absent = false / 0) as the latest one
        user = self.rng.choice(self.users)
        self.add_event(self.event("profile.updated", user, self.now - timedelta(minutes=1), {}))

    def edges(self) -> None:
        now = self.now
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        first = today - timedelta(days=27)
        micro = timedelta(microseconds=1)
        edge_times = [
            rfc3339(first),  # first day of the window: in
            rfc3339(first - micro),  # last instant before it: out
            offset_time(first + timedelta(minutes=30), 1, 0),  # 00:30+01:00 = 23:30Z: out
            offset_time(first - timedelta(minutes=30), -1, 0),  # 23:30-01:00 = 00:30Z: in
            offset_time(first, 5, 30),
            rfc3339(today),
            rfc3339(today - micro),
            rfc3339(now),
            rfc3339(now + timedelta(minutes=5)),  # exactly the tolerance: accepted
            rfc3339(now + timedelta(minutes=4, seconds=59)),
        ]
        kinds = list(TYPE_WEIGHTS)
        for t in edge_times:
            for kind in self.rng.sample(kinds, 6):
                self.add_event(self.event(kind, None, t))
            # the same actor twice on an edge: one active day at most
            actor = self.rng.choice(self.users)
            self.add_event(self.event("post.published", actor, t))
            self.add_event(self.event("connection.accepted", actor, t))
        for t, code in [
            (rfc3339(now + timedelta(minutes=5, microseconds=1)), "future_time"),
            (rfc3339(now + timedelta(minutes=5, seconds=1)), "future_time"),
            (rfc3339(now + timedelta(days=1)), "future_time"),
            (offset_time(now + timedelta(minutes=6), 3, 0), "future_time"),
        ]:
            ev = self.event(self.rng.choice(kinds), None, t)
            self.add(self.dump(ev), code)

    def self_interactions(self) -> None:
        for kind, field in COUNTERPART.items():
            for _ in range(3):
                actor = self.rng.choice(self.users)
                data = self.data_for(kind, actor)
                data[field] = actor
                self.add_event(self.event(kind, actor, self.random_time(30), data))
        # a user who only ever interacts with themself
        loner = "solo-self"
        for kind, field in COUNTERPART.items():
            data = self.data_for(kind, loner)
            data[field] = loner
            self.add_event(self.event(kind, loner, self.random_time(20), data))

    def zero_users(self) -> None:
        """Users named by valid events that earn nothing: they must still be listed."""
        old = self.random_time(20) - timedelta(days=35)  # before the window
        actor = self.rng.choice(self.users)
        for kind, field, user in [
            ("post.commented", "author_id", "zero-old-author"),
            ("profile.viewed", "viewed_id", "zero-old-author"),
            ("connection.declined", "requester_id", "zero-declined"),
            ("inmail.sent", "recipient_id", "zero-inmail"),
            ("message.sent", "recipient_id", "zero-messaged"),
            ("connection.requested", "recipient_id", "zero-requested"),
        ]:
            data = self.data_for(kind, actor)
            data[field] = user
            when = old if user == "zero-old-author" else self.random_time(20)
            self.add_event(self.event(kind, actor, when, data))

    def size_edges(self) -> None:
        """Lines of exactly 65535 and 65536 bytes are fine; 65537 is too large."""
        for size, code in [(65535, None), (65536, None), (65537, "too_large")]:
            ev = self.event("post.published")
            ev["data"]["padding"] = ""
            base = len(json.dumps(ev).encode())
            ev["data"]["padding"] = "x" * (size - base)
            line = json.dumps(ev)
            assert len(line.encode()) == size
            self.add(line, code, ev)
        self.add("y" * 70000, "too_large")  # too large and not JSON: size is checked first
        # raw U+2028 / U+0085 inside strings: JSON allows them, they are not line breaks here
        for odd in ("\u2028", "\u0085"):
            data = self.data_for("post.reacted", "x")
            data["author_id"] = self.rng.choice(self.users)
            data["reaction"] = f"like{odd}it"
            ev = self.event("post.reacted", None, None, data)
            self.add(json.dumps(ev, ensure_ascii=False), None, ev)
        ev = self.event("message.sent")
        self.add("   " + json.dumps(ev) + "  ", None, ev)  # surrounding whitespace is fine
        for blank in ("", "   ", "\t"):
            self.add(blank, None)

    def duplicates(self) -> None:
        """Copies of valid events, inserted after (or, when invalid, before) the original."""
        n = len(self.items)
        for index, ev in self.rng.sample(self.valid, len(self.valid) // 8):
            r = self.rng.random()
            if r < 0.35:
                copy = self.items[index][1]  # byte-identical
            elif r < 0.55:
                copy = json.dumps(
                    dict(reversed(list(ev.items()))), indent=None, separators=(",", ":")
                )
            elif r < 0.80 and self.conflicts:
                copy = self.dump(self.conflicting(ev))
            elif r < 0.90:
                bad, code = self.break_event(ev)  # invalid copy first: the valid one still wins
                self.items.append((self.rng.uniform(-0.5, index - 0.5), bad, code))
                continue
            else:
                bad, code = self.break_event(ev)  # invalid copy later: still reported
                self.items.append((self.rng.uniform(index + 0.5, n), bad, code))
                continue
            self.items.append((self.rng.uniform(index + 0.5, n), copy, None))
        # same id from another source is a different event
        for _, ev in self.rng.sample(self.valid, 20):
            other = dict(ev, source=ev["source"] + "/other")
            self.items.append((self.rng.uniform(0, n), self.dump(other), None))

    def conflicting(self, ev: dict) -> dict:
        new = self.event(self.rng.choice(list(TYPE_WEIGHTS)), None, self.random_time(20))
        new["id"], new["source"] = ev["id"], ev["source"]
        return new

    def break_event(self, ev: dict) -> tuple[str, str]:
        ev = json.loads(json.dumps(ev))
        r = self.rng.random()
        if r < 0.25:
            ev["data"] = []
            return self.dump(ev), "schema"
        if r < 0.50:
            ev["time"] = ev["time"][:19]  # naive
            return self.dump(ev), "invalid_time"
        if r < 0.75:  # rejected against --now; the latest valid event without it
            ev["time"] = rfc3339(self.now + timedelta(hours=self.rng.randint(1, 30)))
            return self.dump(ev), "future_time"
        ev["type"] = "post.deleted"
        return self.dump(ev), "unknown_type"

    def malformed(self) -> None:
        n = len(self.items)

        def put(line: str, code: str) -> None:
            self.items.append((self.rng.uniform(0, n), line, code))

        def base(kind: str | None = None) -> dict:
            return self.event(
                kind or self.rng.choice(list(TYPE_WEIGHTS)), None, self.random_time(50)
            )

        good = json.dumps(base("post.commented"))
        for line in [
            good[:-1],
            good[: len(good) // 2],
            "not json at all",
            "{'specversion': '1.0'}",
            good[:-1] + ",}",
            good + " x",
            good + good,
            '{"specversion":"1.0",}',
            "{",
        ]:
            put(line, "invalid_json")
        for const in ("NaN", "Infinity", "-Infinity"):
            ev = base("profile.updated")
            ev.pop("data")
            line = self.dump(ev)[:-1] + f', "data": {{"photo": true, "skills_count": {const}}}}}'
            put(line, "invalid_json")
        for line in ["[]", "42", '"str"', "null", "true", "{}", json.dumps([base()])]:
            put(line, "schema")

        def envelope(field: str, value: object, code: str = "schema") -> None:
            ev = base()
            if value is _DROP:
                ev.pop(field)
            else:
                ev[field] = value
            put(self.dump(ev), code)

        for field in ("specversion", "id", "source", "type", "time", "subject", "data"):
            envelope(field, _DROP)
        for field, value in [
            ("specversion", "0.3"),
            ("specversion", 1.0),
            ("specversion", ""),
            ("id", ""),
            ("id", 123),
            ("source", None),
            ("source", ""),
            ("type", 5),
            ("type", ""),
            ("subject", ""),
            ("subject", None),
            ("subject", 7),
            ("subject", "s" * 257),
            ("time", 1767225600),
            ("time", None),
            ("data", "x"),
            ("data", None),
            ("data", [1]),
        ]:
            envelope(field, value)
        for value in ["post.deleted", "Post.Published", "profile.update", "post.published "]:
            envelope("type", value, "unknown_type")
        day = (self.now - timedelta(days=3)).date().isoformat()
        for value in [
            f"{day}T10:00:00",  # naive
            f"{day}T10:00:00.5",  # naive with fraction
            day,  # date only
            f"{day}T10:00Z",  # no seconds
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-03-01T25:00:00Z",
            "2026-03-01T10:61:00Z",
            f"{day.replace('-', '')}T100000Z",  # ISO 8601 basic format
            f"{day}T10:00:00+0100",  # offset without colon
            f"{day}T10:00:00+01",
            f"{day}T10:00:00+25:00",
            f"{day}T10:00:00 Z",
            f"{day}T10:00:00.Z",
        ]:
            envelope("time", value, "invalid_time")

        def data_error(kind: str, field: str, value: object) -> None:
            ev = base(kind)
            if value is _DROP:
                ev["data"].pop(field, None)
            else:
                ev["data"][field] = value
            put(self.dump(ev), "schema")

        for kind, field in [
            ("post.published", "post_id"),
            ("post.published", "format"),
            ("post.reacted", "author_id"),
            ("post.reacted", "reaction"),
            ("post.commented", "post_id"),
            ("post.shared", "author_id"),
            ("connection.requested", "personalized"),
            ("connection.requested", "recipient_id"),
            ("connection.accepted", "requester_id"),
            ("connection.declined", "requester_id"),
            ("inmail.sent", "recipient_id"),
            ("inmail.replied", "sender_id"),
            ("message.sent", "recipient_id"),
            ("profile.viewed", "degree"),
            ("profile.viewed", "viewed_id"),
            ("search.performed", "kind"),
            ("lead.saved", "lead_id"),
            ("lead.saved", "kind"),
            ("group.joined", "group_id"),
            ("group.posted", "group_id"),
            ("endorsement.given", "skill"),
            ("endorsement.given", "recipient_id"),
            ("follow.started", "followee_id"),
        ]:
            data_error(kind, field, _DROP)
        for kind, field, value in [
            ("post.published", "post_id", 5),
            ("post.published", "post_id", ""),
            ("post.published", "format", "gif"),
            ("post.published", "format", None),
            ("post.reacted", "author_id", ""),
            ("post.reacted", "author_id", "a" * 257),
            ("post.reacted", "author_id", ["u001"]),
            ("post.reacted", "reaction", ""),
            ("post.reacted", "reaction", 1),
            ("post.commented", "author_id", None),
            ("connection.requested", "personalized", "yes"),
            ("connection.requested", "personalized", 1),
            ("connection.accepted", "requester_seniority", "ceo"),
            ("connection.accepted", "acceptor_seniority", ""),
            ("connection.accepted", "acceptor_seniority", 3),
            ("profile.viewed", "degree", 4),
            ("profile.viewed", "degree", 0),
            ("profile.viewed", "degree", True),
            ("profile.viewed", "degree", "4"),
            ("profile.viewed", "degree", 2.0),
            ("profile.viewed", "degree", "second"),
            ("profile.viewed", "degree", None),
            ("search.performed", "kind", "lead"),
            ("search.performed", "kind", "People"),
            ("lead.saved", "kind", "people"),
            ("endorsement.given", "skill", ""),
            ("follow.started", "followee_id", 12),
            ("inmail.replied", "sender_id", {"id": "u1"}),
            ("profile.updated", "photo", 1),
            ("profile.updated", "headline", "yes"),
            ("profile.updated", "experience_count", True),
            ("profile.updated", "experience_count", -1),
            ("profile.updated", "skills_count", 2.0),
            ("profile.updated", "skills_count", "5"),
            ("profile.updated", "featured_count", False),
            ("profile.updated", "recommendations_count", 1.5),
            ("profile.updated", "seniority", "ceo"),
            ("profile.updated", "industry", 7),
        ]:
            data_error(kind, field, value)
        # invalid UTF-8 (lone surrogates become raw bytes with surrogateescape)
        for junk in ("\udcff", "\udcc0\udcaf", "\udced\udca0\udc80", "\udce2\udc82"):
            ev = base("post.reacted")
            put(
                self.dump(ev).replace('"reaction": "', '"reaction": "' + junk, 1),
                "invalid_encoding",
            )
        # also a large, bad line is too_large
        ev = base("post.published")
        ev["data"]["padding"] = "z" * 66000
        ev["data"]["format"] = "gif"
        put(json.dumps(ev), "too_large")


class _Drop:
    pass


_DROP = _Drop()


def offset_time(t: datetime, hours: int, minutes: int) -> str:
    """Format an instant in the given UTC offset (minutes carry the sign of hours)."""
    tz = timezone(timedelta(hours=hours, minutes=minutes))
    local = t.astimezone(tz)
    frac = f".{local.microsecond:06d}" if local.microsecond else ""
    sign = "-" if tz.utcoffset(None) < timedelta(0) else "+"
    total = abs(int(tz.utcoffset(None).total_seconds())) // 60
    return local.strftime("%Y-%m-%dT%H:%M:%S") + frac + f"{sign}{total // 60:02d}:{total % 60:02d}"
