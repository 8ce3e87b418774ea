"""Event → signals: what an accepted event adds, for every user it affects.

The mapping is driven by the model's event catalogue (credits), so a new event type that only
credits existing counters needs no code. A signal is the unit the state store applies.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from scoring.events import Event
from scoring.model import Model


class Signal(NamedTuple):
    """One addition to one user's state (a tuple: cheap to make, one per credited user).

    `counter` names a model counter; `day` is the UTC date ordinal of the event (windowed
    counters) and is ignored for all-time counters. A profile snapshot has `counter == ""` and
    carries the snapshot in `profile` with its ordering key in `order`.
    """

    user: str
    counter: str
    day: int
    amount: float
    event_id: str
    profile: dict[str, Any] | None = None
    order: str = ""


def profile_order(event: Event) -> str:
    """A sortable key making "latest snapshot by event time" deterministic on ties."""
    stamp = event.time.isoformat(timespec="microseconds")  # UTC, fixed width: sorts as text
    return f"{stamp}\x1f{event.source}\x1f{event.id}"


def is_self_interaction(event: Event, model: Model) -> bool:
    spec = model.events[event.type]
    return spec.counterpart is not None and event.data.get(spec.counterpart) == event.subject


def to_signals(event: Event, model: Model) -> list[Signal]:
    """All signals of one validated event (the actor's active day included)."""
    spec = model.events[event.type]
    day = event.day
    eid = event.id
    out = [Signal(event.subject, model.active_counter, day, 1.0, eid)]
    if spec.snapshot:
        out.append(Signal(event.subject, "", day, 0.0, eid, dict(event.data), profile_order(event)))
    if is_self_interaction(event, model):
        return out
    for credit in spec.credits:
        if any(str(event.data.get(k)) != v for k, v in credit.when.items()):
            continue
        if credit.if_persona is not None and event.data.get(credit.if_persona) not in model.persona:
            continue
        if credit.weight_by is not None:
            weight = credit.weights.get(str(event.data.get(credit.weight_by)), 0.0)
        else:
            weight = credit.weight
        if weight == 0:
            continue
        user = event.subject if credit.to == "actor" else event.data[credit.to]
        out.append(Signal(user, credit.counter, day, weight, eid))
    return out


def named_users(event: Event, model: Model) -> list[str]:
    """The actor and every user the event names (listed by the batch scorer, zero or not)."""
    spec = model.events[event.type]
    return [event.subject, *(event.data[f] for f in spec.user_fields if f in event.data)]
