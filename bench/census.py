"""Redis key census shared by the memory benchmarks: bytes and encodings per key family."""

from __future__ import annotations

from collections import Counter
from typing import Any

from redis.asyncio import Redis

from state.keys import Keys


def key_family(key: str, keys: Keys) -> str:
    ns = keys.ns
    if key.startswith(ns + "g:"):
        return "graph"
    if key.startswith(ns + "bm:"):
        return "benchmarks"
    if key.startswith(ns + "{" + ns + "d"):
        return "dedupe"
    kind = key.split("}:", 1)[1] if "}:" in key else key
    for prefix, name in (("u:", "user hash"), ("pf:", "profile"), ("h:", "history")):
        if kind.startswith(prefix):
            return name
    return {"due": "due zset", "wm": "watermarks", "n": "user counts"}.get(kind, "other")


async def scan(r: Redis, pattern: str) -> list[bytes]:
    return [k async for k in r.scan_iter(match=pattern, count=2000)]


async def census(r: Redis, keys: Keys) -> dict[str, dict[str, Any]]:
    """MEMORY USAGE (SAMPLES 0: exact) and OBJECT ENCODING of every key, by key family."""
    names = await scan(r, keys.pattern())
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(names), 2000):
        part = names[i : i + 2000]
        async with r.pipeline(transaction=False) as pipe:
            for k in part:
                pipe.memory_usage(k, samples=0)
                pipe.object("encoding", k)
            raw = await pipe.execute()
        for j, k in enumerate(part):
            row = out.setdefault(
                key_family(k.decode("utf-8", "surrogateescape"), keys),
                {"keys": 0, "bytes": 0, "encodings": Counter()},
            )
            row["keys"] += 1
            row["bytes"] += int(raw[2 * j] or 0)
            enc = raw[2 * j + 1]
            row["encodings"][enc.decode() if isinstance(enc, bytes) else str(enc)] += 1
    for row in out.values():
        row["encodings"] = dict(row["encodings"])
        row["avg_bytes_per_key"] = round(row["bytes"] / row["keys"], 1)
    return out
