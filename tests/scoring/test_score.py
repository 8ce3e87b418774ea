"""The v1 scoring model (DESIGN 4) from hand-computed tables, window edges, profiles and advice."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from scoring.aggregate import UserState, fold
from scoring.batch import score_lines
from scoring.events import parse_structured
from scoring.model import PILLARS, load_model
from scoring.score import Action, advise, saturate, score
from scoring.signals import to_signals

MODEL = load_model()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
_ids = itertools.count(1)


def s(x: float, t: float) -> float:
    """DESIGN 4: s(x, t) = 1 - exp(-2x/t), written out independently of the product."""
    return 1.0 - math.exp(-2.0 * x / t)


def at(days_ago: int, hour: int = 10, minute: int = 0) -> str:
    """An RFC 3339 instant `days_ago` UTC days before the clock's day."""
    d = TODAY - timedelta(days=days_ago)
    return f"{d.isoformat()}T{hour:02d}:{minute:02d}:00Z"


def ev(type_: str, subject: str = "u1", time: str | None = None, **data: Any) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"e{next(_ids)}",
            "source": "test",
            "type": type_,
            "time": time or at(0),
            "subject": subject,
            "data": data,
        }
    )


def times(n: int, line_of: Any) -> list[str]:
    return [line_of(i) for i in range(n)]


def points(lines: Sequence[str], user: str = "u1", now: datetime = NOW) -> dict[str, float]:
    """Component points of `user` after scoring `lines` through the batch scorer."""
    result = score_lines(lines, MODEL, now)
    assert not result.errors, result.errors
    state = result.states.get(user, UserState())
    return {c.key: c.points for c in score(state, MODEL, now).components}


def state_of(lines: Sequence[str], user: str = "u1") -> UserState:
    """The same state, folded directly from signals (the streaming path's unit)."""
    signals = [s for ln in lines for s in to_signals(parse_structured(ln, MODEL, NOW), MODEL)]
    return fold(signals, MODEL).get(user, UserState())


def post(i: int = 0, days_ago: int = 0, subject: str = "u1") -> str:
    return ev("post.published", subject, at(days_ago), post_id=f"p{i}", format="text")


def comment_on(author: str, by: str, days_ago: int = 0) -> str:
    return ev("post.commented", by, at(days_ago), post_id="px", author_id=author)


def accept(acceptor: str, requester: str, days_ago: int = 0, **seniority: str) -> str:
    return ev("connection.accepted", acceptor, at(days_ago), requester_id=requester, **seniority)


# ------------------------------------------------------------------------------------ saturation


def test_saturation_at_target_gives_86_47_percent() -> None:
    assert saturate(8, 8) == pytest.approx(0.8646647167633873, abs=1e-12)
    assert saturate(0, 8) == 0.0
    assert saturate(-3, 8) == 0.0
    assert saturate(1e9, 8) == pytest.approx(1.0)


SATURATION = [c for c in MODEL.components if c.kind == "saturation" and c.per is None]


@pytest.mark.parametrize("comp", SATURATION, ids=lambda c: c.key)
def test_each_saturation_component_at_its_target_earns_86_47_percent(comp: Any) -> None:
    (counter, weight), *_ = comp.inputs.items()
    amount = comp.target / weight
    state = UserState()
    cap = MODEL.counters[counter].cap
    if MODEL.counters[counter].window:
        per_day = cap if cap is not None else amount
        day = TODAY.toordinal()
        while amount > 0:  # spread over days so no per-day cap bites
            state.buckets[day] = {counter: min(per_day, amount)}
            amount -= per_day
            day -= 1
    else:
        state.totals[counter] = amount
    got = {c.key: c for c in score(state, MODEL, NOW).components}[comp.key]
    assert got.points == pytest.approx(comp.points * (1 - math.exp(-2)), abs=1e-9)
    assert got.points / got.max_points == pytest.approx(0.8647, abs=5e-5)


# --------------------------------------------------------------------- per-component hand tables

