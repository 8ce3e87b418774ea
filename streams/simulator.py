"""Realistic synthetic activity: a seeded population and what it does, day by day.

`generate()` is the pure core behind `ssi simulate --out`: the same `(users, seed, days, end)`
always yields the same CloudEvents (structured-mode dicts, sorted by time). `live()` runs the same
population as an endless stream stamped with a caller's clock, for `ssi simulate` to the broker and
`ssi demo`.

The population mixes dormant, light, regular and power users plus a few "top" users. Each has an
industry, a seniority, a team (some of ten or more) and a company, a profile snapshot at the start
and a daily chance of being active. Activity is interactive: posts collect reactions, comments
and shares from others (more for authors with reach); connection requests are accepted, declined
or left pending when their recipient next logs in; InMails get replies the same way. The persona
shares and rates are calibrated so that the default population, scored by the default model,
reproduces LinkedIn's published distribution (DESIGN section 4, "Validity target").
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from itertools import accumulate
from typing import Any

from scoring.errors import InvalidEvent, SsiError
from scoring.events import format_time, parse_time

DEFAULT_DAYS = 35  # a week older than the 28-day window: connections made before it still count
_DAY_MS = 86_400_000
_ACTIONS = (
    "react", "comment", "share", "post", "view", "search", "lead", "request", "inmail",
    "message", "group", "endorse", "follow", "update",
)  # fmt: skip
# Which side of a user's style scales each action (profile updates are not a matter of style).
_STYLE = {
    **dict.fromkeys(("react", "comment", "share", "post", "group"), "content"),
    **dict.fromkeys(("view", "search", "lead", "request", "inmail"), "prospecting"),
    **dict.fromkeys(("message", "endorse", "follow"), "network"),
}


@dataclass(frozen=True, slots=True)
class Persona:
    """A kind of user: how often they log in and what they do once in."""

    name: str
    share: float  # of the population (stratified: exact counts, not draws)
    active: tuple[float, float]  # range of the daily chance of logging in
    rates: dict[str, float]  # mean actions of each kind per active day
    profile: tuple[float, float]  # range of how complete the profile is
    reach: tuple[float, float]  # range of the attention their posts and profile draw
    accept: float  # chance of accepting a pending request; a third of the rest are declined
    reply: float  # chance of replying to a pending InMail
    personalize: float  # share of their connection requests with a note


def _rates(*values: float) -> dict[str, float]:
    return dict(zip(_ACTIONS, values, strict=True))


#  react comment share post view search lead request inmail message group endorse follow update
PERSONAS = (
    Persona("dormant", 0.29, (0.0, 0.05),
            _rates(0.5, 0.03, 0.01, 0.01, 0.3, 0.15, 0.0, 0.08, 0.0, 0.15, 0.02, 0.04, 0.04, 0.01),
            (0.15, 0.65), (0.1, 0.4), 0.45, 0.08, 0.05),
    Persona("light", 0.30, (0.1, 0.3),
            _rates(1.2, 0.15, 0.04, 0.03, 1.0, 0.4, 0.1, 0.2, 0.03, 0.3, 0.04, 0.08, 0.1, 0.02),
            (0.35, 0.85), (0.3, 1.0), 0.5, 0.15, 0.2),
    Persona("regular", 0.31, (0.27, 0.58),
            _rates(2.2, 0.55, 0.13, 0.09, 2.0, 0.9, 0.33, 0.55, 0.22, 0.9, 0.09, 0.13, 0.16, 0.02),
            (0.5, 1.0), (0.6, 1.5), 0.55, 0.22, 0.4),
    Persona("power", 0.085, (0.4, 0.62),
            _rates(1.8, 0.7, 0.18, 0.14, 2.1, 1.0, 0.5, 0.75, 0.3, 0.9, 0.12, 0.15, 0.15, 0.03),
            (0.6, 1.0), (0.8, 2.0), 0.6, 0.3, 0.7),
    Persona("top", 0.015, (0.88, 1.0),
            _rates(3.8, 1.7, 0.42, 0.34, 4.2, 2.1, 1.0, 1.7, 0.7, 2.1, 0.34, 0.34, 0.34, 0.03),
            (0.95, 1.0), (4.0, 7.0), 0.65, 0.35, 0.9),
)  # fmt: skip

INDUSTRIES = (
    "Software", "Financial Services", "Healthcare", "Manufacturing", "Retail",
    "Telecommunications", "Consulting", "Education", "Real Estate", "Logistics",
    "Energy", "Media", "Insurance", "Automotive", "Hospitality",
)  # fmt: skip
_SENIORITY = {
    "entry": 0.15, "senior": 0.26, "manager": 0.2, "director": 0.09, "vp": 0.04, "cxo": 0.025,
    "owner": 0.035, "partner": 0.01, "training": 0.05, "unpaid": 0.04,
}  # fmt: skip
# How attractive each seniority is as a prospect (sales people look for decision makers).
_PROSPECT = {
    "entry": 0.5, "senior": 1.0, "manager": 1.3, "director": 2.0, "vp": 2.5, "cxo": 2.5,
    "owner": 2.0, "partner": 2.0, "training": 0.2, "unpaid": 0.2,
}  # fmt: skip
_OFFSETS = ((-8.0, 0.14), (-6.0, 0.1), (-5.0, 0.18), (0.0, 0.12), (1.0, 0.2), (2.0, 0.06),
            (5.5, 0.1), (8.0, 0.05), (9.0, 0.03), (10.0, 0.02))  # fmt: skip
_DEPARTMENTS = ("Sales", "Marketing", "Engineering", "Customer Success", "Operations", "Finance")
_REGIONS = ("EMEA", "NA", "APAC", "LATAM", "DACH", "Nordics")
_FORMATS = (("text", 0.35), ("image", 0.25), ("article", 0.1), ("video", 0.1),
            ("document", 0.12), ("poll", 0.08))  # fmt: skip
_REACTIONS = (("like", 0.62), ("celebrate", 0.12), ("support", 0.06), ("love", 0.08),
              ("insightful", 0.09), ("funny", 0.03))  # fmt: skip
_SKILLS = (
    "Negotiation", "Account Management", "CRM", "Lead Generation", "B2B", "Strategy",
    "Public Speaking", "Leadership", "SaaS", "Forecasting", "Prospecting", "Marketing",
)  # fmt: skip
_ENGAGE = {"react": "post.reacted", "comment": "post.commented", "share": "post.shared"}
_POST_DAYS = 4  # posts draw engagement for this many days after the day they are published
_INBOX_DAYS = 14  # requests and InMails left unanswered this long are never answered


@dataclass(slots=True)
class SimUser:
    """One simulated member and the state their behaviour depends on."""

    idx: int
    id: str
    persona: str
    industry: str
    seniority: str
    company: str
    team: str
    team_no: int
    offset: float  # hours from UTC of their working day
    active: float
    rates: dict[str, float]
    reach: float
    accept: float
    reply: float
    personalize: float
    profile: dict[str, Any]
    connections: set[int] = field(default_factory=set)
    asked: set[int] = field(default_factory=set)  # people they already sent a request to
    requests: list[tuple[int, int, bool]] = field(default_factory=list)  # (from, day, note)
    inmails: list[tuple[int, int]] = field(default_factory=list)  # (from, day)
    contacts: deque[int] = field(default_factory=lambda: deque(maxlen=30))  # to follow up with
    groups: list[str] = field(default_factory=list)


def _pick(rng: random.Random, pairs: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([p[0] for p in pairs], [p[1] for p in pairs])[0]


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _profile(rng: random.Random, quality: float) -> dict[str, Any]:
    """Profile fields present with a chance that grows with `quality` (0..1)."""
    q = quality
    return {
        "photo": rng.random() < 0.35 + 0.65 * q,
        "headline": rng.random() < 0.45 + 0.55 * q,
        "summary": rng.random() < q,
        "experience_count": max(0, round(rng.gauss(0.5 + 4 * q, 1.0))),
        "skills_count": max(0, round(rng.gauss(12 * q * q, 2.0))),
        "featured_count": max(0, round(rng.gauss(3 * q - 1.6, 1.0))),
        "recommendations_count": max(0, round(rng.gauss(4 * q - 2.2, 1.5))),
    }


def build_population(users: int, seed: int) -> list[SimUser]:
    """The seeded population: personas in exact shares, companies, teams and profiles."""
    if users < 1:
        raise SsiError("simulate: --users must be at least 1")
    rng = random.Random(f"ssi-sim:{seed}:population")
    width = max(5, len(str(users)))
    personas: list[Persona] = []
    for p in PERSONAS[1:]:
        personas += [p] * round(p.share * users)
    personas = personas[:users]
    personas += [PERSONAS[0]] * (users - len(personas))
    rng.shuffle(personas)
    # Teams fill up one after another, so sizes come straight from this draw; about 40% of
    # teams have ten members or more (team statistics need ten).
    team_sizes: list[int] = []
    while sum(team_sizes) < users:
        big = rng.random() < 0.4
        team_sizes.append(rng.randint(10, 24) if big else rng.randint(2, 9))
    teams: list[tuple[str, str, str]] = []  # (team, company, industry)
    units = [f"{d} {r}" for d in _DEPARTMENTS for r in _REGIONS]
    company, industry, names = "", "", list[str]()
    for n in range(len(team_sizes)):
        if not names:
            company = f"Company {n + 1:04d}"
            industry = rng.choice(INDUSTRIES)
            names = rng.sample(units, rng.randint(1, 5))  # distinct team names per company
        teams.append((f"{company} {names.pop()}", company, industry))
    seniorities = list(_SENIORITY)
    sen_weights = list(_SENIORITY.values())
    pop: list[SimUser] = []
    team_no, in_team = 0, 0
    for i, persona in enumerate(personas):
        if in_team == team_sizes[team_no]:
            team_no, in_team = team_no + 1, 0
        in_team += 1
        team, company, industry = teams[team_no]
        if rng.random() < 0.1:  # some work in a different industry than their employer's
            industry = rng.choice(INDUSTRIES)
        # Their own style: more or less content, prospecting and networking than the persona.
        style = {k: rng.lognormvariate(0.0, 0.3) for k in ("content", "prospecting", "network")}
        rates = {a: r * style[_STYLE[a]] if a in _STYLE else r for a, r in persona.rates.items()}
        profile = _profile(rng, rng.uniform(*persona.profile))
        user = SimUser(
            idx=i,
            id=f"u{i + 1:0{width}d}",
            persona=persona.name,
            industry=industry,
            seniority=rng.choices(seniorities, sen_weights)[0],
            company=company,
            team=team,
            team_no=team_no,
            offset=_pick(rng, _OFFSETS),
            active=rng.uniform(*persona.active),
            rates=rates,
            reach=rng.uniform(*persona.reach),
            accept=min(0.97, max(0.05, rng.gauss(persona.accept, 0.1))),
            reply=min(0.9, max(0.0, rng.gauss(persona.reply, 0.05))),
            personalize=persona.personalize,
            profile=profile,
        )
        pop.append(user)
    return pop


# One event before it is dressed: (ms of the day, sequence number, source, type, subject, data).
_Pending = tuple[int, int, str, str, str, dict[str, Any]]


class _Engine:
    """The population's day-by-day behaviour; each `day()` call returns that day's events."""

    def __init__(self, pop: list[SimUser], rng: random.Random, tag: str, scale: float) -> None:
        self.pop = pop
        self.rng = rng
        self.tag = tag
        self.scale = scale  # multiplies every daily login chance (`live` thins big populations)
        self.seq = 0
        self.post_no = 0
        self.day_no = 0
        self.out: list[_Pending] = []
        # Posts of the last few days as (post number, author, weight) with cumulative weights.
        self.posts: deque[list[tuple[int, int, float]]] = deque(maxlen=_POST_DAYS)
        self.pool: list[tuple[int, int, float]] = []
        self.pool_cw: list[float] = []
        # What today's actions change is applied after the day, so answers follow requests.
        self.new_posts: list[tuple[int, int, float]] = []
        self.accepted: list[tuple[SimUser, SimUser]] = []
        self.sent: list[tuple[SimUser, SimUser, bool]] = []
        self.inmails: list[tuple[SimUser, SimUser]] = []
        self.teams: dict[int, list[int]] = {}
        for u in pop:
            self.teams.setdefault(u.team_no, []).append(u.idx)
        self.groups = [f"g{n + 1}" for n in range(max(20, len(pop) // 25))]
        # Prospects: decision makers first, somewhat more the visible ones. Reach: popularity.
        self.prospect_cw = list(
            accumulate(_PROSPECT[u.seniority] * (0.5 + u.reach) ** 0.5 for u in pop)
        )
        self.reach_cw = list(accumulate(u.reach**1.5 for u in pop))

    def _choose(self, cw: list[float]) -> SimUser:
        x = self.rng.random() * cw[-1]
        return self.pop[min(bisect_left(cw, x), len(cw) - 1)]

    def _emit(
        self, ms: int, kind: str, actor: SimUser, data: dict[str, Any], source: str = ""
    ) -> None:
        self.seq += 1
        src = source or ("sim://mobile" if self.rng.random() < 0.4 else "sim://web")
        self.out.append((ms, self.seq, src, kind, actor.id, data))

    def _snapshot(self, u: SimUser) -> dict[str, Any]:
        return {
            **u.profile, "industry": u.industry, "seniority": u.seniority,
            "team": u.team, "company": u.company,
        }  # fmt: skip

    def start(self, lo: int, hi: int) -> list[_Pending]:
        """Everyone's profile snapshot within the first ten minutes of [lo, hi) ms of the day."""
        self.out = []
        span = max(1, min(600_000, hi - lo))
        for u in self.pop:
            self._emit(lo + self.rng.randrange(span), "profile.updated", u, self._snapshot(u))
        return self.out

    def day(self, lo: int, hi: int) -> list[_Pending]:
        """One UTC day's activity with event times in [lo, hi) ms of the day, unsorted."""
        rng = self.rng
        self.out = []
        self.pool = [p for posts in self.posts for p in posts]
        self.pool_cw = list(accumulate(p[2] for p in self.pool))
        for u in self.pop:
            if rng.random() >= u.active * self.scale:
                continue
            local = rng.triangular(7.5, 19.0, 10.0)  # hour of their local working day
            start = int(((local - u.offset) % 24) * 3_600_000)
            if not lo <= start < hi:
                continue
            length = min(int(rng.uniform(0.25, 3.0) * 3_600_000), hi - start - 1)

            def at(start: int = start, length: int = length) -> int:
                return start + rng.randrange(length + 1)

            busy = rng.lognormvariate(-0.1, 0.45)  # some days are busier than others
            n = {k: _poisson(rng, r * busy) for k, r in u.rates.items()}
            self._inbox(u, at)
            self._content(u, n, at)
            self._prospecting(u, n, at)
            self._networking(u, n, at)
        self._settle()
        return self.out

    def _settle(self) -> None:
        for a, b in self.accepted:
            a.connections.add(b.idx)
            b.connections.add(a.idx)
            a.contacts.append(b.idx)
        for a, b, note in self.sent:
            b.requests.append((a.idx, self.day_no, note))
        for a, b in self.inmails:
            b.inmails.append((a.idx, self.day_no))
        self.posts.append(self.new_posts)
        self.new_posts, self.accepted, self.sent, self.inmails = [], [], [], []
        self.day_no += 1

    def _inbox(self, u: SimUser, at: Callable[[], int]) -> None:
        """A logged-in user answers, or ignores for good, what waits for them."""
        rng = self.rng
        fresh = self.day_no - _INBOX_DAYS
        for frm, day, note in u.requests:
            a = self.pop[frm]
            if day < fresh:
                continue
            roll = rng.random()
            accept = min(0.98, u.accept * (1.2 if note else 1.0))
            if roll < accept:
                self._emit(at(), "connection.accepted", u, {
                    "requester_id": a.id, "requester_seniority": a.seniority,
                    "acceptor_seniority": u.seniority,
                })  # fmt: skip
                self.accepted.append((a, u))
            elif roll < accept + (1 - accept) * 0.35:
                self._emit(at(), "connection.declined", u, {"requester_id": a.id})
        u.requests.clear()
        for frm, day in u.inmails:
            if day >= fresh and rng.random() < u.reply:
                self._emit(at(), "inmail.replied", u, {"sender_id": self.pop[frm].id})
                self.pop[frm].contacts.append(u.idx)
        u.inmails.clear()

    def _content(self, u: SimUser, n: dict[str, int], at: Callable[[], int]) -> None:
        """Reactions, comments and shares on recent posts (weighted by reach); own posts."""
        rng, pool, cw = self.rng, self.pool, self.pool_cw
        once: set[tuple[str, int]] = set()  # one reaction and one share per post
        for kind in ("react", "comment", "share"):
            for _ in range(n[kind] if pool else 0):
                post_no, author, _w = pool[min(bisect_left(cw, rng.random() * cw[-1]), len(cw) - 1)]
                if author == u.idx or (kind != "comment" and (kind, post_no) in once):
                    continue
                once.add((kind, post_no))
                data = {"post_id": f"p{self.tag}-{post_no}", "author_id": self.pop[author].id}
                if kind == "react":
                    data["reaction"] = _pick(rng, _REACTIONS)
                self._emit(at(), _ENGAGE[kind], u, data)
        for _ in range(min(n["post"], 3)):
            self.post_no += 1
            data = {"post_id": f"p{self.tag}-{self.post_no}", "format": _pick(rng, _FORMATS)}
            self._emit(at(), "post.published", u, data)
            self.new_posts.append((self.post_no, u.idx, u.reach * rng.lognormvariate(0.0, 0.5)))
        for _ in range(n["group"]):
            if u.groups and rng.random() < 0.6:
                self._emit(at(), "group.posted", u, {"group_id": rng.choice(u.groups)})
            elif len(u.groups) < 12:
                group = rng.choice(self.groups)
                if group not in u.groups:
                    u.groups.append(group)
                    self._emit(at(), "group.joined", u, {"group_id": group})
        if n["update"]:
            self._improve(u)
            self._emit(at(), "profile.updated", u, self._snapshot(u))

    def _prospecting(self, u: SimUser, n: dict[str, int], at: Callable[[], int]) -> None:
        """Profile views, searches, saved leads, connection requests and InMails."""
        rng = self.rng
        for _ in range(n["view"]):
            v = self._choose(self.prospect_cw if rng.random() < 0.7 else self.reach_cw)
            self._emit(at(), "profile.viewed", u, {"viewed_id": v.id, "degree": self._degree(u, v)})
        for _ in range(n["search"]):
            kind = _pick(rng, (("people", 0.65), ("company", 0.22), ("content", 0.13)))
            self._emit(at(), "search.performed", u, {"kind": kind}, "sim://crm")
        for _ in range(n["lead"]):
            v = self._choose(self.prospect_cw)
            if rng.random() < 0.7:
                data = {"lead_id": f"lead-{v.id}", "kind": "lead"}
            else:
                data = {"lead_id": f"account-{v.company}", "kind": "account"}
            self._emit(at(), "lead.saved", u, data, "sim://crm")
        for _ in range(n["request"]):
            v = self._request_target(u)
            if v is u or v.idx in u.connections or v.idx in u.asked or u.idx in v.asked:
                continue
            u.asked.add(v.idx)
            note = rng.random() < u.personalize
            self._emit(
                at(), "connection.requested", u, {"recipient_id": v.id, "personalized": note}
            )
            self.sent.append((u, v, note))
        for _ in range(n["inmail"]):
            v = self._choose(self.prospect_cw)
            if v is not u and v.idx not in u.connections:
                self._emit(at(), "inmail.sent", u, {"recipient_id": v.id}, "sim://crm")
                self.inmails.append((u, v))

    def _networking(self, u: SimUser, n: dict[str, int], at: Callable[[], int]) -> None:
        """Follow-up messages, endorsements and follows."""
        for _ in range(n["message"]):
            known = self._acquaintance(u, follow_up=True)
            if known is not None:
                self._emit(at(), "message.sent", u, {"recipient_id": known.id})
        for _ in range(n["endorse"]):
            known = self._acquaintance(u, follow_up=False)
            if known is not None:
                skill = self.rng.choice(_SKILLS)
                self._emit(at(), "endorsement.given", u, {"recipient_id": known.id, "skill": skill})
        for _ in range(n["follow"]):
            v = self._choose(self.reach_cw)
            if v is not u:
                self._emit(at(), "follow.started", u, {"followee_id": v.id})

    def _request_target(self, u: SimUser) -> SimUser:
        """Whom a connection request goes to: prospects, colleagues or well-known people."""
        roll = self.rng.random()
        if roll < 0.55:
            return self._choose(self.prospect_cw)
        if roll < 0.8:
            return self.pop[self.rng.choice(self.teams[u.team_no])]
        return self._choose(self.reach_cw)

    def _acquaintance(self, u: SimUser, follow_up: bool) -> SimUser | None:
        """Someone they know: a recent contact, a connection or a teammate."""
        rng = self.rng
        if follow_up and u.contacts and rng.random() < 0.6:
            return self.pop[rng.choice(u.contacts)]
        if u.connections and rng.random() < 0.7:
            return self.pop[rng.choice(tuple(u.connections))]
        v = self.pop[rng.choice(self.teams[u.team_no])]
        return v if v is not u else None

    def _degree(self, u: SimUser, v: SimUser) -> int | str:
        """1st degree when connected; otherwise closer within a company or an industry."""
        if v.idx in u.connections:
            return 1
        if v.company == u.company:
            return 2
        if v.industry == u.industry:
            return _pick(self.rng, ((2, 0.5), (3, 0.35), ("out", 0.15)))
        return _pick(self.rng, ((2, 0.25), (3, 0.4), ("out", 0.35)))

    def _improve(self, u: SimUser) -> None:
        p = u.profile
        missing = [k for k in ("photo", "headline", "summary") if not p[k]]
        if missing and self.rng.random() < 0.5:
            p[self.rng.choice(missing)] = True
        else:
            key = self.rng.choice(
                ("experience_count", "skills_count", "featured_count", "recommendations_count")
            )
            p[key] += 1


