"""Benchmarks: industry, team and everyone's score distributions, and the network graph.

Sorted sets hold each member's latest published score; statistics (count, average,
percentiles, Top-N% rank) are computed from them on demand. Groups below the privacy floor are
refused by the caller (`MIN_GROUP`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from state.keys import Keys

MIN_GROUP = 10  # privacy floor: no aggregate over fewer members (LinkedIn's team SSI rule)


@dataclass(frozen=True)
class Standing:
    """A score's place in a group: the group's size and average, and its Top-N% rank."""

    members: int
    average: float
    top_percent: float


def _s(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


async def record_scores(
    redis: Redis, keys: Keys, entries: Iterable[tuple[str, float, str | None, str | None]]
) -> None:
    """Store latest scores: (user, score, industry, team). Idempotent (ZADD)."""
    async with redis.pipeline(transaction=False) as pipe:
        n = 0
        for user, score, industry, team in entries:
            pipe.zadd(keys.bench_all(), {user: score})
            if industry:
                pipe.zadd(keys.bench_industry(industry), {user: score})
            if team:
                pipe.zadd(keys.bench_team(team), {user: score})
            n += 1
        if n:
            await pipe.execute()


async def record_connections(redis: Redis, keys: Keys, pairs: Iterable[tuple[str, str]]) -> None:
    """Both directions of each accepted connection. Idempotent (SADD)."""
    async with redis.pipeline(transaction=False) as pipe:
        n = 0
        for a, b in pairs:
            pipe.sadd(keys.graph(a), b)
            pipe.sadd(keys.graph(b), a)
            n += 1
        if n:
            await pipe.execute()


def standing_of(score: float, scores: Sequence[float]) -> Standing:
    """Top-N%: the share of the group scoring at least as much (1% = best)."""
    n = len(scores)
    if n == 0:
        return Standing(0, 0.0, 100.0)
    at_least = sum(1 for s in scores if s >= score)
    return Standing(n, sum(scores) / n, max(1.0, round(100.0 * at_least / n, 1)))


def percentile(sorted_scores: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_scores:
        return 0.0
    rank = math.ceil(q / 100 * len(sorted_scores))  # nearest rank, 1-based
    return sorted_scores[max(0, min(len(sorted_scores), rank) - 1)]


async def group_scores(redis: Redis, key: str) -> list[tuple[str, float]]:
    raw: list[Any] = await redis.zrange(key, 0, -1, withscores=True)
    return [(_s(m), float(s)) for m, s in raw]


async def network_scores(redis: Redis, keys: Keys, user: str) -> list[float]:
    """Latest scores of the user's connections that have one."""
    members = [_s(m) for m in await redis.smembers(keys.graph(user))]
    if not members:
        return []
    raw = await redis.zmscore(keys.bench_all(), members)
    return [float(x) for x in raw if x is not None]