COMPONENT_CASES = [
    # publishing: s(posts, 8), cap 3/day
    ("publishing", [post(0)], 6 * s(1, 8)),
    ("publishing", times(5, lambda i: post(i)), 6 * s(3, 8)),  # 5 on one day count 3
    ("publishing", [*times(3, lambda i: post(i, 0)), *times(2, lambda i: post(i, 1))], 6 * s(5, 8)),
    ("publishing", [*times(4, lambda i: post(i, 0)), post(9, 5)], 6 * s(4, 8)),  # 3 + 1
    ("publishing", times(8, lambda i: post(i, i)), 6 * s(8, 8)),
    # engagement_received: reactions + 3 comments + 5 shares received
    (
        "engagement_received",
        [
            *times(
                10,
                lambda i: ev("post.reacted", f"r{i}", post_id="p", author_id="u1", reaction="like"),
            ),
            *times(5, lambda i: comment_on("u1", f"c{i}")),
            *times(2, lambda i: ev("post.shared", f"s{i}", post_id="p", author_id="u1")),
        ],
        6 * s(10 + 15 + 10, 60),
    ),
    ("engagement_received", times(30, lambda i: comment_on("u1", "c", i % 20)), 6 * s(90, 60)),
    # audience: views received + followers gained + 2 endorsements received
    (
        "audience",
        [
            *times(3, lambda i: ev("profile.viewed", f"v{i}", viewed_id="u1", degree=2)),
            *times(2, lambda i: ev("follow.started", f"f{i}", followee_id="u1")),
            *times(4, lambda i: ev("endorsement.given", f"e{i}", recipient_id="u1", skill="x")),
        ],
        4 * s(3 + 2 + 8, 40),
    ),
    # prospecting: views given weighted 1st .5, 2nd 1, 3rd/out 1.5; cap 60/day weighted
    (
        "prospecting",
        [
            *times(2, lambda i: ev("profile.viewed", viewed_id=f"a{i}", degree=1)),
            *times(2, lambda i: ev("profile.viewed", viewed_id=f"b{i}", degree=2)),
            *times(2, lambda i: ev("profile.viewed", viewed_id=f"c{i}", degree="3")),
            *times(2, lambda i: ev("profile.viewed", viewed_id=f"d{i}", degree="out")),
        ],
        8 * s(1 + 2 + 3 + 3, 100),
    ),
    (
        "prospecting",
        times(50, lambda i: ev("profile.viewed", viewed_id=f"x{i}", degree="out")),
        8 * s(60, 100),
    ),  # 75 weighted on one day, capped at 60
    (
        "prospecting",
        times(50, lambda i: ev("profile.viewed", time=at(i % 2), viewed_id=f"x{i}", degree="out")),
        8 * s(75, 100),
    ),  # 37.5 per day: under the cap
    # searches: people only, cap 10/day
    (
        "searches",
        [
            *times(3, lambda i: ev("search.performed", kind="people")),
            *times(5, lambda i: ev("search.performed", kind="company")),
        ],
        5 * s(3, 30),
    ),
    ("searches", times(12, lambda i: ev("search.performed", kind="people")), 5 * s(10, 30)),
    # leads: leads + accounts, cap 10/day
    (
        "leads",
        [
            ev("lead.saved", lead_id="l1", kind="lead"),
            ev("lead.saved", lead_id="l2", kind="lead"),
            ev("lead.saved", lead_id="a1", kind="account"),
        ],
        4 * s(3, 20),
    ),
    ("leads", times(14, lambda i: ev("lead.saved", lead_id=f"l{i}", kind="lead")), 4 * s(10, 20)),
    # active_days: 8 × d / 28
    ("active_days", [ev("search.performed", kind="company")], 8 / 28),
    ("active_days", times(5, lambda i: ev("search.performed", kind="company")), 8 / 28),
    (
        "active_days",
        times(7, lambda i: ev("group.joined", time=at(i * 3), group_id="g")),
        8 * 7 / 28,
    ),
    ("active_days", times(28, lambda i: ev("group.joined", time=at(i), group_id="g")), 8.0),
    ("active_days", times(35, lambda i: ev("group.joined", time=at(i), group_id="g")), 8.0),
    ("active_days", [comment_on("u1", "someone")], 0.0),  # being commented on is not activity
    # conversations: comments + 1.5 shares given, cap 20/day
    (
        "conversations",
        [
            *times(4, lambda i: comment_on(f"a{i}", "u1")),
            *times(2, lambda i: ev("post.shared", post_id="p", author_id="z")),
        ],
        8 * s(4 + 3, 40),
    ),
    (
        "conversations",
        [
            *times(10, lambda i: comment_on(f"a{i}", "u1")),
            *times(10, lambda i: ev("post.shared", post_id="p", author_id="z")),
        ],
        8 * s(20, 40),
    ),  # 25 on one day, capped at 20
    # reactions: reactions given, cap 50/day
    (
        "reactions",
        times(7, lambda i: ev("post.reacted", post_id="p", author_id="z", reaction="like")),
        4 * s(7, 80),
    ),
    (
        "reactions",
        times(60, lambda i: ev("post.reacted", post_id="p", author_id="z", reaction="like")),
        4 * s(50, 80),
    ),
    # groups: joined + posted, cap 5/day
    (
        "groups",
        [
            *times(2, lambda i: ev("group.joined", group_id="g")),
            *times(2, lambda i: ev("group.posted", time=at(1), group_id="g")),
        ],
        3 * s(4, 10),
    ),
    ("groups", times(8, lambda i: ev("group.posted", group_id="g")), 3 * s(5, 10)),
    # follow_ups: messages sent, cap 30/day
    ("follow_ups", times(6, lambda i: ev("message.sent", recipient_id=f"m{i}")), 6 * s(6, 30)),
    ("follow_ups", times(40, lambda i: ev("message.sent", recipient_id=f"m{i}")), 6 * s(30, 30)),
    # network: connections all time, counting events older than the window
    (
        "network",
        [
            *times(5, lambda i: accept("u1", f"r{i}", 100)),
            *times(5, lambda i: accept(f"a{i}", "u1", 2)),
        ],
        7 * s(10, 500),
    ),
    ("network", times(3, lambda i: accept("u1", f"r{i}", 400)), 7 * s(3, 500)),
]