def _run_tag(*parts: object) -> str:
    """Eight hex digits naming a run, so that ids of different runs never collide."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=4).hexdigest()


def _stamp(day: date, ms: int) -> str:
    s, milli = divmod(ms, 1000)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{day.isoformat()}T{h:02d}:{m:02d}:{s:02d}.{milli:03d}Z"


def _envelopes(
    events: list[_Pending], tag: str, stamp: Callable[[int], str]
) -> Iterator[dict[str, Any]]:
    """Sort one day's events by time and dress them as CloudEvents (attributes in spec order)."""
    events.sort(key=lambda e: (e[0], e[1]))
    for ms, seq, source, kind, subject, data in events:
        yield {
            "specversion": "1.0", "id": f"sim{tag}-{seq}", "source": source, "type": kind,
            "time": stamp(ms), "subject": subject, "data": data,
        }  # fmt: skip


def generate(users: int, seed: int, days: int, end: datetime) -> Iterator[dict[str, Any]]:
    """`days` of the seeded population's activity up to `end`, as CloudEvents sorted by time.

    Deterministic: the same arguments give the same events, ids included. Every event time is
    in [end - days, end]; a naive `end` is taken as UTC. One day is held in memory at a time.
    Bad arguments raise `SsiError` here, before the first event.
    """
    if days < 1:
        raise SsiError("simulate: --days must be at least 1")
    end = (end if end.tzinfo is not None else end.replace(tzinfo=UTC)).astimezone(UTC)
    return _generate(build_population(users, seed), seed, days, end)


