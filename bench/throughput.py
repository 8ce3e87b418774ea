"""Throughput and end-to-end latency of the scorer against bare Faust and raw aiokafka.

    python -m bench.throughput [--events N] [--rate R] [--duration S]

One run, one machine, its own embedded broker (Tansu) and Redis:

1. Pre-load `<prefix>activity` (8 partitions, keyed by subject) with N simulated events of a
   28-day population (`streams.simulator.generate`, `end` fixed; the scorer's `SSI_CLOCK` is
   that instant, so nothing is rejected as future and every event lands in the window).
2. Drain that same topic, each consumer a fresh process with a fresh consumer group:
   (c) raw aiokafka: assign every partition, `getmany`, `json.loads` each value (the ceiling);
   (b) bare Faust: an agent `async for value in stream: n += 1` on an app built with the
       scorer's own Faust settings and raw serializers;
   (a) the scorer: a real `ssi worker` (ingest + aggregate + Redis + score-change output).
   Faust processes are timed from ready (`/readyz` answers 200: partitions assigned, no
   rebalance) to done, both seen by polling their HTTP port every 50 ms. The scorer is done when
   (i) `ssi_events_consumed_total` summed over labels is N, (ii) the ingest agent has finished
   batches holding N records (`ssi_batch_size_records_sum{agent="ingest"}`, observed only after
   the batch's signals are acknowledged by the broker), and (iii) the aggregate agent has
   finished as many `ssi.signals` records as that topic holds (its end offsets, read once (ii)
   holds, so final) -- observed only after Redis is updated and the score changes are
   acknowledged. This is exact: it needs no idle timeout and no offset commit (which Faust
   only does every second).
3. Latency at a fixed offered load (R events/s for S seconds): the scorer worker, still
   running and warm, gets the next events of the same simulated stream; a consumer in this
   process records when each `score-changes` record arrives and matches it to the produce time
   of the events in its `event_ids` (an event's latency: its first score change). Then a bare
   Faust consume-and-produce agent gets the same events at the same rate on its own topics
   (produce time -> arrival of the forwarded record).

Results go to `bench/results.json` under "throughput" (other keys kept) and a table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.baselines import BARE_COUNT, BARE_RELAY, RAW
from bench.results import RESULTS, save
from streams.config import Settings
from streams.embedded import EmbeddedBroker, EmbeddedRedis, free_port, start_broker, start_redis
from streams.simulator import generate

ROOT = Path(__file__).resolve().parents[1]
KEY = "throughput"
END = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # fixed instant: the simulator's end, SSI_CLOCK
DAYS = 28
SEED = 11
PARTITIONS = 8
SESSION_TIMEOUT = "6"
POLL = 0.05  # seconds between readiness polls of a worker's HTTP port
PROGRESS_POLL = 0.2  # seconds between progress polls (a /metrics scrape costs the worker CPU)
EVENTS_PER_USER_28D = 55  # about what the default population produces in 28 days


# ------------------------------------------------------------------ helpers


def _events(users: int, total: int) -> list[tuple[bytes, bytes, str]]:
    """The first `total` events of a 28-day simulated population: (key, value, id)."""
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    out = []
    for ev in generate(users, SEED, DAYS, END):
        out.append((ev["subject"].encode(), dumps(ev).encode(), ev["id"]))
        if len(out) >= total:
            break
    if len(out) < total:
        raise SystemExit(f"the simulator gave only {len(out)} events; raise --users")
    return out


async def _create_topics(bootstrap: str, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def _preload(
    bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes, str]]
) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    t0 = time.perf_counter()
    try:
        futs = []
        for key, value, _ in records:
            futs.append(await producer.send(topic, value, key=key))
            if len(futs) >= 20000:
                await asyncio.gather(*futs)
                futs.clear()
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return time.perf_counter() - t0


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def _flushall(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await client.flushall()
    finally:
        await client.aclose()


def _metric_sums(text: str) -> dict[str, float]:
    """Prometheus text → {sample name with labels: value}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


def _total(samples: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in samples.items() if k == prefix or k.startswith(prefix + "{"))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    if not s:
        return math.nan
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