@pytest.mark.parametrize(
    ("key", "lines", "expected"),
    COMPONENT_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(COMPONENT_CASES)],
)
def test_component_points(key: str, lines: list[str], expected: float) -> None:
    assert points(lines)[key] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("key", "lines", "expected"),
    COMPONENT_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(COMPONENT_CASES)],
)
def test_signal_fold_agrees_with_batch(key: str, lines: list[str], expected: float) -> None:
    comps = {c.key: c.points for c in score(state_of(lines), MODEL, NOW).components}
    assert comps[key] == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------- ratio components


def inmails(sent: int, replies: int, sent_days_ago: int = 0, reply_days_ago: int = 0) -> list[str]:
    return [
        *times(sent, lambda i: ev("inmail.sent", time=at(sent_days_ago), recipient_id=f"i{i}")),
        *times(
            replies, lambda i: ev("inmail.replied", f"i{i}", at(reply_days_ago), sender_id="u1")
        ),
    ]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param([], 0.0, id="nothing"),
        pytest.param(inmails(0, 3), 0.0, id="replies-but-none-sent"),
        pytest.param(inmails(1, 0), 5 * (1 / 11) / 0.3, id="1-sent"),
        pytest.param(inmails(10, 0), 5 * (1 / 20) / 0.3, id="10-sent-0-replies"),
        pytest.param(inmails(10, 2), 5 * (3 / 20) / 0.3, id="10-sent-2-replies"),
        pytest.param(inmails(10, 5), 5.0, id="r-exactly-0.30"),
        pytest.param(inmails(4, 4), 5.0, id="r-above-0.30-capped"),
        pytest.param(inmails(10, 3, sent_days_ago=40), 0.0, id="all-sent-before-window"),
        pytest.param(
            [*inmails(5, 3), *inmails(5, 0, sent_days_ago=40)],
            5 * (4 / 15) / 0.3,
            id="replies-by-reply-time",
        ),
        pytest.param(
            inmails(10, 5, reply_days_ago=30),
            5 * (1 / 20) / 0.3,
            id="replies-before-window-dont-count",
        ),
    ],
)
def test_inmail_response(lines: list[str], expected: float) -> None:
    assert points(lines)["inmail_response"] == pytest.approx(expected, abs=1e-9)


def requests(n: int, days_ago: int = 0) -> list[str]:
    return times(
        n,
        lambda i: ev(
            "connection.requested", time=at(days_ago), recipient_id=f"q{i}", personalized=True
        ),
    )


def accepted_by(n: int, days_ago: int = 0) -> list[str]:
    return times(n, lambda i: accept(f"q{i}", "u1", days_ago))


