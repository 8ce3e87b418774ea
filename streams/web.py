"""HTTP API on the worker's web port (DESIGN 3.5): health, readiness, metrics, scores, stats.

Every `/v1` call needs `Authorization: Bearer <token>`; a token's principal is a user id (reads
only that user) or `*`. Tokens are compared in constant time and the tokens file may hold
`sha256:<hex>` digests instead of plain tokens. Errors are JSON, never tracebacks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import web as aioweb
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scoring.events import format_time
from scoring.model import PILLAR_NAMES, PILLARS
from scoring.score import advise, score
from state.benchmarks import (
    MIN_GROUP,
    group_scores,
    network_scores,
    percentile,
    standing_of,
)
from state.codec import parse_published
from state.keys import partition_of
from streams.app import Scorer

log = logging.getLogger("ssi.web")


class TokenError(Exception):
    pass


_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def load_tokens(path: Path) -> list[tuple[bytes, str]]:
    """`TOKEN PRINCIPAL` per line (`#` comments); TOKEN may be `sha256:<hex>`. Stored hashed.

    Errors name the line, never the token. A file that others may read is worth a warning.
    """
    if path.stat().st_mode & 0o077:
        log.warning("the tokens file %s is readable by group or others: chmod 600 it", path)
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise TokenError(f"{path}: line {n}: expected 'TOKEN PRINCIPAL'")
        token, principal = parts
        if token.startswith("sha256:"):
            if not _SHA256_HEX.fullmatch(token[7:]):
                raise TokenError(f"{path}: line {n}: sha256: needs 64 hexadecimal digits")
            digest = bytes.fromhex(token[7:])
        else:
            digest = hashlib.sha256(token.encode()).digest()
        out.append((digest, principal))
    return out


def principal_for(header: str | None, tokens: list[tuple[bytes, str]]) -> str | None:
    """The principal of a bearer token (scheme case-insensitive, RFC 9110), comparing SHA-256
    digests in constant time: every known digest is compared, whether or not one matched."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
    found = None
    for known, principal in tokens:  # no early exit: time does not depend on the match
        if hmac.compare_digest(known, digest):
            found = principal
    return found


@aioweb.middleware
async def json_errors(
    request: aioweb.Request,
    handler: Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]],
) -> aioweb.StreamResponse:
    """aiohttp's own errors (unknown path, wrong method, ...) as JSON like ours, not text."""
    try:
        return await handler(request)
    except aioweb.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        resp = _error(exc.status, code, exc.reason)
        for name in ("Allow",):
            if name in exc.headers:
                resp.headers[name] = exc.headers[name]
        return resp


def _json(status: int, body: dict[str, Any]) -> aioweb.Response:
    return aioweb.Response(status=status, text=json.dumps(body), content_type="application/json")


def _error(status: int, code: str, message: str) -> aioweb.Response:
    return _json(status, {"error": {"code": code, "message": message}})


