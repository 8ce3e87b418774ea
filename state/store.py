"""The state store: batch apply, load, commit scores, decay index and history, in Redis.

One `apply` call is one round trip that applies a whole batch of one `ssi.signals` partition
atomically (Lua, by SHA). Idempotency has two layers, both bounded in memory:
  * `dedupe`: event identities `(source, id)` seen within the dedupe horizon, kept in
    generation-sharded hashes, so a duplicate event counts once (first seen wins);
  * per source partition offset watermarks in `apply`: a redelivered signals batch, or an event
    the ingest agent forwarded again after a crash, is skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, NamedTuple

import orjson
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from scoring.model import Model
from state.codec import EventDelta, StoredUser, decode_user
from state.keys import (
    DEDUPE_GENERATIONS,
    DEDUPE_GROUPS,
    DEDUPE_SUBSHARDS,
    HISTORY_DAYS,
    Keys,
)


def _script(name: str) -> str:
    return resources.files("state").joinpath(name).read_text(encoding="utf-8")


def _s(x: Any) -> str:
    return x.decode("utf-8", "surrogateescape") if isinstance(x, bytes) else str(x)


@dataclass
class ApplyResult:
    """What a batch apply did, and the state of every user the batch names."""

    applied: int
    duplicates: int
    replayed: int
    users: dict[str, StoredUser] = field(default_factory=dict)


class Commit(NamedTuple):
    """A score to store for a user: the published string, its decay day and history value."""

    user: str
    published: str
    due_day: int  # -1: nothing will leave the window
    history_value: int  # score × 100 + 1


class Committed(NamedTuple):
    user: str
    version: int
    changed: bool
    previous: str | None


class StateStore:
    """Redis-backed state of the users of any partition (Redis, not Faust)."""

    def __init__(
        self,
        redis: Redis,
        model: Model,
        keys: Keys | None = None,
        dedupe_horizon_seconds: float | None = None,
        require_init: bool = False,
    ) -> None:
        self.redis = redis
        # refuse to apply to a partition whose state was never initialised or was lost
        self.require_init = require_init
        self.model = model
        self.keys = keys or Keys()
        self.horizon = dedupe_horizon_seconds or model.dedupe_horizon_seconds
        self._src = {name: _script(f"{name}.lua") for name in ("apply", "commit", "dedupe")}
        self._sha: dict[str, str] = {}

    async def load_scripts(self) -> None:
        for name, src in self._src.items():
            self._sha[name] = await self.redis.script_load(src)

    async def _call(self, name: str, key: str, arg: bytes) -> Any:
        if name not in self._sha:
            await self.load_scripts()
        try:
            return await self.redis.evalsha(self._sha[name], 1, key, arg)
        except NoScriptError:  # Redis restarted or flushed its script cache
            await self.load_scripts()
            return await self.redis.evalsha(self._sha[name], 1, key, arg)

    def first_day(self, now: datetime) -> int:
        return now.date().toordinal() - self.model.window_days + 1

    async def dedupe(
        self, sightings: Sequence[tuple[str, str, str]], processing_time: float
    ) -> list[int]:
        """First-seen check of `(fingerprint, "partition:offset", content hash)` triples.

        Returns per sighting: 0 new, 1 a redelivery of the first sighting, 2 an exact duplicate,
        3 a conflicting duplicate. One script call per shard group, pipelined.
        """
        if not sightings:
            return []
        gen_len = self.horizon / DEDUPE_GENERATIONS
        g = int(processing_time // gen_len)
        gens = [str(g - i) for i in range(DEDUPE_GENERATIONS + 1)]
        expire_at = int((g + DEDUPE_GENERATIONS + 2) * gen_len)
        groups: dict[int, list[int]] = {}
        for i, (fp, _, _) in enumerate(sightings):
            groups.setdefault(int(fp[-4:], 16) % DEDUPE_GROUPS, []).append(i)
        if "dedupe" not in self._sha:
            await self.load_scripts()
        out = [0] * len(sightings)
        order = sorted(groups)
        for attempt in (0, 1):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for grp in order:
                        base = self.keys.dedupe_base(grp)
                        payload = {
                            "base": base,
                            "gens": gens,
                            "expire_at": expire_at,
                            "subshards": DEDUPE_SUBSHARDS,
                            "events": [list(sightings[i]) for i in groups[grp]],
                        }
                        pipe.evalsha(self._sha["dedupe"], 1, base + "r", orjson.dumps(payload))
                    results = await pipe.execute()
                break
            except NoScriptError:
                if attempt:
                    raise
                await self.load_scripts()
        for grp, res in zip(order, results, strict=True):
            for i, code in zip(groups[grp], res, strict=True):
                out[i] = int(code)
        return out

    async def apply(
        self,
        partition: int,
        events: Sequence[EventDelta],
        now: datetime,
    ) -> ApplyResult:
        """Apply a batch (in offset order) and return every named user's state after it."""
        payload = {
            "base": self.keys.tag(partition),
            "first_day": self.first_day(now),
            "require_init": self.require_init,
            "events": [e.to_wire() for e in events],
        }
        raw = await self._call("apply", self.keys.watermark(partition), orjson.dumps(payload))
        result = ApplyResult(int(raw[0]), int(raw[1]), int(raw[2]))
        for entry in raw[3:]:
            user = _s(entry[0])
            flat = entry[1]
            fields = {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}
            prof = _s(entry[2]) if entry[2] else None
            result.users[user] = decode_user(fields, prof, self.model)
        return result

    async def load(self, partition: int, users: Iterable[str]) -> dict[str, StoredUser]:
        """Users' states in one round trip (pipeline)."""
        names = list(dict.fromkeys(users))
        async with self.redis.pipeline(transaction=False) as pipe:
            for u in names:
                pipe.hgetall(self.keys.user(partition, u))
                pipe.get(self.keys.profile(partition, u))
            raw = await pipe.execute()
        out = {}
        for i, u in enumerate(names):
            flat, prof = raw[2 * i], raw[2 * i + 1]
            if not flat and not prof:
                continue
            fields = {_s(k): _s(v) for k, v in flat.items()}
            out[u] = decode_user(fields, _s(prof) if prof else None, self.model)
        return out

    async def commit(
        self, partition: int, commits: Sequence[Commit], now: datetime
    ) -> dict[str, Committed]:
        """Store scores, bump versions of changed users, update the decay index and history."""
        if not commits:
            return {}
        payload = {
            "base": self.keys.tag(partition),
            "first_day": self.first_day(now),
            "today": now.date().toordinal(),
            "history_days": HISTORY_DAYS,
            "users": [
                {"u": c.user, "s": c.published, "due": c.due_day, "h": c.history_value}
                for c in commits
            ],
        }
        raw = await self._call("commit", self.keys.watermark(partition), orjson.dumps(payload))
        return {
            _s(r[0]): Committed(_s(r[0]), int(r[1]), bool(r[2]), _s(r[3]) if r[3] else None)
            for r in raw
        }

    async def due_users(self, partition: int, today: int, limit: int = 1000) -> list[str]:
        """Users whose oldest bucket has left the window by `today` (cost ∝ users due)."""
        raw = await self.redis.zrangebyscore(
            self.keys.due(partition), "-inf", today, start=0, num=limit
        )
        return [_s(u) for u in raw]

    async def forget_due(self, partition: int, users: Iterable[str]) -> None:
        """Drop users from the decay index (their state is gone)."""
        names = list(users)
        if names:
            await self.redis.zrem(self.keys.due(partition), *names)

    async def mark_initialized(self, partitions: int) -> None:
        """Record that every partition's state is complete (a fresh deployment, or a rebuild)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(partitions):
                pipe.hset(self.keys.watermark(p), "init", "1")
            await pipe.execute()

    async def initialized(self, partitions: int) -> bool:
        """Whether every partition's state is there (see `mark_initialized`)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(partitions):
                pipe.hexists(self.keys.watermark(p), "init")
            return all(await pipe.execute())

    async def watermarks(self, partition: int) -> dict[int, int]:
        """Highest applied ssi.activity offset per source partition, for one partition."""
        raw = await self.redis.hgetall(self.keys.watermark(partition))
        return {int(_s(k)[1:]): int(v) for k, v in raw.items() if _s(k).startswith("s")}

    async def users_tracked(self, partitions: int) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(partitions):
                pipe.get(self.keys.users_count(p))
            raw = await pipe.execute()
        return sum(int(x) for x in raw if x is not None)

    async def history(self, partition: int, user: str, today: int) -> dict[int, float]:
        """Stored daily scores: UTC day ordinal → score, for the days the score changed."""
        raw = await self.redis.get(self.keys.history(partition, user))
        if isinstance(raw, str):
            raw = raw.encode("latin-1")
        return decode_history(raw or b"", today)


def decode_history(raw: bytes, today: int | None = None) -> dict[int, float]:
    """History records back into day → score (records of the last HISTORY_DAYS days)."""
    out: dict[int, float] = {}
    for i in range(len(raw) // 4):
        day16, value = struct.unpack_from(">HH", raw, i * 4)
        if value == 0:
            continue
        out_day = day16
        if today is not None:
            # records of the last HISTORY_DAYS days: recover the full ordinal near today
            base = today - (today % 65536)
            out_day = base + day16
            if out_day > today:
                out_day -= 65536
            if out_day <= today - HISTORY_DAYS:
                continue
        out[out_day] = (value - 1) / 100
    return out


def due_day(state_days: Iterable[int], window_days: int, today: int) -> int:
    """The next UTC day on which one of these buckets leaves the window (-1: none)."""
    days = [d for d in state_days if d > today - window_days]
    # a bucket of a later day (an event a few minutes ahead of the clock, after midnight)
    # changes the score when it enters the window; the oldest one when it leaves
    candidates = [d + window_days for d in days if d <= today] + [d for d in days if d > today]
    return min(candidates) if candidates else -1