def declined_by(n: int, offset: int = 0) -> list[str]:
    return times(n, lambda i: ev("connection.declined", f"q{i + offset}", requester_id="u1"))


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param([], 0.0, id="nothing-sent"),
        pytest.param(accepted_by(2), 0.0, id="accepted-but-none-sent-in-window"),
        pytest.param(requests(3), 6 * (1 / 5) / 0.6, id="3-pending"),
        pytest.param([*requests(3), *accepted_by(3)], 6.0, id="all-accepted"),
        pytest.param(
            [*requests(5), *accepted_by(2), *declined_by(2, 2)],
            6 * (3 / 7) / 0.6,
            id="2-accepted-2-declined-1-pending",
        ),
        pytest.param([*requests(4), *declined_by(4)], 6 * (1 / 6) / 0.6, id="all-declined"),
        pytest.param([*requests(8), *accepted_by(4)], 6 * (5 / 10) / 0.6, id="half"),
        pytest.param(
            [*requests(2, 40), *requests(2), *accepted_by(3)], 6.0, id="accepted-by-acceptance-time"
        ),
        pytest.param(
            [*requests(4), *accepted_by(3, 35)], 6 * (1 / 6) / 0.6, id="old-acceptances-dont-count"
        ),
    ],
)
def test_acceptance(lines: list[str], expected: float) -> None:
    assert points(lines)["acceptance"] == pytest.approx(expected, abs=1e-9)


def test_declined_requests_lower_acceptance_like_pending_ones() -> None:
    pending = points(requests(4))["acceptance"]
    declined = points([*requests(4), *declined_by(4)])["acceptance"]
    assert declined == pending < points([*requests(4), *accepted_by(1)])["acceptance"]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param([], 0.0, id="no-connections"),
        pytest.param(times(10, lambda i: accept("u1", f"r{i}")), 0.0, id="no-seniority-known"),
        pytest.param(
            [
                *times(3, lambda i: accept("u1", f"v{i}", requester_seniority="vp")),
                *times(7, lambda i: accept("u1", f"r{i}", requester_seniority="manager")),
            ],
            6.0,
            id="share-exactly-0.30",
        ),
        pytest.param(
            [
                accept("u1", "v", requester_seniority="cxo"),
                *times(9, lambda i: accept("u1", f"r{i}", requester_seniority="entry")),
            ],
            6 * 0.1 / 0.3,
            id="share-0.10",
        ),
        pytest.param(
            [
                accept("u1", "v", 300, requester_seniority="director"),
                accept("u1", "w", 5, requester_seniority="senior"),
            ],
            6.0,
            id="all-time-share-0.5",
        ),
        # u1 as requester: the acceptor's seniority is what matters for u1
        pytest.param(
            [
                *times(
                    2,
                    lambda i: accept(
                        f"a{i}", "u1", acceptor_seniority="owner", requester_seniority="entry"
                    ),
                ),
                *times(
                    8,
                    lambda i: accept(
                        f"b{i}", "u1", acceptor_seniority="entry", requester_seniority="partner"
                    ),
                ),
            ],
            6 * 0.2 / 0.3,
            id="requester-side-uses-acceptor-seniority",
        ),
        pytest.param(
            [
                accept("u1", f"v{i}", requester_seniority=sen)
                for i, sen in enumerate(["director", "vp", "cxo", "owner", "partner"])
            ]
            + [
                accept("u1", f"n{i}", requester_seniority=sen)
                for i, sen in enumerate(["entry", "senior", "manager", "training", "unpaid"] * 4)
            ],
            6 * (5 / 25) / 0.3,
            id="default-persona-set",
        ),
    ],
)
def test_persona_share(lines: list[str], expected: float) -> None:
    assert points(lines)["persona"] == pytest.approx(expected, abs=1e-9)


def test_persona_credits_the_other_side() -> None:
    lines = [accept("a", "b", requester_seniority="vp", acceptor_seniority="entry")]
    assert points(lines, "a")["persona"] == pytest.approx(6.0)  # a's new contact is a VP
    assert points(lines, "b")["persona"] == 0.0  # b's new contact is entry level


# ------------------------------------------------------------------------------------- resonance


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(times(10, lambda i: comment_on("u1", f"c{i}")), 0.0, id="no-posts"),
        pytest.param([post(0)], 0.0, id="post-without-engagement"),
        pytest.param(
            [post(0), post(1, 1), *times(10, lambda i: comment_on("u1", f"c{i}"))],
            5 * s(30 / 2, 15),
            id="2-posts-30-engagement",
        ),
        pytest.param(
            [
                post(0),
                ev("post.reacted", "r", post_id="p", author_id="u1", reaction="like"),
                comment_on("u1", "c"),
                ev("post.shared", "h", post_id="p", author_id="u1"),
            ],
            5 * s(9, 15),
            id="weighted-like-brand",
        ),
        pytest.param(
            [*times(5, lambda i: post(i)), *times(15, lambda i: comment_on("u1", f"c{i}"))],
            5 * s(45 / 3, 15),
            id="posts-after-daily-cap",
        ),
        pytest.param(
            [post(0, 40), *times(10, lambda i: comment_on("u1", f"c{i}"))],
            0.0,
            id="only-post-before-window",
        ),
    ],
)
def test_resonance(lines: list[str], expected: float) -> None:
    assert points(lines)["resonance"] == pytest.approx(expected, abs=1e-9)


