"""Properties of the scorer over random valid activity (hypothesis).

Random valid events over ~40 days for a handful of users: bounds hold, input order and
duplicates do not matter, more activity never lowers a saturating component, and the
windowed components forget what left the window.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.aggregate import UserState, fold
from scoring.batch import records, score_lines
from scoring.events import parse_structured
from scoring.model import PILLARS, SENIORITIES, load_model
from scoring.score import score
from scoring.signals import to_signals

MODEL = load_model()
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
USERS = ("u0", "u1", "u2", "u3", "u4")
WINDOWED = {"network", "persona", "completeness"}  # the components that outlive the window

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

users = st.sampled_from(USERS)
seniorities = st.sampled_from(SENIORITIES)


def _data(type_: str) -> st.SearchStrategy[dict[str, Any]]:
    """Valid `data` for each catalogue type; other users drawn from the same small population."""
    post = st.sampled_from(["p1", "p2", "p3"])
    table: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "profile.updated": st.fixed_dictionaries(
            {},
            optional={
                "photo": st.booleans(),
                "headline": st.booleans(),
                "summary": st.booleans(),
                "experience_count": st.integers(0, 6),
                "skills_count": st.integers(0, 9),
                "featured_count": st.integers(0, 2),
                "recommendations_count": st.integers(0, 3),
                "industry": st.sampled_from(["software", "banking"]),
                "seniority": seniorities,
            },
        ),
        "post.published": st.fixed_dictionaries(
            {"post_id": post, "format": st.sampled_from(["text", "article", "video"])}
        ),
        "post.reacted": st.fixed_dictionaries(
            {"post_id": post, "author_id": users, "reaction": st.just("like")}
        ),
        "post.commented": st.fixed_dictionaries({"post_id": post, "author_id": users}),
        "post.shared": st.fixed_dictionaries({"post_id": post, "author_id": users}),
        "connection.requested": st.fixed_dictionaries(
            {"recipient_id": users, "personalized": st.booleans()}
        ),
        "connection.accepted": st.fixed_dictionaries(
            {"requester_id": users},
            optional={"requester_seniority": seniorities, "acceptor_seniority": seniorities},
        ),
        "connection.declined": st.fixed_dictionaries({"requester_id": users}),
        "inmail.sent": st.fixed_dictionaries({"recipient_id": users}),
        "inmail.replied": st.fixed_dictionaries({"sender_id": users}),
        "message.sent": st.fixed_dictionaries({"recipient_id": users}),
        "profile.viewed": st.fixed_dictionaries(
            {"viewed_id": users, "degree": st.sampled_from([1, 2, 3, "out", "2"])}
        ),
        "search.performed": st.fixed_dictionaries(
            {"kind": st.sampled_from(["people", "company", "content"])}
        ),
        "lead.saved": st.fixed_dictionaries(
            {"lead_id": st.sampled_from(["l1", "l2"]), "kind": st.sampled_from(["lead", "account"])}
        ),
        "group.joined": st.fixed_dictionaries({"group_id": st.just("g1")}),
        "group.posted": st.fixed_dictionaries({"group_id": st.just("g1")}),
        "endorsement.given": st.fixed_dictionaries({"recipient_id": users, "skill": st.just("x")}),
        "follow.started": st.fixed_dictionaries({"followee_id": users}),
    }
    return table[type_]


def _rfc3339(instant: datetime, offset_minutes: int) -> str:
    local = instant.astimezone(timezone(timedelta(minutes=offset_minutes)))
    if offset_minutes == 0:
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    sign = "+" if offset_minutes > 0 else "-"
    hh, mm = divmod(abs(offset_minutes), 60)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{hh:02d}:{mm:02d}"


@st.composite
def events(
    draw: st.DrawFn,
    min_age_s: int = -300,
    max_age_s: int = 40 * 86400,
    types: tuple[str, ...] = tuple(MODEL.events),
) -> dict[str, Any]:
    """One valid event as a dict (without its id), `age` seconds before NOW."""
    type_ = draw(st.sampled_from(types))
    age = draw(st.integers(min_age_s, max_age_s))
    offset = draw(st.sampled_from([0, 0, 60, -300, 330]))
    return {
        "specversion": "1.0",
        "source": "sim",
        "type": type_,
        "time": _rfc3339(NOW - timedelta(seconds=age), offset),
        "subject": draw(users),
        "data": draw(_data(type_)),
    }


def lines_of(evs: list[dict[str, Any]], prefix: str = "e") -> list[str]:
    """JSONL lines with unique ids, so a repeated line is a true duplicate."""
    return [json.dumps({**e, "id": f"{prefix}{i}"}) for i, e in enumerate(evs)]


activity = st.lists(events(), min_size=1, max_size=50)


def out(
    lines: list[str], now: datetime | None = NOW, explain: bool = False
) -> list[dict[str, Any]]:
    result = score_lines(lines, MODEL, now)
    assert not result.errors, result.errors
    return list(records(result, MODEL, explain=explain))


def components(lines: list[str], user: str) -> dict[str, float]:
    state = score_lines(lines, MODEL, NOW).states.get(user, UserState())
    return {c.key: c.points for c in score(state, MODEL, NOW).components}


# --------------------------------------------------------------------------------------- bounds


@SETTINGS
@given(activity)
def test_scores_and_pillars_are_bounded_and_add_up(evs: list[dict[str, Any]]) -> None:
    result = score_lines(lines_of(evs), MODEL, NOW)
    assert not result.errors
    assert result.states
    for state in result.states.values():
        s = score(state, MODEL, NOW)
        assert 0.0 <= s.total <= 100.0
        for pillar in PILLARS:
            assert 0.0 <= s.pillars[pillar] <= 25.0
            in_pillar = [c.points for c in s.components if c.pillar == pillar]
            assert abs(s.pillars[pillar] - sum(in_pillar)) <= 1e-9
        assert abs(s.total - sum(s.pillars.values())) <= 1e-9
        for c in s.components:
            assert 0.0 <= c.points <= c.max_points + 1e-12
    for rec in records(result, MODEL):
        assert 0.0 <= rec["score"] <= 100.0
        assert set(rec["pillars"]) == set(PILLARS)
        assert all(0.0 <= v <= 25.0 for v in rec["pillars"].values())
        assert abs(rec["score"] - sum(rec["pillars"].values())) <= 0.02 + 1e-9


# ---------------------------------------------------------------------- order and duplicates


@SETTINGS
@given(activity, st.randoms(use_true_random=False), st.booleans())
def test_order_and_duplicates_do_not_change_any_output(
    evs: list[dict[str, Any]], rnd: Any, explicit_clock: bool
) -> None:
    lines = lines_of(evs)
    now = NOW if explicit_clock else None
    expected = out(lines, now, explain=True)
    shuffled = list(lines)
    rnd.shuffle(shuffled)
    assert out(shuffled, now, explain=True) == expected
    with_dupes = shuffled + rnd.sample(lines, k=rnd.randint(1, len(lines)))
    rnd.shuffle(with_dupes)
    assert out(with_dupes, now, explain=True) == expected
    assert out(lines + lines, now, explain=True) == expected


@SETTINGS
@given(activity, st.randoms(use_true_random=False))
def test_signals_folded_in_any_order_give_the_batch_states(
    evs: list[dict[str, Any]], rnd: Any
) -> None:
    """The streaming path applies signals in whatever order batches arrive."""
    lines = lines_of(evs)
    signals = [sig for ln in lines for sig in to_signals(parse_structured(ln, MODEL, NOW), MODEL)]
    rnd.shuffle(signals)
    folded = fold(signals, MODEL)
    batch = score_lines(lines, MODEL, NOW).states
    for user, state in folded.items():
        a, b = score(state, MODEL, NOW), score(batch[user], MODEL, NOW)
        assert abs(a.total - b.total) <= 1e-9
        assert {c.key: round(c.points, 9) for c in a.components} == {
            c.key: round(c.points, 9) for c in b.components
        }


# ---------------------------------------------------------------------------------- monotonicity


def _extra(type_: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": type_, "subject": subject, "data": data}


# One more event of a kind, for `target` (the user u0), and the component it feeds.
ONE_MORE = [
    pytest.param(
        "publishing",
        _extra("post.published", "u0", {"post_id": "x", "format": "text"}),
        id="publishing",
    ),
    pytest.param(
        "engagement_received",
        _extra("post.commented", "u1", {"post_id": "x", "author_id": "u0"}),
        id="engagement_received",
    ),
    pytest.param(
        "resonance",
        _extra("post.shared", "u2", {"post_id": "x", "author_id": "u0"}),
        id="resonance-by-engagement",
    ),
    pytest.param(
        "audience",
        _extra("endorsement.given", "u3", {"recipient_id": "u0", "skill": "x"}),
        id="audience",
    ),
    pytest.param(
        "prospecting",
        _extra("profile.viewed", "u0", {"viewed_id": "u1", "degree": 1}),
        id="prospecting",
    ),
    pytest.param("searches", _extra("search.performed", "u0", {"kind": "people"}), id="searches"),
    pytest.param(
        "leads", _extra("lead.saved", "u0", {"lead_id": "x", "kind": "account"}), id="leads"
    ),
    pytest.param(
        "active_days", _extra("search.performed", "u0", {"kind": "content"}), id="active_days"
    ),
    pytest.param(
        "conversations",
        _extra("post.commented", "u0", {"post_id": "x", "author_id": "u4"}),
        id="conversations",
    ),
    pytest.param(
        "reactions",
        _extra("post.reacted", "u0", {"post_id": "x", "author_id": "u4", "reaction": "like"}),
        id="reactions",
    ),
    pytest.param("groups", _extra("group.posted", "u0", {"group_id": "g9"}), id="groups"),
    pytest.param(
        "inmail_response",
        _extra("inmail.replied", "u2", {"sender_id": "u0"}),
        id="inmail_response-by-reply",
    ),
    pytest.param(
        "acceptance",
        _extra("connection.accepted", "u2", {"requester_id": "u0"}),
        id="acceptance-by-acceptance",
    ),
    pytest.param(
        "network", _extra("connection.accepted", "u0", {"requester_id": "u3"}), id="network"
    ),
    pytest.param(
        "persona",
        _extra("connection.accepted", "u0", {"requester_id": "u3", "requester_seniority": "vp"}),
        id="persona-by-persona-connection",
    ),
    pytest.param(
        "follow_ups", _extra("message.sent", "u0", {"recipient_id": "u1"}), id="follow_ups"
    ),
]


@pytest.mark.parametrize(("key", "extra"), ONE_MORE)
@settings(SETTINGS, max_examples=25)
@given(evs=activity, age=st.integers(-300, 40 * 86400))
def test_one_more_event_never_lowers_its_component(
    key: str, extra: dict[str, Any], evs: list[dict[str, Any]], age: int
) -> None:
    lines = lines_of(evs)
    more = {
        "specversion": "1.0",
        "id": "extra",
        "source": "sim",
        "time": _rfc3339(NOW - timedelta(seconds=age), 0),
        **extra,
    }
    before = components(lines, "u0")[key]
    after = components([*lines, json.dumps(more)], "u0")[key]
    assert after >= before - 1e-12


# ------------------------------------------------------------------------------------- window


# Everything on or before date(NOW) - 28, i.e. at least 12 h + 27 days before NOW.
old_activity = st.lists(
    events(min_age_s=27 * 86400 + 12 * 3600 + 1, max_age_s=40 * 86400), min_size=1, max_size=50
)


@SETTINGS
@given(old_activity)
def test_without_recent_activity_only_all_time_components_score(
    evs: list[dict[str, Any]],
) -> None:
    result = score_lines(lines_of(evs), MODEL, NOW)
    assert not result.errors
    for user, state in result.states.items():
        for c in score(state, MODEL, NOW).components:
            if c.key not in WINDOWED:
                assert c.points == 0.0, (user, c)


@SETTINGS
@given(
    st.lists(events(types=tuple(t for t in MODEL.events if t != "inmail.sent")), max_size=50),
    st.lists(events(types=("inmail.sent",)), max_size=15),
)
def test_without_sending_inmail_insights_is_at_most_20(
    evs: list[dict[str, Any]], inmail: list[dict[str, Any]]
) -> None:
    # Add a busy, well-received u0 so the bound is approached, then InMail sent by others only.
    busy = [
        {
            "specversion": "1.0",
            "source": "sim",
            "type": t,
            "time": _rfc3339(NOW - timedelta(days=d), 0),
            "subject": "u0",
            "data": data,
        }
        for d in range(28)
        for t, data in [
            ("post.commented", {"post_id": "p", "author_id": "u1"}),
            ("post.shared", {"post_id": "p", "author_id": "u2"}),
            ("post.reacted", {"post_id": "p", "author_id": "u3", "reaction": "like"}),
            ("group.posted", {"group_id": "g"}),
            ("post.published", {"post_id": "p", "format": "text"}),
            ("post.shared", {"post_id": "p", "author_id": "u0"}),
        ]
    ] + [
        {
            "specversion": "1.0",
            "source": "sim",
            "type": "post.shared",
            "time": _rfc3339(NOW - timedelta(days=d), 0),
            "subject": "u4",
            "data": {"post_id": "p", "author_id": "u0"},
        }
        for d in range(28)
    ]
    others_inmail = [
        {**e, "subject": e["subject"] if e["subject"] != "u0" else "u1"} for e in inmail
    ]
    result = score_lines(lines_of([*busy, *evs, *others_inmail]), MODEL, NOW)
    assert not result.errors
    senders = {e["subject"] for e in others_inmail if e["data"]["recipient_id"] != e["subject"]}
    for user, state in result.states.items():
        if user in senders:
            continue
        insights = score(state, MODEL, NOW).pillars["insights"]
        assert insights <= 20.0 + 1e-9, user
    assert score(result.states["u0"], MODEL, NOW).pillars["insights"] > 15.0
