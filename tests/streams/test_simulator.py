"""The simulator: deterministic, valid, complete, and calibrated to the published distribution.

The calibration checks are the project's validity target (DESIGN section 4): the default
population scored by the batch reference scorer gives an average of 22-34, 35-55% of users at
20 or less and 0.5-3% at 70 or more.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scoring.batch import records, score_lines
from scoring.errors import SsiError
from scoring.events import parse_structured, parse_time
from scoring.model import Model, load_model
from streams.simulator import (
    DEFAULT_DAYS,
    PERSONAS,
    build_population,
    expected_daily_events,
    generate,
    live,
    login_scale,
    run_simulate,
)

END = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
END_TEXT = "2026-11-20T15:30:00Z"


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model()


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    return list(generate(400, 3, DEFAULT_DAYS, END))


def distribution(scores: Iterable[float]) -> tuple[float, float, float]:
    """Mean, share at or below 20 and share at or above 70."""
    s = list(scores)
    return sum(s) / len(s), sum(x <= 20 for x in s) / len(s), sum(x >= 70 for x in s) / len(s)


def assert_published_shape(scores: list[float]) -> None:
    mean, low, high = distribution(scores)
    assert 22 <= mean <= 34, f"mean {mean:.2f}"
    assert 0.35 <= low <= 0.55, f"share <= 20: {low:.3f}"
    assert 0.005 <= high <= 0.03, f"share >= 70: {high:.4f}"


def test_same_seed_same_events() -> None:
    a = list(generate(150, 7, 10, END))
    assert a == list(generate(150, 7, 10, END))
    assert a != list(generate(150, 8, 10, END))


def test_every_event_is_valid_and_every_type_appears(
    events: list[dict[str, object]], model: Model
) -> None:
    for ev in events:
        parse_structured(json.dumps(ev), model, END)
    assert {ev["type"] for ev in events} == set(model.events)


def test_envelopes_sorted_unique_and_inside_the_period(events: list[dict[str, object]]) -> None:
    times = [parse_time(ev["time"]) for ev in events]
    assert times == sorted(times)
    assert END - timedelta(days=DEFAULT_DAYS) <= times[0] and times[-1] <= END
    assert len({ev["id"] for ev in events}) == len(events)
    assert all(str(ev["source"]).startswith("sim://") for ev in events)
    assert all(str(ev["time"]).endswith("Z") for ev in events)


def test_population_shape() -> None:
    pop = build_population(2000, 1)
    assert len({u.id for u in pop}) == 2000
    personas = Counter(u.persona for u in pop)
    for p in PERSONAS[1:]:
        assert personas[p.name] == round(p.share * 2000)
    teams = Counter(u.team for u in pop)
    assert sum(n >= 10 for n in teams.values()) >= 20  # team statistics need ten members
    assert min(teams.values()) < 10
    assert len({u.company for u in pop}) < len(teams)
    assert len({u.industry for u in pop}) > 5
    assert {u.seniority for u in pop} >= {"entry", "director", "vp", "cxo"}


def test_interactions_are_plausible(events: list[dict[str, object]]) -> None:
    pop = {u.id: u for u in build_population(400, 3)}
    kinds = Counter(str(ev["type"]) for ev in events)
    snapshots = [ev for ev in events[:400] if ev["type"] == "profile.updated"]
    assert len(snapshots) == 400  # everyone's profile comes first
    requested, accepted = kinds["connection.requested"], kinds["connection.accepted"]
    assert 0.25 <= accepted / requested <= 0.75
    assert kinds["connection.declined"] > 0
    assert 0.1 <= kinds["inmail.replied"] / kinds["inmail.sent"] <= 0.3
    requests = set()
    for ev in events:
        data = ev["data"]
        assert isinstance(data, dict)
        if ev["type"] == "connection.requested":
            requests.add((ev["subject"], data["recipient_id"]))
        elif ev["type"] == "connection.accepted":
            # an answer always follows its request and carries both sides' seniority
            assert (data["requester_id"], ev["subject"]) in requests
            assert data["requester_seniority"] == pop[data["requester_id"]].seniority
            assert data["acceptor_seniority"] == pop[str(ev["subject"])].seniority
    window_start = (END - timedelta(days=27)).date().isoformat()
    early = [
        ev for ev in events if ev["type"] == "connection.accepted" and ev["time"] < window_start
    ]
    assert early, "some connections predate the 28-day window"


def test_engagement_flows_to_power_users(events: list[dict[str, object]]) -> None:
    pop = {u.id: u for u in build_population(400, 3)}
    received: Counter[str] = Counter()
    for ev in events:
        if ev["type"] in ("post.reacted", "post.commented", "post.shared"):
            data = ev["data"]
            assert isinstance(data, dict)
            received[pop[data["author_id"]].persona] += 1
    share = Counter(u.persona for u in pop.values())
    per_user = {p: received[p] / share[p] for p in share}
    assert per_user["top"] > per_user["power"] > per_user["regular"] > per_user["light"]


@pytest.mark.parametrize("users,seed", [(500, 11), (2000, 2)])
def test_scored_population_matches_published_distribution(
    users: int, seed: int, model: Model
) -> None:
    lines = (json.dumps(ev) for ev in generate(users, seed, DEFAULT_DAYS, END))
    result = score_lines(lines, model, END)
    assert not result.errors
    scores = [r["score"] for r in records(result, model)]
    assert len(scores) == users
    assert_published_shape(scores)


def test_cli_simulate_then_score_file(tmp_path: Path) -> None:
    """The acceptance check: `ssi simulate --users 2000 --out f`, then `ssi score-file f`."""
    out = tmp_path / "events.jsonl"
    sim = subprocess.run(
        [sys.executable, "-m", "streams.cli", "simulate", "--users", "2000", "--seed", "1",
         "--end", END_TEXT, "--out", str(out)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert "2000 users" in sim.stderr and "18 types" in sim.stderr
    scored = subprocess.run(
        [sys.executable, "-m", "streams.cli", "score-file", str(out), "--strict", "--summary"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert "0 rejected" in scored.stderr
    scores = [json.loads(line)["score"] for line in scored.stdout.splitlines()]
    assert len(scores) == 2000
    assert_published_shape(scores)


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = dict(
        users=50, seed=1, days=3, end=END_TEXT, rate=0.0, duration=0.0, out=None
    )
    return argparse.Namespace(**{**base, **kw})


def test_run_simulate_writes_files_only() -> None:
    """`ssi simulate` without --out goes to the broker (streams.cli), never through here."""
    with pytest.raises(SsiError, match="--out"):
        run_simulate(_args())


def test_out_dash_writes_jsonl_to_stdout(capsys: pytest.CaptureFixture[str], model: Model) -> None:
    assert run_simulate(_args(out="-")) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines
    for line in lines:
        parse_structured(line, model, END)
        assert line == json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=False)
    assert captured.err.startswith(f"ssi simulate: 50 users, {len(lines)} events, ")


def test_bad_end_is_a_clear_error() -> None:
    with pytest.raises(SsiError, match="--end"):
        run_simulate(_args(out="-", end="yesterday"))


def test_small_and_naive_inputs() -> None:
    one = list(generate(1, 1, 1, END.replace(tzinfo=None)))
    assert one[0]["type"] == "profile.updated" and one[0]["subject"] == "u00001"
    with pytest.raises(SsiError):
        list(generate(0, 1, 35, END))
    with pytest.raises(SsiError):
        list(generate(10, 1, 0, END))


def test_live_is_endless_valid_and_clock_stamped(model: Model) -> None:
    ticks = itertools.count()
    start = datetime(2026, 3, 1, 8, tzinfo=UTC)

    def clock() -> datetime:
        return start + timedelta(milliseconds=250 * next(ticks))

    stream = live(200, 5, 50.0, clock)
    first = list(itertools.islice(stream, 3000))  # 200 snapshots, then several simulated days
    assert [ev["type"] for ev in first[:200]] == ["profile.updated"] * 200
    assert {ev["subject"] for ev in first[:200]} == {u.id for u in build_population(200, 5)}
    times = [parse_time(ev["time"]) for ev in first]
    assert times == sorted(times) and times[0] > start
    for ev in first:
        parse_structured(json.dumps(ev), model, times[-1])
    assert len({ev["id"] for ev in first}) == len(first)
    assert len({ev["type"] for ev in first}) >= 15


def test_live_thins_logins_at_low_rates(model: Model) -> None:
    """A rate too low for the population's natural volume thins logins; a fixed clock repeats."""
    pop = build_population(300, 2)
    natural = expected_daily_events(pop)
    assert login_scale(pop, 0.0) == 1.0
    assert login_scale(pop, natural) == 1.0  # one simulated day per second: nothing thinned
    assert login_scale(pop, natural / 86_400 / 4) == pytest.approx(0.25)
    fixed = datetime(2026, 3, 1, tzinfo=UTC)
    slow = list(itertools.islice(live(300, 2, 0.001, lambda: fixed), 600))
    assert slow == list(itertools.islice(live(300, 2, 0.001, lambda: fixed), 600))
    for ev in slow:
        parse_structured(json.dumps(ev), model, fixed)