@dataclass
class Proc:
    """A child process of the benchmark, stopped by its own pid."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.run_id = uuid.uuid4().hex[:6]
        self.prefix = f"bench{self.run_id}."
        self.broker: EmbeddedBroker | None = None
        self.redis: EmbeddedRedis | None = None
        self.procs: list[Proc] = []
        self.http: aiohttp.ClientSession | None = None
        self.scorer_proc: Proc | None = None

    # -------------------------------------------------------------- processes

    def _env(self, **extra: str) -> dict[str, str]:
        assert self.broker is not None and self.redis is not None
        env = dict(os.environ)
        env.update(
            SSI_BROKER_URL=self.broker.url,
            SSI_REDIS_URL=self.redis.url,
            SSI_TOPIC_PREFIX=self.prefix,
            SSI_SESSION_TIMEOUT=SESSION_TIMEOUT,
            SSI_CLOCK=END.strftime("%Y-%m-%dT%H:%M:%SZ"),
            SSI_LOG_LEVEL="warning",
            SSI_PARTITIONS=str(PARTITIONS),
            PYTHONPATH=str(ROOT),
        )
        env.update(extra)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], port: int | None) -> Proc:
        log = self.tmp / f"{name}.log"
        with open(log, "ab") as fh:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=ROOT,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        p = Proc(name, proc, log, port)
        self.procs.append(p)
        return p

    def _spawn_faust(self, name: str, argv: list[str], group: str, **extra: str) -> Proc:
        port = free_port()
        env = self._env(
            SSI_GROUP_ID=self.prefix + group,
            SSI_WEB_PORT=str(port),
            SSI_DATA_DIR=str(self.tmp / f"faust-{name}"),
            **extra,
        )
        return self._spawn(name, argv, env, port)

    async def _get(self, proc: Proc, path: str) -> tuple[int, str]:
        assert self.http is not None
        try:
            async with self.http.get(proc.url + path, timeout=aiohttp.ClientTimeout(5)) as r:
                return r.status, await r.text()
        except (TimeoutError, aiohttp.ClientError, OSError):
            return 0, ""

    async def _wait_ready(self, proc: Proc, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise SystemExit(f"{proc.name} exited {proc.proc.returncode}:\n{proc.tail()}")
            status, _ = await self._get(proc, "/readyz")
            if status == 200:
                return time.time()
            await asyncio.sleep(POLL)
        raise SystemExit(f"{proc.name} not ready in {timeout} s:\n{proc.tail()}")

    # -------------------------------------------------------------- phases

    async def throughput_raw(self, n: int) -> dict[str, Any]:
        assert self.broker is not None
        env = self._env(
            BENCH_BOOTSTRAP=self.broker.bootstrap,
            BENCH_TOPIC=self.prefix + "activity",
            BENCH_EXPECTED=str(n),
        )
        p = self._spawn("raw", [sys.executable, "-m", "bench.baselines", RAW], env, None)
        while p.alive():
            await asyncio.sleep(0.1)
        if p.proc.returncode != 0:
            raise SystemExit(f"raw consumer failed:\n{p.tail()}")
        line = [x for x in p.log.read_text().splitlines() if x.startswith("{")][-1]
        out = json.loads(line)
        seconds = out["last"] - out["start"]
        return {"events": out["count"], "seconds": round(seconds, 3), "events_per_s": n / seconds}

    def _cpu(self, proc: Proc | None = None) -> dict[str, float]:
        assert self.broker is not None and self.redis is not None
        out = {"broker": _cpu_seconds(self.broker.pid), "redis": _cpu_seconds(self.redis.pid)}
        if proc is not None:
            out[proc.name] = _cpu_seconds(proc.proc.pid)
        return out

    @staticmethod
    def _cpu_used(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, Any]:
        """CPU seconds each process used during a drain, and as a share of one core."""
        return {
            k: {
                "cpu_s": round(after[k] - before[k], 2),
                "cores": round((after[k] - before[k]) / wall, 2),
            }
            for k in before
        }

    def _profile(self, proc: Proc) -> subprocess.Popen[bytes] | None:
        """py-spy on a drain (`--profile DIR`): collapsed stacks in DIR/<name>.txt."""
        if not self.args.profile:
            return None
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out = Path(self.args.profile)
        out.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            [spy, "record", "--pid", str(proc.proc.pid), "--subprocesses", "--rate", "200",
             "--format", "raw", "--nonblocking", "-o", str(out / f"{proc.name}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    @staticmethod
    def _unprofile(spy: subprocess.Popen[bytes] | None) -> None:
        if spy is not None and spy.poll() is None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()

    async def throughput_bare(self, n: int) -> dict[str, Any]:
        p = self._spawn_faust(
            "bare-count",
            [sys.executable, "-m", "bench.baselines", BARE_COUNT],
            "bare-count",
            BENCH_TOPIC=self.prefix + "activity",
        )
        spy = None
        try:
            t0 = await self._wait_ready(p)
            cpu0 = self._cpu(p)
            spy = self._profile(p)
            deadline = time.monotonic() + self.args.timeout
            while time.monotonic() < deadline:
                status, body = await self._get(p, "/bench")
                if status == 200:
                    prog = json.loads(body)
                    if prog["count"] >= n:
                        t1 = time.time()
                        internal = prog["last"] - prog["first"]
                        return {
                            "events": prog["count"],
                            "seconds": round(t1 - t0, 3),
                            "events_per_s": n / (t1 - t0),
                            "first_to_last_events_per_s": n / internal if internal else None,
                            "cpu": self._cpu_used(cpu0, self._cpu(p), t1 - t0),
                        }
                if not p.alive():
                    raise SystemExit(f"bare Faust agent exited:\n{p.tail()}")
                await asyncio.sleep(PROGRESS_POLL)
            raise SystemExit(f"bare Faust agent did not finish in {self.args.timeout} s")
        finally:
            self._unprofile(spy)
            p.stop()

    async def start_scorer(self) -> Proc:
        p = self._spawn_faust(
            "scorer",
            [sys.executable, "-m", "streams.cli", "worker"],
            "scorer",
            **self.args.scorer_env,
        )
        return p

    async def throughput_scorer(self, p: Proc, n: int) -> dict[str, Any]:
        assert self.broker is not None
        t0 = await self._wait_ready(p)
        cpu0 = self._cpu(p)
        spy = self._profile(p)
        try:
            out = await self._drain_scorer(p, n, t0)
            out["cpu"] = self._cpu_used(cpu0, self._cpu(p), out["seconds"])
            return out
        finally:
            self._unprofile(spy)

    async def _drain_scorer(self, p: Proc, n: int, t0: float) -> dict[str, Any]:
        assert self.broker is not None
        deadline = time.monotonic() + self.args.timeout
        signals_total: float | None = None
        ingest_done = math.nan
        samples: dict[str, float] = {}
        while time.monotonic() < deadline:
            status, body = await self._get(p, "/metrics")
            if status == 200:
                samples = _metric_sums(body)
                consumed = _total(samples, "ssi_events_consumed_total")
                ingested = samples.get('ssi_batch_size_records_sum{agent="ingest"}', 0.0)
                aggregated = samples.get('ssi_batch_size_records_sum{agent="aggregate"}', 0.0)
                if consumed >= n and ingested >= n:
                    if signals_total is None:
                        ingest_done = time.time() - t0
                        ends = await _end_offsets(self.broker.bootstrap, self.prefix + "signals")
                        signals_total = float(sum(ends.values()))
                    if aggregated >= signals_total:
                        t1 = time.time()
                        return {
                            "events": int(consumed),
                            "seconds": round(t1 - t0, 3),
                            "events_per_s": n / (t1 - t0),
                            "ingest_done_seconds": round(ingest_done, 3),
                            "signals_records": int(signals_total),
                            "signals_applied": int(_total(samples, "ssi_signals_applied_total")),
                            "score_changes": int(_total(samples, "ssi_score_changes_total")),
                            "ingest_batches": int(
                                samples.get('ssi_batch_size_records_count{agent="ingest"}', 0)
                            ),
                            "aggregate_batches": int(
                                samples.get('ssi_batch_size_records_count{agent="aggregate"}', 0)
                            ),
                            "busy_seconds": _busy(samples),
                        }
            if not p.alive():
                raise SystemExit(f"scorer exited:\n{p.tail()}")
            await asyncio.sleep(PROGRESS_POLL)
        raise SystemExit(
            f"scorer did not finish in {self.args.timeout} s: {samples and _brief(samples)}\n"
            f"{p.tail()}"
        )

    async def latency(
        self,
        in_topic: str,
        out_topic: str,
        records: Sequence[tuple[bytes, bytes, str]],
        ids_of: Any,
    ) -> dict[str, Any]:
        """Offer `records` at the configured rate; match output records to produce times."""
        assert self.broker is not None
        rate = self.args.rate
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.broker.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
        )
        await consumer.start()
        parts = consumer.partitions_for_topic(out_topic) or set()
        tps = [TopicPartition(out_topic, q) for q in parts]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now, before anything is produced
            await consumer.position(tp)
        sent: dict[str, float] = {}
        arrived: dict[str, float] = {}
        outputs = 0
        done_producing = asyncio.Event()

        async def consume() -> None:
            nonlocal outputs
            idle_since: float | None = None
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                now = time.time()
                got = False
                for msgs in batch.values():
                    for m in msgs:
                        got = True
                        outputs += 1
                        for eid in ids_of(m.value):
                            arrived.setdefault(eid, now)
                if done_producing.is_set():
                    if got or idle_since is None:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > self.args.idle:
                        return

        producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap, acks="all")
        await producer.start()
        reader = asyncio.create_task(consume())
        try:
            futs = []
            start = time.monotonic()
            for i, (key, value, eid) in enumerate(records):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent[eid] = time.time()
                futs.append(await producer.send(in_topic, value, key=key))
            await asyncio.gather(*futs)
            offered = len(records) / (time.monotonic() - start)
            done_producing.set()
            await reader
        finally:
            reader.cancel()
            await producer.stop()
            await consumer.stop()
        lat = [arrived[e] - t for e, t in sent.items() if e in arrived]
        return {
            "offered_events": len(records),
            "offered_rate": round(offered, 1),
            "events_with_output": len(lat),
            "output_records": outputs,
            "p50_ms": round(_pct(lat, 50) * 1000, 1),
            "p90_ms": round(_pct(lat, 90) * 1000, 1),
            "p99_ms": round(_pct(lat, 99) * 1000, 1),
            "max_ms": round(max(lat) * 1000, 1) if lat else math.nan,
        }

    # -------------------------------------------------------------- the run

    async def _round(self, r: int, load: Sequence[tuple[bytes, bytes, str]]) -> dict[str, Any]:
        """One drain of each consumer over a freshly pre-loaded topic; Redis starts empty."""
        assert self.broker is not None and self.redis is not None
        self.prefix = f"bench{self.run_id}r{r}."
        flush = subprocess.run(
            ["redis-cli", "-p", str(self.redis.port), "flushall"], capture_output=True
        ) if shutil.which("redis-cli") else None  # fmt: skip
        if flush is None or flush.returncode != 0:
            await _flushall(self.redis.url)
        activity = self.prefix + "activity"
        await _create_topics(self.broker.bootstrap, [activity])
        preload_s = await _preload(self.broker.bootstrap, activity, load)
        _say(f"round {r + 1}: pre-loaded {len(load)} events into {activity} in {preload_s:.1f} s")
        raw = await self.throughput_raw(len(load))
        _say(f"round {r + 1}: raw aiokafka {raw['events_per_s']:.0f} events/s")
        bare = await self.throughput_bare(len(load))
        _say(f"round {r + 1}: bare Faust {bare['events_per_s']:.0f} events/s")
        self.scorer_proc = await self.start_scorer()
        scorer = await self.throughput_scorer(self.scorer_proc, len(load))
        _say(f"round {r + 1}: scorer {scorer['events_per_s']:.0f} events/s")
        return {
            "preload_seconds": round(preload_s, 2),
            "scorer": scorer,
            "bare_faust": bare,
            "raw_aiokafka": raw,
            "scorer_vs_bare_faust": round(scorer["events_per_s"] / bare["events_per_s"], 3),
        }

    async def run(self) -> dict[str, Any]:
        a = self.args
        n = a.events
        n_lat = int(a.rate * a.duration)
        users = a.users or max(3000, math.ceil((n + n_lat) / EVENTS_PER_USER_28D))
        t = time.perf_counter()
        records = _events(users, n + n_lat)
        load, live = records[:n], records[n:]
        gen_s = time.perf_counter() - t
        self.broker = start_broker(data_dir=self.tmp / "broker")
        self.redis = start_redis(data_dir=self.tmp / "redis")
        self.http = aiohttp.ClientSession()
        rounds: list[dict[str, Any]] = []
        try:
            for r in range(a.rounds):
                if self.scorer_proc is not None:
                    self.scorer_proc.stop()
                rounds.append(await self._round(r, load))
            # latency: the last round's scorer, warm, gets the stream's next events
            assert self.scorer_proc is not None
            try:
                lat_scorer = await self.latency(
                    self.prefix + "activity", self.prefix + "score-changes", live, _score_change_ids
                )
            finally:
                self.scorer_proc.stop()
            _say(f"scorer latency: p50 {lat_scorer['p50_ms']} ms p99 {lat_scorer['p99_ms']} ms")
            relay_in, relay_out = self.prefix + "relay-in", self.prefix + "relay-out"
            await _create_topics(self.broker.bootstrap, [relay_in, relay_out])
            relay = self._spawn_faust(
                "bare-relay",
                [sys.executable, "-m", "bench.baselines", BARE_RELAY],
                "bare-relay",
                BENCH_TOPIC=relay_in,
                BENCH_OUT_TOPIC=relay_out,
            )
            try:
                await self._wait_ready(relay)
                lat_bare = await self.latency(relay_in, relay_out, live, _forwarded_id)
            finally:
                relay.stop()
            _say(
                f"bare Faust relay latency: p50 {lat_bare['p50_ms']} ms p99 {lat_bare['p99_ms']} ms"
            )
        finally:
            await self.http.close()
            for p in self.procs:
                p.stop()
            self.redis.close()
            self.broker.close()
        settings = Settings(**_settings_overrides(a.scorer_env))
        eps = {
            k: statistics.median(x[k]["events_per_s"] for x in rounds)
            for k in ("scorer", "bare_faust", "raw_aiokafka")
        }
        return {
            "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": " ".join(["python -m bench.throughput", *a.argv]),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "workload": {
                "events": n,
                "users": users,
                "days": DAYS,
                "partitions": PARTITIONS,
                "simulator_seed": SEED,
                "clock": END.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "generate_seconds": round(gen_s, 2),
                "rounds": a.rounds,
            },
            "scorer_settings": {
                "batch_size": settings.batch_size,
                "batch_within": settings.batch_within,
            },
            "method": (
                "events/s = pre-loaded events / seconds from ready to done; median over rounds, "
                "each round a fresh topic, consumer group and empty Redis, consumers run "
                "one after the other"
            ),
            "events_per_s": {k: round(v, 1) for k, v in eps.items()},
            "ratios": {
                "scorer_vs_bare_faust": round(eps["scorer"] / eps["bare_faust"], 3),
                "scorer_vs_raw_aiokafka": round(eps["scorer"] / eps["raw_aiokafka"], 3),
                "per_round_scorer_vs_bare_faust": [x["scorer_vs_bare_faust"] for x in rounds],
                "goal": 1.0,
                "bar": 0.8,
            },
            "rounds": rounds,
            "latency": {
                "offered_rate": a.rate,
                "duration_s": a.duration,
                "scorer": lat_scorer,
                "bare_faust_relay": lat_bare,
            },
        }


def _score_change_ids(value: bytes) -> list[str]:
    return list(json.loads(value).get("event_ids", ()))


def _forwarded_id(value: bytes) -> list[str]:
    return [json.loads(value)["id"]]


def _settings_overrides(env: dict[str, str]) -> dict[str, Any]:
    return {k[4:].lower(): v for k, v in env.items() if k.startswith("SSI_")}


def _busy(samples: dict[str, float]) -> dict[str, float]:
    """Seconds the worker spent in each agent's batches and in each kind of Redis call."""
    out = {}
    for name, value in samples.items():
        for metric, label in (
            ("ssi_processing_duration_seconds_sum", "agent"),
            ("ssi_redis_call_duration_seconds_sum", "op"),
        ):
            if name.startswith(metric + "{"):
                key = name[len(metric) + 1 : -1].replace(f'{label}="', "").rstrip('"')
                out[f"{label}:{key}"] = round(value, 2)
    return out


