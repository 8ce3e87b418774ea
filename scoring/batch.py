"""The batch reference scorer: JSONL events in, one score per user out.

This is the oracle the streaming pipeline must agree with (DESIGN section 6): same validation,
same duplicate rule (the first valid event with a given `(source, id)` in file order wins), same
model, same clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scoring.aggregate import UserState
from scoring.errors import InvalidEvent
from scoring.events import Event, check_not_future, format_time, parse_structured
from scoring.model import Model
from scoring.score import Score, advise, rounded, score
from scoring.signals import named_users, to_signals


@dataclass
class BatchResult:
    """Folded states of every user named by a valid event, plus what was rejected."""

    now: datetime | None
    states: dict[str, UserState] = field(default_factory=dict)
    errors: list[tuple[int, InvalidEvent]] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0


def score_lines(
    lines: Iterable[bytes | str], model: Model, now: datetime | None = None
) -> BatchResult:
    """Validate, dedupe and fold JSONL lines. Without `now`, the clock is the latest event time."""
    parsed: list[tuple[int, Event]] = []
    errors: list[tuple[int, InvalidEvent]] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n") if isinstance(raw, bytes) else raw.rstrip("\r\n")
        if not line.strip():
            continue  # blank lines separate nothing and mean nothing
        try:
            parsed.append((lineno, parse_structured(line, model, None)))
        except InvalidEvent as exc:
            errors.append((lineno, exc))
    if now is None and parsed:
        now = max(e.time for _, e in parsed)
    result = BatchResult(now)
    if now is None:
        result.errors = errors
        return result
    seen: set[tuple[str, str]] = set()
    for lineno, event in parsed:
        try:
            check_not_future(event.time, now, model)
        except InvalidEvent as exc:
            errors.append((lineno, exc))
            continue
        if event.key in seen:
            result.duplicates += 1
            continue
        seen.add(event.key)
        result.accepted += 1
        for user in named_users(event, model):
            result.states.setdefault(user, UserState())
        for signal in to_signals(event, model):
            result.states[signal.user].add(signal, model)
    errors.sort(key=lambda e: e[0])
    result.errors = errors
    return result


def score_record(
    user: str, state: UserState, model: Model, now: datetime, explain: bool = False
) -> dict[str, Any]:
    """The `ssi score-file` output object of one user."""
    s: Score = score(state, model, now)
    total, pillars = rounded(s)
    out: dict[str, Any] = {
        "user_id": user,
        "score": total,
        "pillars": pillars,
        "as_of": format_time(now),
    }
    if explain:
        out["model_version"] = model.model_version
        out["components"] = explain_components(s)
        out["advice"] = [
            {"pillar": a.pillar, "component": a.component, "text": a.text, "gain": round(a.gain, 2)}
            for a in advise(state, model, now, limit=5)
        ]
    return out


def explain_components(s: Score) -> dict[str, dict[str, dict[str, float]]]:
    """Components grouped by pillar: input value, points earned and points possible."""
    out: dict[str, dict[str, dict[str, float]]] = {p: {} for p in s.pillars}
    for c in s.components:
        out[c.pillar][c.key] = {
            "value": round(c.value, 4),
            "points": round(c.points, 2),
            "max_points": c.max_points,
        }
    return out


def records(result: BatchResult, model: Model, explain: bool = False) -> Iterator[dict[str, Any]]:
    """Output records sorted by user id."""
    if result.now is None:
        return
    for user in sorted(result.states):
        yield score_record(user, result.states[user], model, result.now, explain)