def _generate(pop: list[SimUser], seed: int, days: int, end: datetime) -> Iterator[dict[str, Any]]:
    users = len(pop)
    start = end - timedelta(days=days)
    tag = _run_tag(users, seed, days, end.isoformat())
    engine = _Engine(pop, random.Random(f"ssi-sim:{seed}:activity"), tag, 1.0)
    day = start.date()
    while day <= end.date():
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        lo = max(0, int((start - midnight).total_seconds() * 1000))
        hi = min(_DAY_MS, int((end - midnight).total_seconds() * 1000) + 1)
        events = engine.start(lo, hi) if day == start.date() else []
        if hi > lo:
            events += engine.day(lo, hi)
        yield from _envelopes(events, tag, partial(_stamp, day))
        day += timedelta(days=1)


def expected_daily_events(pop: Sequence[SimUser]) -> float:
    """About how many events the population produces per day (a yardstick for `live`)."""
    return sum(u.active * sum(u.rates.values()) for u in pop)


def login_scale(pop: Sequence[SimUser], rate: float) -> float:
    """The factor on daily logins that makes a simulated day last about a day at `rate` events/s.

    1 when the rate is 0 or less (unpaced) or high enough for the whole population.
    """
    natural = expected_daily_events(pop)
    if rate <= 0 or natural <= 0:
        return 1.0
    return min(1.0, rate * 86_400 / natural)