def _brief(samples: dict[str, float]) -> str:
    keys = ("ssi_events_consumed_total", "ssi_batch_size_records_sum", "ssi_signals_applied_total")
    return ", ".join(f"{k}={v:g}" for k, v in samples.items() if k.startswith(keys))


def _say(msg: str) -> None:
    print(f"[bench.throughput] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ output


def table(r: dict[str, Any]) -> str:
    eps = r["events_per_s"]
    lat = r["latency"]
    w = r["workload"]
    rounds = r["rounds"]

    def per_round(key: str) -> str:
        return " ".join(f"{x[key]['events_per_s']:>7.0f}" for x in rounds)

    lines = [
        f"throughput: {w['events']} events, {w['users']} users, {w['partitions']} partitions, "
        f"{r['machine']['cpus']} CPUs; median of {len(rounds)} rounds",
        f"{'consumer':<34}{'events/s':>10}   rounds",
        f"{'scorer (ssi worker)':<34}{eps['scorer']:>10.0f}   {per_round('scorer')}",
        f"{'bare Faust agent (count)':<34}{eps['bare_faust']:>10.0f}   {per_round('bare_faust')}",
        f"{'raw aiokafka (consume + decode)':<34}{eps['raw_aiokafka']:>10.0f}   "
        f"{per_round('raw_aiokafka')}",
        f"ratio scorer / bare Faust: {r['ratios']['scorer_vs_bare_faust']:.2f} "
        f"(goal >= 1.0, bar >= 0.8); scorer / raw aiokafka: "
        f"{r['ratios']['scorer_vs_raw_aiokafka']:.3f}",
        "",
        f"end-to-end latency at {lat['offered_rate']:g} events/s for {lat['duration_s']:g} s:",
        f"{'':<34}{'p50 ms':>9}{'p99 ms':>9}{'matched':>14}",
    ]
    for name, key in (("scorer (produce -> score change)", "scorer"),
                      ("bare Faust relay (produce -> out)", "bare_faust_relay")):  # fmt: skip
        x = lat[key]
        lines.append(
            f"{name:<34}{x['p50_ms']:>9.1f}{x['p99_ms']:>9.1f}"
            f"{x['events_with_output']:>8}/{x['offered_events']}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.throughput", description=__doc__.split("\n")[0]
    )
    p.add_argument("--events", type=int, default=100_000, help="events pre-loaded (default 100000)")
    p.add_argument("--users", type=int, default=0, help="simulated users (default: enough for "
                   "28 days to hold the events, at least 3000)")  # fmt: skip
    p.add_argument("--rounds", type=int, default=3, help="drains of each consumer (median)")
    p.add_argument("--rate", type=float, default=300.0, help="offered load for latency, events/s")
    p.add_argument("--duration", type=float, default=30.0, help="latency phase length, seconds")
    p.add_argument("--idle", type=float, default=5.0, help="seconds without output that end a "
                   "latency phase")  # fmt: skip
    p.add_argument("--timeout", type=float, default=900.0, help="limit for one drain, seconds")
    p.add_argument("--set", action="append", default=[], metavar="SSI_X=V",
                   help="extra setting for the scorer worker (repeatable)")  # fmt: skip
    p.add_argument("--profile", metavar="DIR", help="record py-spy profiles of the Faust drains")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results.json")
    args = p.parse_args(argv)
    args.argv = argv
    args.scorer_env = dict(kv.split("=", 1) for kv in args.set)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    tmp = Path(tempfile.mkdtemp(prefix="ssi-bench-"))
    try:
        result = asyncio.run(Bench(args, tmp).run())
    finally:
        if os.environ.get("BENCH_KEEP_TMP"):
            _say(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(table(result))
    if args.no_save:
        print(json.dumps(result, indent=2))
    else:
        save(KEY, result)
        print(f"\nresults written to {RESULTS} (key {KEY!r})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
