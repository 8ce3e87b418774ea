"""The scoring functions: state + model + clock → score, pillars, components and advice.

Pure and deterministic: `now` is an argument. Values are kept unrounded; rounding to two
decimals happens only at the output edge (`rounded`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from scoring.aggregate import UserState
from scoring.model import PILLARS, Component, Model


class ComponentScore(NamedTuple):
    """One component's input value, points earned and points possible."""

    pillar: str
    key: str
    value: float
    points: float
    max_points: float


@dataclass(frozen=True, slots=True)
class Score:
    """A user's score at an instant. `total` is the sum of `pillars`, which sum the components."""

    total: float
    pillars: dict[str, float]
    components: tuple[ComponentScore, ...]


@dataclass(frozen=True, slots=True)
class Action:
    """A next best action: what to do, which component it feeds, and the points it would add."""

    pillar: str
    component: str
    text: str
    gain: float


def saturate(x: float, target: float) -> float:
    """s(x, t) = 1 − exp(−2x/t): the target earns 86% of the points, more never hurts."""
    if x <= 0:
        return 0.0
    return 1.0 - math.exp(-2.0 * x / target)


def window_days(now: datetime, model: Model) -> tuple[int, int]:
    """First and last UTC date ordinals of the window ending on the clock's day (inclusive)."""
    last = now.date().toordinal()
    return last - model.window_days + 1, last


def counter_values(state: UserState, model: Model, now: datetime) -> dict[str, float]:
    """Every counter's value now: capped window sums, or all-time totals."""
    first, last = window_days(now, model)
    out = {}
    for name, counter in model.counters.items():
        if counter.window:
            out[name] = state.window_sum(name, model, first, last)
        else:
            out[name] = state.totals.get(name, 0.0)
    return out


def profile_fraction(comp: Component, profile: dict[str, object] | None) -> float:
    """The completeness items met by a snapshot, as a weighted fraction."""
    if not profile:
        return 0.0
    frac = 0.0
    for item in comp.items:
        v = profile.get(item.field)
        if isinstance(v, bool):
            frac += item.weight if v else 0.0
        elif isinstance(v, int | float):
            if item.per:
                frac += item.weight * min(v, item.per) / item.per
            elif v >= item.at_least:
                frac += item.weight
    return frac


def component_score(
    comp: Component, values: dict[str, float], profile: dict[str, object] | None
) -> ComponentScore:
    """Points of one component from counter values (and the profile)."""
    if comp.kind == "profile":
        value = profile_fraction(comp, profile)
        fraction = value
    elif comp.kind == "saturation":
        value = sum(w * values[c] for c, w in comp.inputs.items())
        if comp.per is not None:
            per = values[comp.per]
            value = value / per if per > 0 else 0.0
        fraction = saturate(value, comp.target)
    elif comp.kind == "linear":
        value = sum(w * values[c] for c, w in comp.inputs.items())
        fraction = min(1.0, max(0.0, value / comp.full_at))
    else:  # ratio
        den = values[comp.denominator]
        if den <= 0:
            value, fraction = 0.0, 0.0
        else:
            value = (values[comp.numerator] + comp.prior_num) / (den + comp.prior_den)
            fraction = min(1.0, max(0.0, value / comp.goal))
    return ComponentScore(comp.pillar, comp.key, value, comp.points * fraction, comp.points)


def score(state: UserState, model: Model, now: datetime) -> Score:
    """The user's score at `now` under `model`."""
    values = counter_values(state, model, now)
    comps = tuple(component_score(c, values, state.profile) for c in model.components)
    pillars = {p: 0.0 for p in PILLARS}
    for c in comps:
        pillars[c.pillar] += c.points
    return Score(sum(pillars.values()), pillars, comps)


def rounded(s: Score) -> tuple[float, dict[str, float]]:
    """Score and pillars as published: two decimals."""
    return round(s.total, 2), {p: round(v, 2) for p, v in s.pillars.items()}


def _profile_action(comp: Component, profile: dict[str, object] | None) -> Action | None:
    best: tuple[float, str] | None = None
    for item in comp.items:
        v = (profile or {}).get(item.field)
        if item.per:
            n = v if isinstance(v, int) and not isinstance(v, bool) else 0
            if n < item.per:
                gain = comp.points * item.weight * (item.per - n) / item.per
                cand = (gain, item.label)
            else:
                continue
        elif isinstance(v, bool) or v is None:
            if v:
                continue
            cand = (comp.points * item.weight, item.label)
        elif isinstance(v, int | float) and v < item.at_least:
            cand = (comp.points * item.weight, item.label)
        else:
            continue
        if best is None or cand[0] > best[0]:
            best = cand
    if best is None:
        return None
    return Action(comp.pillar, comp.key, best[1][:1].upper() + best[1][1:], best[0])


def advise(state: UserState, model: Model, now: datetime, limit: int = 3) -> list[Action]:
    """Next best actions ranked by the score they would add if done today.

    Each component's `step` is applied to today's bucket of a copy of the state and the whole
    score recomputed, so interactions (caps, ratios, the persona share) are priced honestly.
    """
    base = score(state, model, now).total
    today = now.date().toordinal()
    actions = []
    for comp in model.components:
        if comp.kind == "profile":
            action = _profile_action(comp, state.profile)
            if action is not None and action.gain > 0.005:
                actions.append(action)
            continue
        if not comp.step:
            continue
        trial = state.copy()
        # doing anything today also makes today an active day
        day = trial.buckets.setdefault(today, {})
        day[model.active_counter] = day.get(model.active_counter, 0.0) + 1
        for counter, amount in comp.step.items():
            if model.counters[counter].window:
                bucket = trial.buckets.setdefault(today, {})
                bucket[counter] = bucket.get(counter, 0.0) + amount
            else:
                trial.totals[counter] = trial.totals.get(counter, 0.0) + amount
        gain = score(trial, model, now).total - base
        if gain > 0.005:
            actions.append(Action(comp.pillar, comp.key, comp.advice, gain))
    actions.sort(key=lambda a: (-a.gain, a.component))
    return actions[:limit] if limit else actions