def live(
    users: int, seed: int, rate: float, clock: Callable[[], datetime]
) -> Iterator[dict[str, Any]]:
    """The same population as `generate` acting for ever, each event stamped with `clock()`.

    Pacing is the caller's: this yields as fast as it is pulled. `rate` (events per second the
    caller means to send; 0 or less: unpaced) thins the daily logins when a simulated day at that
    rate would last longer than a real one, so the population's days keep up with the clock's
    days and per-day caps and active days mean what they should. Faster rates compress several
    simulated days into one real day.
    """
    pop = build_population(users, seed)
    first = clock()
    scale = login_scale(pop, rate)
    engine = _Engine(
        pop, random.Random(f"ssi-sim:{seed}:live"), _run_tag("live", seed, first), scale
    )

    def stamp(_ms: int) -> str:
        now = clock()
        return format_time(now if now.tzinfo is not None else now.replace(tzinfo=UTC))

    batch = engine.start(0, _DAY_MS)
    while True:
        yield from _envelopes(batch, engine.tag, stamp)
        batch = engine.day(0, _DAY_MS)


def run_simulate(args: Any) -> int:
    """`ssi simulate`: JSONL to `--out` (a file, or - for stdout) and a summary on stderr."""
    if args.out is None:  # the CLI sends to the broker itself (`live`) when there is no --out
        raise SsiError("simulate: run_simulate writes JSONL: give --out FILE (- for stdout)")
    if args.end:
        try:
            end = parse_time(args.end)
        except InvalidEvent as exc:
            raise SsiError(f"simulate: --end: {exc.message}") from None
    else:
        end = datetime.now(UTC).replace(microsecond=0)
    types: Counter[str] = Counter()
    events = generate(args.users, args.seed, args.days, end)
    if args.out == "-":
        _write(events, sys.stdout, types)
    else:
        try:
            with open(args.out, "w", encoding="utf-8") as fh:
                _write(events, fh, types)
        except OSError as exc:
            raise SsiError(f"simulate: {args.out}: {exc.strerror}") from None
    print(
        f"ssi simulate: {args.users} users, {sum(types.values())} events, {len(types)} types, "
        f"{args.days} days to {format_time(end)}, seed {args.seed} -> {args.out}",
        file=sys.stderr,
    )
    return 0


def _write(events: Iterator[dict[str, Any]], out: Any, types: Counter[str]) -> None:
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    buf: list[str] = []
    for ev in events:
        types[ev["type"]] += 1
        buf.append(dumps(ev))
        if len(buf) >= 4096:
            out.write("\n".join(buf) + "\n")
            buf.clear()
    if buf:
        out.write("\n".join(buf) + "\n")
    out.flush()