# ---------------------------------------------------------------------------------- completeness

FULL_PROFILE = {
    "photo": True,
    "headline": True,
    "summary": True,
    "experience_count": 3,
    "skills_count": 5,
    "featured_count": 1,
    "recommendations_count": 1,
}


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        pytest.param(None, 0.0, id="never-updated"),
        pytest.param({}, 0.0, id="empty-snapshot"),
        pytest.param(FULL_PROFILE, 9.0, id="everything"),
        pytest.param(
            {
                **FULL_PROFILE,
                "experience_count": 12,
                "skills_count": 50,
                "featured_count": 4,
                "recommendations_count": 9,
            },
            9.0,
            id="more-than-enough",
        ),
        pytest.param({"photo": True}, 9 * 0.20, id="photo"),
        pytest.param({"headline": True, "summary": True}, 9 * 0.30, id="headline-summary"),
        pytest.param({"photo": False, "headline": False}, 0.0, id="explicit-false"),
        pytest.param({"experience_count": 1}, 9 * 0.10, id="experience-1"),
        pytest.param({"experience_count": 2}, 9 * 0.10, id="experience-2"),
        pytest.param({"experience_count": 3}, 9 * 0.15, id="experience-3"),
        pytest.param({"skills_count": 3}, 9 * 0.15 * 3 / 5, id="skills-3"),
        pytest.param({"skills_count": 5}, 9 * 0.15, id="skills-5"),
        pytest.param({"skills_count": 0}, 0.0, id="skills-0"),
        pytest.param({"featured_count": 1}, 9 * 0.10, id="featured"),
        pytest.param({"recommendations_count": 2}, 9 * 0.10, id="recommendations"),
        pytest.param(
            {
                "photo": True,
                "experience_count": 1,
                "skills_count": 1,
                "industry": "x",
                "seniority": "vp",
            },
            9 * (0.20 + 0.10 + 0.03),
            id="mixed-partial",
        ),
    ],
)
def test_completeness(profile: dict[str, Any] | None, expected: float) -> None:
    lines = [] if profile is None else [ev("profile.updated", **profile)]
    assert points(lines)["completeness"] == pytest.approx(expected, abs=1e-9)


def test_profile_latest_by_time_wins_regardless_of_order() -> None:
    older_full = ev("profile.updated", time=at(3), **FULL_PROFILE)
    newer_photo = ev("profile.updated", time=at(1), photo=True)
    assert points([older_full, newer_photo])["completeness"] == pytest.approx(1.8)
    assert points([newer_photo, older_full])["completeness"] == pytest.approx(1.8)
    assert state_of([newer_photo, older_full]).profile == {"photo": True}


def test_profile_snapshot_before_the_window_still_counts() -> None:
    assert points([ev("profile.updated", time=at(200), **FULL_PROFILE)])["completeness"] == 9.0


def test_profile_ties_on_time_are_deterministic() -> None:
    a = ev("profile.updated", time=at(1), **FULL_PROFILE)
    b = ev("profile.updated", time=at(1), photo=True)
    forward, backward = points([a, b])["completeness"], points([b, a])["completeness"]
    assert forward == backward
    assert forward in (pytest.approx(9.0), pytest.approx(1.8))
    assert state_of([a, b]).profile == state_of([b, a]).profile


def test_profile_offset_time_orders_by_instant_not_text() -> None:
    # 09:00+02:00 is 07:00Z, earlier than 08:00Z although its text sorts later.
    early = ev("profile.updated", time=f"{TODAY}T09:00:00+02:00", **FULL_PROFILE)
    late = ev("profile.updated", time=f"{TODAY}T08:00:00Z", photo=True)
    assert points([late, early])["completeness"] == pytest.approx(1.8)
    assert points([early, late])["completeness"] == pytest.approx(1.8)


# ---------------------------------------------------------------------------------- window edges

FIRST_DAY = date(2026, 10, 24)  # date(NOW) - 27: the first day of the window
BEFORE = date(2026, 10, 23)  # date(NOW) - 28: the last day outside it


