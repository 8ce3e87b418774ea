"""A user's scoring state as plain data, and folding signals into it.

This is the pure mirror of what `state/` keeps in Redis: daily buckets of raw (uncapped) counter
sums, all-time totals and the latest profile snapshot. Caps are applied when scoring, per bucket,
so the state does not depend on the order signals arrive in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scoring.model import Model
from scoring.signals import Signal


@dataclass
class UserState:
    """Everything the scorer needs about one user."""

    buckets: dict[int, dict[str, float]] = field(default_factory=dict)
    totals: dict[str, float] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    profile_order: str = ""

    def add(self, signal: Signal, model: Model) -> None:
        """Fold one signal in (commutative and associative, except snapshots: latest wins)."""
        if signal.profile is not None:
            if signal.order > self.profile_order:
                self.profile = dict(signal.profile)
                self.profile_order = signal.order
            return
        if model.counters[signal.counter].window:
            bucket = self.buckets.setdefault(signal.day, {})
            bucket[signal.counter] = bucket.get(signal.counter, 0.0) + signal.amount
        else:
            self.totals[signal.counter] = self.totals.get(signal.counter, 0.0) + signal.amount

    def window_sum(self, counter: str, model: Model, first_day: int, last_day: int) -> float:
        """The counter over the window, each day capped first."""
        cap = model.counters[counter].cap
        total = 0.0
        for day, bucket in self.buckets.items():
            if first_day <= day <= last_day:
                v = bucket.get(counter, 0.0)
                total += min(v, cap) if cap is not None else v
        return total

    def copy(self) -> UserState:
        return UserState(
            {d: dict(b) for d, b in self.buckets.items()},
            dict(self.totals),
            dict(self.profile) if self.profile is not None else None,
            self.profile_order,
        )


def fold(signals: Iterable[Signal], model: Model) -> dict[str, UserState]:
    """Group signals by user into states."""
    states: dict[str, UserState] = {}
    for s in signals:
        states.setdefault(s.user, UserState()).add(s, model)
    return states
