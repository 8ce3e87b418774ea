"""The observability stack against reality: a real Prometheus scraping a real `ssi worker`.

Prometheus (the `prometheus` binary, Debian package `prometheus`) runs with the project's own
config and rule files (scrape target and intervals adapted to the test), a worker on the bundled
broker and Redis processes held-out traffic, and then every Grafana panel query (template
variables substituted as Grafana would), every variable query, and every recording and alert
expression is evaluated through the Prometheus HTTP API: none may fail, and at least 90% of the
panel queries must return data. The rule manager's own evaluation must report every group
healthy.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.asyncio import Redis

from state.keys import Keys
from streams.embedded import free_port
from tests.integration.worker_proc import ROOT, WorkerProcess, produce, worker_env
from tests.reference import heldout

pytestmark = pytest.mark.integration

DEPLOY = ROOT / "deploy"
SEED = 11
RATE_INTERVAL = "20s"  # Grafana: max(4 × scrape interval, step + scrape interval)
MIN_DATA_FRACTION = 0.9


def _prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path:
        return path
    message = "the prometheus binary is missing (Debian package `prometheus`)"
    if os.environ.get("CI"):
        pytest.fail(message + ": CI must install it (.ci/run)")
    pytest.skip(message)


class Prometheus:
    """A Prometheus server on a free loopback port with a temporary TSDB; stopped by pid."""

    def __init__(self, binary: str, port: int, config: Path, data: Path, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as fh:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=fh,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"prometheus not ready:\n{self.log.read_text()[-3000:]}")

    def api(self, path: str, **params: Any) -> dict[str, Any]:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        return body

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _write_config(tmp: Path, worker_ports: list[int], prom_port: int) -> Path:
    """deploy/prometheus/prometheus.yml with the test's targets and 1 s intervals."""
    cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    cfg["global"]["scrape_interval"] = "1s"
    cfg["global"]["evaluation_interval"] = "1s"
    cfg["rule_files"] = [str(DEPLOY / "prometheus" / f) for f in cfg["rule_files"]]
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    worker = jobs["ssi-worker"]
    worker.pop("dns_sd_configs")  # compose DNS → the test's worker
    worker["static_configs"] = [{"targets": [f"127.0.0.1:{p}" for p in worker_ports]}]
    jobs["prometheus"]["static_configs"] = [{"targets": [f"127.0.0.1:{prom_port}"]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def prometheus_bin() -> str:
    return _prometheus_binary()


@pytest.fixture
def stack(
    prometheus_bin: str, broker: Any, redis_server: Any, topic_prefix: str, tmp_path: Path
) -> Iterator[tuple[Prometheus, list[WorkerProcess]]]:
    """Prometheus and two workers of one group: the first started here, the second left to
    the test (it joins mid-traffic, so a rebalance happens under Prometheus' eyes)."""
    workers = []
    for name in ("w1", "w2"):
        (tmp_path / name).mkdir()
        env = worker_env(
            broker.url,
            redis_server.url,
            topic_prefix,
            tmp_path / name,
            SSI_CLOCK=heldout.now_text(SEED),
            SSI_SWEEP_INTERVAL="2",
        )
        workers.append(WorkerProcess(env, tmp_path / f"{name}.log"))
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    port = free_port()
    config = _write_config(tmp_path, [w.port for w in workers], port)
    prom = Prometheus(prometheus_bin, port, config, prom_dir / "data", tmp_path / "prometheus.log")
    try:
        prom.wait_ready()
        workers[0].start()
        yield prom, workers
    finally:
        for w in workers:
            w.stop()
        prom.stop()


def _substitute(expr: str) -> str:
    """Grafana's template variables as a dashboard with its defaults would send them."""
    return (
        expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$job", "ssi-worker")
        .replace("$instance", ".*")
    )


def _panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                out.append((path.stem, panel["title"], target["expr"]))
    return out


def _variable_queries() -> list[str]:
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        for var in json.loads(path.read_text())["templating"]["list"]:
            if var["type"] == "query":
                out.append(var["definition"])
    return out


def _rule_exprs() -> list[tuple[str, str]]:
    out = []
    for path in sorted((DEPLOY / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((rule.get("alert") or rule["record"], rule["expr"]))
    return out


def _has_data(result: list[dict[str, Any]]) -> bool:
    for series in result:
        for _, value in series.get("values", []):
            if not math.isnan(float(value)):
                return True
    return False


def _wait_for(
    prom: Prometheus, query: str, ok: Any, timeout: float, what: str, worker: WorkerProcess
) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = prom.api("query", query=query)
        if last.get("status") == "success" and ok(last["data"]["result"]):
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}: {query} → {last}\n{worker.tail()}")


async def test_prometheus_answers_every_panel_and_rule(
    stack: tuple[Prometheus, list[WorkerProcess]],
    topic_prefix: str,
    broker: Any,
    redis_server: Any,
) -> None:
    prom, workers = stack
    worker = workers[0]
    start = time.time() - 30
    lines = [
        line.encode("utf-8", "surrogateescape")
        for line in heldout.generate(SEED, users=150, events=4000, conflicting_duplicates=True)
        if line.strip()
    ]
    # three waves a few seconds apart, so rates are non-zero over more than one window; the
    # second worker joins after the first wave: both consumer groups rebalance mid-traffic
    third = len(lines) // 3 + 1
    for i in range(3):
        chunk = lines[i * third : (i + 1) * third]
        await produce(broker.bootstrap, topic_prefix + "activity", [(b"k", v, None) for v in chunk])
        if i == 0:
            workers[1].start()
        await asyncio.sleep(3)

    _wait_for(
        prom,
        'sum(ssi_events_consumed_total{job="ssi-worker"})',
        lambda r: r and float(r[0]["value"][1]) >= len(lines),
        60,
        "every activity record consumed",
        worker,
    )
    # benchmark gauges refresh every 15 s at this size; wait for one after the traffic
    _wait_for(
        prom,
        'count(ssi_industry_score{job="ssi-worker"})',
        lambda r: bool(r),
        40,
        "industry benchmark gauges",
        worker,
    )
    time.sleep(3)  # a few more scrapes and rule evaluations
    end = time.time()

    def value(q: str) -> float:
        res = prom.api("query", query=q)["data"]["result"]
        return float(res[0]["value"][1]) if res else -1.0

    # the workers really are scraped, and its Faust sensor, lag and process metrics are there
    up = prom.api("query", query='up{job="ssi-worker"}')["data"]["result"]
    assert [s["value"][1] for s in up] == ["1", "1"], up
    for metric in (
        "ssi_consumer_lag_records",
        "ssi_consumer_committed_offset",
        "ssi_rebalances_total",
        "ssi_rebalance_duration_seconds_count",
        "ssi_kafka_commit_duration_seconds_count",
        "ssi_kafka_send_duration_seconds_count",
        "ssi_published_pillar_points_count",
        "ssi_score_band_users",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ):
        got = prom.api("query", query=f'{metric}{{job="ssi-worker"}}')["data"]["result"]
        assert got, f"{metric} missing"
    # all processed: no lag left, once the gauges (refreshed every 5 s) and Faust's offset
    # commits (every second) have caught up with the last records
    _wait_for(
        prom,
        'ssi_consumer_lag_records{job="ssi-worker"}',
        lambda r: len(r) == 16 and all(float(x["value"][1]) == 0 for x in r),
        30,
        "zero lag on every partition",
        workers[0],
    )
    lag = prom.api("query", query='ssi_consumer_lag_records{job="ssi-worker"}')["data"]["result"]
    partitions = [(s["metric"]["topic"], s["metric"]["partition"]) for s in lag]
    # 8 activity + 8 signals partitions, each reported once, by its current owner: a worker
    # stops exporting the partitions the rebalance moved away
    assert len(partitions) == len(set(partitions)) == 16, sorted(partitions)
    assert {s["metric"]["instance"] for s in lag} == {f"127.0.0.1:{w.port}" for w in workers}
    assert all(float(s["value"][1]) == 0 for s in lag), lag  # all processed: no lag left
    rebalances = value('sum(ssi_rebalances_total{job="ssi-worker"})')
    assert rebalances >= 2, rebalances  # the first join of each, and w1's when w2 joined

    # the sensor saw every published change; the band gauges add up to the benchmark set
    changes = value('sum(ssi_score_changes_total{job="ssi-worker"})')
    assert changes > 0
    assert value('sum(ssi_published_score_count{job="ssi-worker"})') == changes
    redis = Redis.from_url(redis_server.url)
    try:
        scored = await redis.zcard(Keys(topic_prefix).bench_all())
    finally:
        await redis.aclose()
    assert scored > 0
    # (the gauges refresh every 15 s: wait for one after the last change was recorded)
    _wait_for(
        prom,
        # every worker reports the same global bands: max by band, as the dashboard does
        'sum(max by (band) (ssi_score_band_users{job="ssi-worker"}))',
        lambda r: r and float(r[0]["value"][1]) == scored,
        40,
        f"score bands adding up to the {scored} users with a score",
        worker,
    )

    errors: list[str] = []
    no_data: list[str] = []
    queries = _panel_queries()
    for board, title, expr in queries:
        q = _substitute(expr)
        assert "$" not in q, (board, title, q)
        res = prom.api("query_range", query=q, start=start, end=end, step="2s")
        if res.get("status") != "success":
            errors.append(f"{board} / {title}: {res.get('error')}\n  {q}")
        elif not _has_data(res["data"]["result"]):
            no_data.append(f"{board} / {title}: {q}")
    for definition in _variable_queries():
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
        assert m, definition
        match = _substitute(m.group(1))
        res = prom.api(f"label/{m.group(2)}/values", **{"match[]": match})
        if res.get("status") != "success" or not res["data"]:
            errors.append(f"variable {definition}: {res}")
    for name, expr in _rule_exprs():
        res = prom.api("query", query=expr)
        if res.get("status") != "success":
            errors.append(f"rule {name}: {res.get('error')}")
    groups = prom.api("rules")["data"]["groups"]
    for group in groups:
        for rule in group["rules"]:
            if rule["health"] != "ok" or rule.get("lastError"):
                errors.append(f"rule {rule['name']} evaluated by Prometheus: {rule}")
    evaluated = sum(len(g["rules"]) for g in groups)

    fraction = 1 - len(no_data) / len(queries)
    print(
        f"\npanel queries with data: {len(queries) - len(no_data)}/{len(queries)} "
        f"({fraction:.1%}); rule expressions evaluated: {len(_rule_exprs())} "
        f"(rule manager: {evaluated})"
    )
    for item in no_data:
        print("  no data:", item)
    assert not errors, "\n".join(errors)
    assert evaluated == len(_rule_exprs())
    assert fraction >= MIN_DATA_FRACTION, "\n".join(no_data)
    # an idle, healthy worker fires none of the alerts
    firing = [a for a in prom.api("alerts")["data"]["alerts"] if a["state"] == "firing"]
    assert not firing, firing