@pytest.mark.parametrize(
    ("time", "counts"),
    [
        pytest.param(f"{FIRST_DAY}T00:00:00Z", True, id="first-day-start"),
        pytest.param(f"{FIRST_DAY}T23:59:59Z", True, id="first-day-end"),
        pytest.param(f"{BEFORE}T23:59:59Z", False, id="day-before-window"),
        pytest.param(f"{BEFORE}T00:00:00Z", False, id="day-before-window-start"),
        pytest.param(f"{TODAY}T00:00:00Z", True, id="today-midnight"),
        pytest.param(f"{TODAY}T12:04:00Z", True, id="later-today-within-tolerance"),
        # UTC date decides: local date is inside, UTC date is outside, and the reverse.
        pytest.param(f"{FIRST_DAY}T01:00:00+02:00", False, id="offset-maps-before-window"),
        pytest.param(f"{BEFORE}T23:30:00-05:00", True, id="offset-maps-into-window"),
    ],
)
def test_window_edges(time: str, counts: bool) -> None:
    got = points([ev("post.published", time=time, post_id="p", format="text")])
    assert got["publishing"] == pytest.approx(6 * s(1, 8) if counts else 0.0, abs=1e-12)
    assert got["active_days"] == pytest.approx(8 / 28 if counts else 0.0, abs=1e-12)