class Api:
    """The views; installed on the Faust app's aiohttp server."""

    def __init__(self, scorer: Scorer, tokens: list[tuple[bytes, str]]) -> None:
        self.scorer = scorer
        self.tokens = tokens

    def install(self) -> None:
        web = self.scorer.app.web
        app: aioweb.Application = web.web_app  # type: ignore[attr-defined]
        routes = [
            ("/healthz", self.healthz),
            ("/readyz", self.readyz),
            ("/metrics", self.metrics),
            ("/v1/users/{user_id}/score", self.user_score),
            ("/v1/users/{user_id}/history", self.user_history),
            ("/v1/industries/{name}/stats", self.industry_stats),
            ("/v1/teams/{name}/stats", self.team_stats),
        ]
        for path, handler in routes:
            app.router.add_get(path, self._safe(handler))
        app.middlewares.append(json_errors)

    def _safe(
        self, handler: Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]
    ) -> Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]:
        async def wrapped(request: aioweb.Request) -> aioweb.StreamResponse:
            try:
                return await handler(request)
            except Exception as exc:
                log.exception("error in %s", request.path)
                return _error(503, "unavailable", f"backend error: {type(exc).__name__}")

        return wrapped

    def _auth(self, request: aioweb.Request, user: str | None) -> aioweb.Response | None:
        principal = principal_for(request.headers.get("Authorization"), self.tokens)
        if principal is None:
            return _error(401, "unauthorized", "missing or invalid bearer token")
        if principal != "*" and principal != user:
            return _error(403, "forbidden", "this token may not read that resource")
        return None

    async def healthz(self, request: aioweb.Request) -> aioweb.Response:
        return _json(200, {"status": "ok"})

    async def readyz(self, request: aioweb.Request) -> aioweb.Response:
        ready, checks = await self.scorer.is_ready()
        return _json(200 if ready else 503, {"ready": ready, "checks": checks})

    async def metrics(self, request: aioweb.Request) -> aioweb.Response:
        body = generate_latest(self.scorer.metrics.registry)
        resp = aioweb.Response(body=body)
        resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        resp.charset = "utf-8"
        return resp

    async def user_score(self, request: aioweb.Request) -> aioweb.Response:
        user = request.match_info["user_id"]
        denied = self._auth(request, user)
        if denied:
            return denied
        s = self.scorer
        partition = partition_of(user, s.partitions)
        loaded = await s.store.load(partition, [user])
        stored = loaded.get(user)
        if stored is None:
            return _error(404, "not_found", "no activity recorded for this user")
        now = s.now()
        result = score(stored.state, s.model, now)
        pillars: dict[str, Any] = {}
        for p in PILLARS:
            pillars[p] = {
                "name": PILLAR_NAMES[p],
                "score": round(result.pillars[p], 2),
                "components": {
                    c.key: {
                        "value": round(c.value, 4),
                        "points": round(c.points, 2),
                        "max_points": c.max_points,
                    }
                    for c in result.components
                    if c.pillar == p
                },
            }
        published = parse_published(stored.published)[0] if stored.published else None
        industry = (stored.state.profile or {}).get("industry")
        body: dict[str, Any] = {
            "user_id": user,
            "score": round(result.total, 2),
            "published_score": published,
            "pillars": pillars,
            "version": stored.version,
            "model_version": s.model.model_version,
            "as_of": format_time(now),
            "industry": await self._standing(
                s.keys.bench_industry(industry) if industry else None, result.total, industry
            ),
            "network": await self._network(user, result.total),
            "next_best_actions": [
                {
                    "pillar": a.pillar,
                    "component": a.component,
                    "action": a.text,
                    "points": round(a.gain, 2),
                }
                for a in advise(stored.state, s.model, now, limit=3)
            ],
        }
        return _json(200, body)

    async def _standing(self, key: str | None, total: float, name: str | None) -> dict[str, Any]:
        if key is None:
            return {"name": None, "available": False, "reason": "no industry on the profile"}
        scores = [x for _, x in await group_scores(self.scorer.redis, key)]
        if len(scores) < MIN_GROUP:
            return {
                "name": name,
                "available": False,
                "reason": f"fewer than {MIN_GROUP} members",
            }
        st = standing_of(round(total, 2), scores)
        return {
            "name": name,
            "available": True,
            "members": st.members,
            "average": round(st.average, 2),
            "top_percent": st.top_percent,
        }

    async def _network(self, user: str, total: float) -> dict[str, Any]:
        scores = await network_scores(self.scorer.redis, self.scorer.keys, user)
        if len(scores) < MIN_GROUP:
            return {"available": False, "reason": f"fewer than {MIN_GROUP} scored connections"}
        st = standing_of(round(total, 2), scores)
        return {
            "available": True,
            "members": st.members,
            "average": round(st.average, 2),
            "top_percent": st.top_percent,
        }

    async def user_history(self, request: aioweb.Request) -> aioweb.Response:
        user = request.match_info["user_id"]
        denied = self._auth(request, user)
        if denied:
            return denied
        try:
            days = int(request.query.get("days", "28"))
        except ValueError:
            return _error(400, "bad_request", "days must be an integer")
        if not 1 <= days <= 90:
            return _error(400, "bad_request", "days must be between 1 and 90")
        s = self.scorer
        today = s.now().date().toordinal()
        partition = partition_of(user, s.partitions)
        points = await s.store.history(partition, user, today)
        if not points:
            return _error(404, "not_found", "no history for this user")
        out = []
        last: float | None = None
        for d in range(today - 89, today + 1):  # carry the last known score forward
            if d in points:
                last = points[d]
            if d > today - days and last is not None:
                out.append({"date": date.fromordinal(d).isoformat(), "score": last})
        return _json(200, {"user_id": user, "days": days, "history": out})

    async def _group_stats(self, request: aioweb.Request, kind: str) -> aioweb.Response:
        principal = principal_for(request.headers.get("Authorization"), self.tokens)
        if principal is None:
            return _error(401, "unauthorized", "missing or invalid bearer token")
        name = request.match_info["name"]
        s = self.scorer
        key = s.keys.bench_industry(name) if kind == "industry" else s.keys.bench_team(name)
        members = await group_scores(s.redis, key)
        if principal != "*" and principal not in {u for u, _ in members}:
            return _error(403, "forbidden", f"this token may only read its own {kind}")
        if len(members) < MIN_GROUP:
            return _error(
                403, "below_privacy_floor", f"{kind} statistics need at least {MIN_GROUP} members"
            )
        scores = sorted(x for _, x in members)
        pillar_sums = dict.fromkeys(PILLARS, 0.0)
        async with s.redis.pipeline(transaction=False) as pipe:
            for u, _ in members:
                pipe.hget(s.keys.user(partition_of(u, s.partitions), u), "s")
            published = await pipe.execute()
        counted = 0
        for raw in published:
            if raw:
                _, pillars = parse_published(raw.decode() if isinstance(raw, bytes) else raw)
                for p, v in zip(PILLARS, pillars, strict=False):
                    pillar_sums[p] += v
                counted += 1
        return _json(
            200,
            {
                kind: name,
                "members": len(scores),
                "average": round(sum(scores) / len(scores), 2),
                "percentiles": {f"p{q}": percentile(scores, q) for q in (10, 25, 50, 75, 90, 99)},
                "pillar_averages": {
                    p: round(v / counted, 2) if counted else 0.0 for p, v in pillar_sums.items()
                },
            },
        )

    async def industry_stats(self, request: aioweb.Request) -> aioweb.Response:
        return await self._group_stats(request, "industry")

    async def team_stats(self, request: aioweb.Request) -> aioweb.Response:
        return await self._group_stats(request, "team")
