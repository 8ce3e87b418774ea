"""Redis key layout: every key name, TTL and hash tag of ssi-stream lives here.

Ownership and atomicity follow the `ssi.signals` partition: all keys of the users a partition
owns share the hash tag `{<ns>p<N>}`, so one Lua call can apply a whole batch of that partition
in one slot of a Redis Cluster (use at least three partitions per cluster node to spread slots).

    <ns>{<ns>pN}:wm            hash    "s<M>" → highest ssi.activity offset of source partition M
                                       applied to partition N's users (idempotency watermark)
    <ns>{<ns>pN}:u:<user>      hash    one field per UTC day ("739575" → "3,,1.5,..." counter
                                       sums in model counter order), "t" all-time totals,
                                       "s" last published score/pillars, "v" version
    <ns>{<ns>pN}:pf:<user>     string  latest profile snapshot ("<order>\\x1e<fields>")
    <ns>{<ns>pN}:h:<user>      string  daily score history: 4-byte records (uint16 day mod
                                       65536, uint16 score × 100 + 1), one per day the score
                                       changed, appended; the last 90 records are kept
    <ns>{<ns>pN}:due           zset    user → UTC day ordinal on which its oldest bucket leaves
                                       the window (decay sweep index)
    <ns>{<ns>pN}:n             string  users tracked in partition N
    <ns>{<ns>dK}:<g>:<s>       hash    first sightings of event identities: fingerprint →
                                       "partition:offset:contenthash", shard group K of 16,
                                       generation g = processing time // (horizon / 4), subshard s;
                                       expires as a whole 6 generations after g
    <ns>bm:ind:<industry>      zset    user → latest score (industry benchmark)
    <ns>bm:team:<team>         zset    user → latest score (team benchmark)
    <ns>bm:all                 zset    user → latest score (everyone)
    <ns>g:<user>               set     the user's connections (network benchmark; reported
                                       separately from per-user memory)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

HISTORY_DAYS = 90  # days of daily score history kept per user
HISTORY_RECORD_BYTES = 4  # uint16 day mod 65536 + uint16 (score × 100 + 1)
DEDUPE_GENERATIONS = 4  # a generation lasts horizon / 4; 5 live generations cover the horizon
DEDUPE_GROUPS = 16  # hash-tag groups (Cluster slots) of the dedupe store
# hashes per group and generation: 16 × 8 = 128 per 6-hour generation hold ~16k events as compact
# listpacks (≤ 128 entries each); fewer, fuller hashes cost less memory per entry and let one
# HMGET look up many identities (measured: 64 → 8 subshards, 230 → 131 B per user)
DEDUPE_SUBSHARDS = 8


def partition_of(user: str, partitions: int) -> int:
    """The `ssi.signals` partition that owns a user: CRC-32 of the UTF-8 id, stable everywhere."""
    return zlib.crc32(user.encode("utf-8")) % partitions


@dataclass(frozen=True)
class Keys:
    """Key names for one namespace (`SSI_TOPIC_PREFIX`-like, e.g. "ssi.")."""

    ns: str = "ssi."

    def tag(self, partition: int) -> str:
        """Hash-tagged base of every key of a partition."""
        return f"{self.ns}{{{self.ns}p{partition}}}:"

    def watermark(self, partition: int) -> str:
        return self.tag(partition) + "wm"

    def user(self, partition: int, user: str) -> str:
        return self.tag(partition) + "u:" + user

    def profile(self, partition: int, user: str) -> str:
        return self.tag(partition) + "pf:" + user

    def history(self, partition: int, user: str) -> str:
        return self.tag(partition) + "h:" + user

    def dedupe_base(self, group: int) -> str:
        return f"{self.ns}{{{self.ns}d{group}}}:"

    def due(self, partition: int) -> str:
        return self.tag(partition) + "due"

    def users_count(self, partition: int) -> str:
        return self.tag(partition) + "n"

    def bench_all(self) -> str:
        return self.ns + "bm:all"

    def bench_industry(self, industry: str) -> str:
        return self.ns + "bm:ind:" + industry

    def bench_team(self, team: str) -> str:
        return self.ns + "bm:team:" + team

    def graph(self, user: str) -> str:
        return self.ns + "g:" + user

    def pattern(self) -> str:
        """Glob matching every key of this namespace (tests, rebuild)."""
        return self.ns + "*"