def test_window_follows_the_clock_day_not_the_clock_instant() -> None:
    line = [ev("post.published", time=f"{FIRST_DAY}T00:00:00Z", post_id="p", format="text")]
    late_clock = datetime.combine(TODAY, datetime.max.time(), tzinfo=UTC)
    next_day = datetime.combine(TODAY + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    assert points(line, now=late_clock)["publishing"] > 0
    assert points(line, now=next_day)["publishing"] == 0.0


def test_connections_before_the_window_count_only_all_time() -> None:
    lines = [
        ev("connection.requested", time=at(60), recipient_id="q0", personalized=True),
        accept("q0", "u1", 60, acceptor_seniority="vp"),
    ]
    got = points(lines)
    assert got["network"] == pytest.approx(7 * s(1, 500))
    assert got["persona"] == pytest.approx(6.0)
    assert got["acceptance"] == 0.0
    assert got["active_days"] == 0.0


# ----------------------------------------------------------------------------- self-interactions

SELF = [
    pytest.param(ev("post.commented", post_id="p", author_id="u1"), id="comment-own-post"),
    pytest.param(
        ev("post.reacted", post_id="p", author_id="u1", reaction="like"), id="react-own-post"
    ),
    pytest.param(ev("post.shared", post_id="p", author_id="u1"), id="share-own-post"),
    pytest.param(ev("profile.viewed", viewed_id="u1", degree="out"), id="view-self"),
    pytest.param(ev("endorsement.given", recipient_id="u1", skill="x"), id="endorse-self"),
    pytest.param(ev("follow.started", followee_id="u1"), id="follow-self"),
    pytest.param(
        ev("connection.requested", recipient_id="u1", personalized=True), id="request-self"
    ),
    pytest.param(
        ev(
            "connection.accepted",
            requester_id="u1",
            requester_seniority="vp",
            acceptor_seniority="vp",
        ),
        id="accept-self",
    ),
    pytest.param(ev("connection.declined", requester_id="u1"), id="decline-self"),
    pytest.param(ev("inmail.sent", recipient_id="u1"), id="inmail-self"),
    pytest.param(ev("inmail.replied", sender_id="u1"), id="reply-self"),
    pytest.param(ev("message.sent", recipient_id="u1"), id="message-self"),
]


@pytest.mark.parametrize("line", SELF)
def test_self_interaction_credits_only_the_active_day(line: str) -> None:
    got = points([line])
    assert got.pop("active_days") == pytest.approx(8 / 28)
    assert all(v == 0.0 for v in got.values()), got
    state = state_of([line])
    assert state.totals == {}
    assert state.buckets == {TODAY.toordinal(): {"active": 1.0}}


# ------------------------------------------------------------------------ totals and duplicates


def test_score_is_the_sum_of_pillars_and_pillars_of_components() -> None:
    lines = [
        ev("profile.updated", **FULL_PROFILE),
        post(0),
        post(1, 1),
        *times(20, lambda i: comment_on("u1", f"c{i}", i)),
        *inmails(10, 2),
        *requests(5),
        *accepted_by(2),
        accept("u1", "v", requester_seniority="vp"),
    ]
    result = score(state_of(lines), MODEL, NOW)
    for pillar in PILLARS:
        assert result.pillars[pillar] == pytest.approx(
            sum(c.points for c in result.components if c.pillar == pillar), abs=1e-12
        )
        assert 0 <= result.pillars[pillar] <= 25
    assert result.total == pytest.approx(sum(result.pillars.values()), abs=1e-12)


def test_maximum_score_is_100() -> None:
    state = UserState(
        profile=dict(FULL_PROFILE), totals={"connections": 1e6, "persona_connections": 1e6}
    )
    for k in range(28):
        state.buckets[TODAY.toordinal() - k] = {name: 1e6 for name in MODEL.window_counters}
    result = score(state, MODEL, NOW)
    assert result.total == pytest.approx(100.0, abs=1e-6)
    assert all(v == pytest.approx(25.0, abs=1e-6) for v in result.pillars.values())


def test_duplicate_source_and_id_first_in_file_order_wins() -> None:
    first = json.dumps(
        {
            "specversion": "1.0",
            "id": "dup",
            "source": "s",
            "type": "post.published",
            "time": at(0),
            "subject": "u1",
            "data": {"post_id": "p", "format": "text"},
        }
    )
    second = first.replace('"u1"', '"u2"')
    result = score_lines([first, second], MODEL, NOW)
    assert result.duplicates == 1
    assert result.accepted == 1
    assert "u2" not in result.states
    same_id_other_source = first.replace('"source": "s"', '"source": "t"')
    assert score_lines([first, same_id_other_source], MODEL, NOW).duplicates == 0


def test_every_named_user_is_listed_even_with_zero_score() -> None:
    result = score_lines(
        [comment_on("u1", "u1"), ev("follow.started", "u3", followee_id="u4")], MODEL, NOW
    )
    assert set(result.states) == {"u1", "u3", "u4"}
    assert score(result.states["u4"], MODEL, NOW).total > 0  # one follower gained
    assert score(result.states["u3"], MODEL, NOW).total == pytest.approx(8 / 28)


# ------------------------------------------------------------------------------------------ advice

BASE = [
    ev(
        "profile.updated",
        time=at(10),
        photo=True,
        headline=True,
        experience_count=1,
        skills_count=2,
    ),
    post(1, 3),
    post(2, 6),
    *times(4, lambda i: comment_on("u1", f"c{i}", 3)),
    *times(6, lambda i: ev("profile.viewed", time=at(2), viewed_id=f"v{i}", degree=2)),
    *times(2, lambda i: ev("search.performed", time=at(4), kind="people")),
    *times(3, lambda i: comment_on(f"a{i}", "u1", 5)),
    *times(
        4, lambda i: ev("connection.requested", time=at(8), recipient_id=f"q{i}", personalized=True)
    ),
    accept("q0", "u1", 7),
    *times(3, lambda i: ev("inmail.sent", time=at(9), recipient_id=f"i{i}")),
    accept("u1", "vp0", 40, requester_seniority="vp"),
    *times(3, lambda i: accept("u1", f"r{i}", 50)),
    ev("message.sent", time=at(0, 9), recipient_id="m0"),  # active today already
]

# How a user would really carry out each component's advice today, as events.
DOING_IT: dict[str, list[str]] = {
    "completeness": [
        ev(
            "profile.updated",
            time=at(0, 11),
            photo=True,
            headline=True,
            summary=True,
            experience_count=1,
            skills_count=2,
        )
    ],
    "publishing": [post(50, 0)],
    "engagement_received": times(
        10,
        lambda i: ev(
            "post.reacted", f"x{i}", at(0, 11), post_id="p1", author_id="u1", reaction="like"
        ),
    ),
    "audience": times(
        5, lambda i: ev("profile.viewed", f"y{i}", at(0, 11), viewed_id="u1", degree=3)
    ),
    "prospecting": times(
        10, lambda i: ev("profile.viewed", time=at(0, 11), viewed_id=f"o{i}", degree="out")
    ),
    "searches": times(3, lambda i: ev("search.performed", time=at(0, 11), kind="people")),
    "leads": times(2, lambda i: ev("lead.saved", time=at(0, 11), lead_id=f"l{i}", kind="lead")),
    "conversations": times(5, lambda i: comment_on(f"k{i}", "u1")),
    "reactions": times(
        10,
        lambda i: ev(
            "post.reacted", time=at(0, 11), post_id="p", author_id=f"k{i}", reaction="like"
        ),
    ),
    "groups": times(2, lambda i: ev("group.joined", time=at(0, 11), group_id=f"g{i}")),
    "inmail_response": [
        *times(5, lambda i: ev("inmail.sent", time=at(0, 11), recipient_id=f"n{i}")),
        *times(2, lambda i: ev("inmail.replied", f"n{i}", at(0, 11), sender_id="u1")),
    ],
    "resonance": [post(51, 0), *times(5, lambda i: comment_on("u1", f"z{i}"))],
    "network": times(10, lambda i: accept("u1", f"new{i}")),
    "persona": [accept("u1", "boss", requester_seniority="cxo")],
    "follow_ups": times(5, lambda i: ev("message.sent", time=at(0, 11), recipient_id=f"f{i}")),
}


def _gain_by_component(actions: list[Action]) -> dict[str, float]:
    return {a.component: a.gain for a in actions}


def test_advice_is_ranked_by_gain_and_gains_are_positive() -> None:
    actions = advise(state_of(BASE), MODEL, NOW, limit=0)
    assert len(actions) >= 5
    gains = [a.gain for a in actions]
    assert gains == sorted(gains, reverse=True)
    assert all(g > 0 for g in gains)
    assert all(a.text for a in actions)
    assert advise(state_of(BASE), MODEL, NOW, limit=3) == actions[:3]


@pytest.mark.parametrize("key", sorted(DOING_IT))
def test_advice_gain_equals_the_score_delta_of_doing_it(key: str) -> None:
    base = state_of(BASE)
    before = score(base, MODEL, NOW).total
    after = score(state_of([*BASE, *DOING_IT[key]]), MODEL, NOW).total
    gains = _gain_by_component(advise(base, MODEL, NOW, limit=0))
    if key in gains:
        assert gains[key] == pytest.approx(after - before, abs=1e-9)
    else:  # not advised: doing it would not have helped
        assert after - before <= 0.005


def test_top_action_gain_equals_the_score_delta_of_doing_it() -> None:
    base = state_of(BASE)
    top = advise(base, MODEL, NOW, limit=1)[0]
    before = score(base, MODEL, NOW).total
    after = score(state_of([*BASE, *DOING_IT[top.component]]), MODEL, NOW).total
    assert top.gain == pytest.approx(after - before, abs=1e-9)
    assert top.gain > 0.5


def test_be_active_today_gain_equals_one_active_day() -> None:
    base = [post(1, 2)]
    gains = _gain_by_component(advise(state_of(base), MODEL, NOW, limit=0))
    assert gains["active_days"] == pytest.approx(8 / 28)
    doing = [ev("search.performed", time=at(0, 11), kind="content")]
    delta = points([*base, *doing])["active_days"] - points(base)["active_days"]
    assert delta == pytest.approx(gains["active_days"])


def test_complete_profile_gets_no_completeness_advice() -> None:
    actions = advise(state_of([ev("profile.updated", **FULL_PROFILE)]), MODEL, NOW, limit=0)
    assert "completeness" not in {a.component for a in actions}
    assert actions  # other components still have advice


@pytest.mark.parametrize(
    ("profile", "text", "gain"),
    [
        pytest.param({}, "Add a profile photo", 1.8, id="empty"),
        pytest.param({"photo": True}, "Write a headline", 1.35, id="photo-only"),
        pytest.param(
            {**FULL_PROFILE, "experience_count": 2},
            "List at least three positions",
            0.45,
            id="two-positions",
        ),
        pytest.param(
            {**FULL_PROFILE, "skills_count": 1},
            "List five skills",
            9 * 0.15 * 4 / 5,
            id="one-skill",
        ),
    ],
)
def test_completeness_advice_names_the_most_valuable_item(
    profile: dict[str, Any], text: str, gain: float
) -> None:
    actions = advise(state_of([ev("profile.updated", **profile)]), MODEL, NOW, limit=0)
    (action,) = [a for a in actions if a.component == "completeness"]
    assert action.text == text
    assert action.gain == pytest.approx(gain)


def test_advice_for_a_new_user_is_not_empty_and_is_deterministic() -> None:
    state = state_of([ev("search.performed", kind="company")])
    first = advise(state, MODEL, NOW, limit=0)
    assert first == advise(state.copy(), MODEL, NOW, limit=0)
    assert {a.component for a in first} >= {"completeness", "publishing", "acceptance"}
    assert score(state, MODEL, NOW).total == pytest.approx(8 / 28)  # advice did not mutate state
