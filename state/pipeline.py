"""Apply → rescore → commit for one partition batch, and the decay sweep: plain functions.

The Faust agents call these; the tests call them directly against a real Redis. Nothing here
knows about Kafka: the caller publishes the returned changes after this returns, i.e. only after
the state they describe is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scoring.events import format_time
from scoring.model import Model
from scoring.score import Score, rounded, score
from state.codec import EventDelta, StoredUser, published_string
from state.store import Commit, StateStore, due_day


@dataclass(slots=True)
class ScoreChange:
    """A score-change event (DESIGN 3.3) before it is serialised."""

    user_id: str
    score: float
    previous_score: float | None
    pillars: dict[str, float]
    version: int
    model_version: str
    cause: str
    as_of: datetime
    event_ids: tuple[str, ...] = ()
    republished: bool = False  # a replay re-sending the stored latest version

    def to_json(self, emitted_at: datetime) -> dict[str, Any]:
        prev = self.previous_score
        return {
            "user_id": self.user_id,
            "score": self.score,
            "previous_score": prev,
            "delta": round(self.score - prev, 2) if prev is not None else self.score,
            "pillars": self.pillars,
            "version": self.version,
            "model_version": self.model_version,
            "cause": self.cause,
            "as_of": format_time(self.as_of),
            "emitted_at": format_time(emitted_at),
            "event_ids": list(self.event_ids),
        }


@dataclass
class BatchOutcome:
    applied: int = 0
    duplicates: int = 0
    replayed: int = 0
    changes: list[ScoreChange] = field(default_factory=list)
    scores: dict[str, Score] = field(default_factory=dict)
    # every user the batch names, as stored after the apply (their profiles feed the benchmarks)
    users: dict[str, StoredUser] = field(default_factory=dict)


def batch_causes(events: Sequence[EventDelta]) -> dict[str, str]:
    """The users of a batch whose every signal came from their own profile snapshot
    (`profile.updated`): their score changes say `cause: profile`; everyone else's `activity`."""
    profile: set[str] = set()
    other: set[str] = set()
    for ev in events:
        for u in ev.users:
            (profile if u[4] else other).add(u[0])
    return dict.fromkeys(profile - other, "profile")


def _previous(published: str | None) -> float | None:
    return float(published.split("|", 1)[0]) if published else None


async def rescore_and_commit(
    store: StateStore,
    partition: int,
    users: dict[str, StoredUser],
    now: datetime,
    cause: str,
    event_ids: dict[str, list[str]] | None = None,
    republish: frozenset[str] = frozenset(),
    causes: dict[str, str] | None = None,
) -> tuple[list[ScoreChange], dict[str, Score]]:
    """Score users at `now`, store what changed, and return the changes to publish.

    `cause` is every change's cause unless `causes` names another one for the user.

    Users in `republish` (named by a redelivered batch) get their stored latest version sent
    again even when unchanged, in case the crash came between storing and publishing it.
    """
    model: Model = store.model
    today = now.date().toordinal()
    commits = []
    scores: dict[str, Score] = {}
    for user, stored in users.items():
        s = score(stored.state, model, now)
        scores[user] = s
        total, _ = rounded(s)
        commits.append(
            Commit(
                user,
                published_string(s.total, s.pillars),
                due_day(stored.state.buckets, model.window_days, today),
                round(total * 100) + 1,
            )
        )
    done = await store.commit(partition, commits, now)
    changes = []
    for c in commits:
        res = done[c.user]
        if not res.changed and c.user not in republish:
            continue
        total, pillars = rounded(scores[c.user])
        prev = res.previous if res.changed else None
        changes.append(
            ScoreChange(
                user_id=c.user,
                score=total,
                previous_score=_previous(prev) if res.changed else None,
                pillars=pillars,
                version=res.version,
                model_version=model.model_version,
                cause=causes.get(c.user, cause) if causes else cause,
                as_of=now,
                event_ids=tuple((event_ids or {}).get(c.user, ())),
                republished=not res.changed,
            )
        )
    return changes, scores


async def process_batch(
    store: StateStore,
    partition: int,
    events: Sequence[EventDelta],
    now: datetime,
    event_ids: dict[str, list[str]] | None = None,
    cause: str = "activity",
) -> BatchOutcome:
    """One atomic apply of a partition batch, then rescore and commit the users it names."""
    res = await store.apply(partition, events, now)
    republish: frozenset[str] = frozenset()
    if res.replayed:
        republish = frozenset(res.users)
    changes, scores = await rescore_and_commit(
        store, partition, res.users, now, cause, event_ids, republish, batch_causes(events)
    )
    return BatchOutcome(res.applied, res.duplicates, res.replayed, changes, scores, res.users)


async def sweep(
    store: StateStore, partition: int, now: datetime, limit: int = 1000
) -> tuple[int, list[ScoreChange]]:
    """Rescore the users whose buckets left the window (cause "decay"). Returns (due, changes)."""
    users = await store.due_users(partition, now.date().toordinal(), limit)
    if not users:
        return 0, []
    loaded = await store.load(partition, users)
    await store.forget_due(partition, [u for u in users if u not in loaded])
    changes, _ = await rescore_and_commit(store, partition, loaded, now, "decay")
    return len(users), changes
