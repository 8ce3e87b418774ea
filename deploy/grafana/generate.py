"""Generate the Grafana dashboards of ssi-stream (`dashboards/*.json`) from one description.

    python deploy/grafana/generate.py          # rewrite the JSON files
    python deploy/grafana/generate.py --check  # exit 1 when the committed files differ

Every panel gets a unit, a description, the `${datasource}` variable, and queries that use
`$__rate_interval` (gauges through `*_over_time(...[$__rate_interval])`, so a panel never
samples a single scrape). Dashboard uids are fixed: links and provisioning rely on them.
`tests/deploy/test_grafana.py` checks that the committed files equal this script's output, and
`tests/integration/test_prometheus.py` runs every query against a real Prometheus.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job", instance=~"$instance"'  # every query filters on these variables
RI = "$__rate_interval"


@dataclass
class Panel:
    title: str
    description: str
    unit: str
    targets: list[tuple[str, str]]  # (PromQL, legend)
    kind: str = "timeseries"
    width: int = 8
    height: int = 8
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    title: str
    panels: list[Panel]


def rate(metric: str, by: str = "", extra: str = "") -> str:
    sel = SEL + (", " + extra if extra else "")
    agg = f"sum by ({by}) " if by else "sum "
    return f"{agg}(rate({metric}{{{sel}}}[{RI}]))"


def quantile(q: float, metric: str, by: str = "") -> str:
    keys = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({keys}) (rate({metric}_bucket{{{SEL}}}[{RI}])))"


def gauge(metric: str, by: str, fn: str = "max", over: str = "max_over_time") -> str:
    agg = f"{fn} by ({by}) " if by else f"{fn} "
    return f"{agg}({over}({metric}{{{SEL}}}[{RI}]))"


def percentiles(metric: str, by: str = "", label: str = "") -> list[tuple[str, str]]:
    prefix = f"{{{{{label}}}}} " if label else ""
    return [(quantile(q, metric, by), f"{prefix}p{int(q * 100)}") for q in (0.5, 0.95, 0.99)]


def service_rows() -> list[Row]:
    return [
        Row(
            "RED: rate, errors, duration",
            [
                Panel(
                    "Events consumed by type",
                    "Activity records consumed per second, by CloudEvents type (invalid records "
                    "count as type `invalid`).",
                    "eps",
                    [(rate("ssi_events_consumed_total", "type"), "{{type}}")],
                    extra={"stack": True},
                ),
                Panel(
                    "Events by outcome",
                    "Accepted, duplicate (exact or conflicting) and rejected records per second.",
                    "eps",
                    [(rate("ssi_events_consumed_total", "outcome"), "{{outcome}}")],
                    extra={"stack": True},
                ),
                Panel(
                    "Error and dead-letter ratio",
                    "Share of consumed records dead-lettered, of Redis calls failing and of "
                    "Kafka sends failing. A missing error counter means no error: it reads 0.",
                    "percentunit",
                    [
                        (
                            f"sum(rate(ssi_dead_letters_total{{{SEL}}}[{RI}])) / "
                            f"sum(rate(ssi_events_consumed_total{{{SEL}}}[{RI}]))",
                            "dead letters / consumed",
                        ),
                        (
                            f"(sum(rate(ssi_redis_errors_total{{{SEL}}}[{RI}])) or vector(0)) / "
                            f"sum(rate(ssi_redis_call_duration_seconds_count{{{SEL}}}[{RI}]))",
                            "Redis errors / calls",
                        ),
                        (
                            f"(sum(rate(ssi_kafka_send_errors_total{{{SEL}}}[{RI}])) or "
                            f"vector(0)) / sum(rate(ssi_kafka_messages_sent_total{{{SEL}}}[{RI}]))",
                            "Kafka send errors / sends",
                        ),
                    ],
                ),
                Panel(
                    "Dead letters by reason",
                    "Records sent to the dead-letter topic per second, by reason code.",
                    "eps",
                    [(rate("ssi_dead_letters_total", "reason"), "{{reason}}")],
                    extra={"stack": True},
                ),
                Panel(
                    "Batch processing time",
                    "Percentiles of the time to process one batch, per agent (ingest: validate, "
                    "dedupe, forward; aggregate: apply, rescore, publish).",
                    "s",
                    percentiles("ssi_processing_duration_seconds", "agent", "agent"),
                ),
                Panel(
                    "End-to-end latency",
                    "Percentiles from the activity record's broker timestamp to its score "
                    "change being published.",
                    "s",
                    percentiles("ssi_end_to_end_latency_seconds"),
                ),
                Panel(
                    "Event-time lag",
                    "Percentiles of score-change publish time minus the event time of the "
                    "activity behind it (includes producer delay and backfills).",
                    "s",
                    percentiles("ssi_event_time_lag_seconds"),
                ),
                Panel(
                    "Duplicates skipped",
                    "Events skipped as duplicates per second: exact copies, conflicting copies "
                    "(dead-lettered), and replays recognised by the watermarks.",
                    "eps",
                    [(rate("ssi_duplicates_skipped_total", "kind"), "{{kind}}")],
                ),
                Panel(
                    "Score changes published",
                    "Score-change events published per second, by cause.",
                    "eps",
                    [(rate("ssi_score_changes_total", "cause"), "{{cause}}")],
                    extra={"stack": True},
                ),
            ],
        ),
        Row(
            "USE: saturation and resources",
            [
                Panel(
                    "Consumer lag per partition",
                    "Records between each partition's end offset and the group's committed "
                    "offset, by topic and partition.",
                    "short",
                    [
                        (
                            gauge("ssi_consumer_lag_records", "topic, partition"),
                            "{{topic}}/{{partition}}",
                        )
                    ],
                    width=12,
                ),
                Panel(
                    "Consumer lag per topic",
                    "Total records behind, per consumed topic.",
                    "short",
                    [(gauge("ssi_consumer_lag_records", "topic", "sum"), "{{topic}}")],
                    width=12,
                ),
                Panel(
                    "Records in, acknowledged, sent",
                    "Records received and acknowledged by the Faust consumer, and records "
                    "acknowledged by the broker on send, per second and topic.",
                    "recps",
                    [
                        (rate("ssi_kafka_messages_received_total", "topic"), "in {{topic}}"),
                        (rate("ssi_kafka_messages_acked_total", "topic"), "acked {{topic}}"),
                        (rate("ssi_kafka_messages_sent_total", "topic"), "sent {{topic}}"),
                    ],
                ),
                Panel(
                    "Batch sizes",
                    "Median and 99th percentile of records per processed batch, per agent.",
                    "short",
                    [
                        (quantile(0.5, "ssi_batch_size_records", "agent"), "{{agent}} p50"),
                        (quantile(0.99, "ssi_batch_size_records", "agent"), "{{agent}} p99"),
                    ],
                ),
                Panel(
                    "Redis call latency p99",
                    "99th percentile of Redis round trips, by operation.",
                    "s",
                    [(quantile(0.99, "ssi_redis_call_duration_seconds", "op"), "{{op}}")],
                ),
                Panel(
                    "Redis calls",
                    "Redis round trips per second, by operation.",
                    "ops",
                    [(rate("ssi_redis_call_duration_seconds_count", "op"), "{{op}}")],
                ),
                Panel(
                    "Kafka send and commit latency p99",
                    "99th percentile of record send (to broker acknowledgement) per topic, and "
                    "of offset commits.",
                    "s",
                    [
                        (quantile(0.99, "ssi_kafka_send_duration_seconds", "topic"), "{{topic}}"),
                        (quantile(0.99, "ssi_kafka_commit_duration_seconds"), "commit"),
                    ],
                ),
                Panel(
                    "CPU",
                    "CPU time used per second by each worker process (1 = one core).",
                    "percentunit",
                    [
                        (
                            f"rate(process_cpu_seconds_total{{{SEL}}}[{RI}])",
                            "{{instance}}",
                        )
                    ],
                ),
                Panel(
                    "Memory",
                    "Resident memory of each worker process.",
                    "bytes",
                    [(gauge("process_resident_memory_bytes", "instance"), "{{instance}}")],
                ),
                Panel(
                    "Rebalances",
                    "Consumer-group rebalances started per worker in the interval, and whether "
                    "a worker is rebalancing now.",
                    "short",
                    [
                        (
                            f"sum by (instance) (increase(ssi_rebalances_total{{{SEL}}}[{RI}]))",
                            "{{instance}} rebalances",
                        ),
                        (gauge("ssi_rebalancing", "instance"), "{{instance}} rebalancing"),
                    ],
                ),
                Panel(
                    "Rebalance duration",
                    "99th percentile of rebalance duration, from partitions revoked to "
                    "processing resumed.",
                    "s",
                    [(quantile(0.99, "ssi_rebalance_duration_seconds"), "p99")],
                ),
                Panel(
                    "Assigned partitions",
                    "Partitions of each consumed topic assigned to each worker.",
                    "short",
                    [
                        (
                            gauge("ssi_assigned_partitions", "instance, topic"),
                            "{{instance}} {{topic}}",
                        )
                    ],
                ),
                Panel(
                    "Workers up and ready",
                    "Workers Prometheus scrapes successfully, and workers reporting ready "
                    "(Redis and broker reachable, partitions assigned).",
                    "short",
                    [
                        (f"sum(max_over_time(up{{{SEL}}}[{RI}]))", "up"),
                        (gauge("ssi_ready", "", "sum", "min_over_time"), "ready"),
                    ],
                ),
                Panel(
                    "Decay sweep",
                    "99th percentile of the duration of one decay sweep run.",
                    "s",
                    [
                        (quantile(0.99, "ssi_sweep_duration_seconds"), "duration p99"),
                    ],
                ),
                Panel(
                    "Time since last decay sweep",
                    "Seconds since each worker last completed a decay sweep (alert above 600).",
                    "s",
                    [
                        (
                            "time() - max by (instance) (max_over_time("
                            f"ssi_sweep_last_success_timestamp_seconds{{{SEL}}}[{RI}]))",
                            "{{instance}}",
                        )
                    ],
                ),
                Panel(
                    "Users due for decay",
                    "Users found due by decay sweeps per second.",
                    "ops",
                    [(rate("ssi_sweep_users_due_total"), "users due")],
                ),
            ],
        ),
    ]


def business_rows() -> list[Row]:
    return [
        Row(
            "Scores",
            [
                Panel(
                    "Users tracked",
                    "Users with state in Redis.",
                    "short",
                    [(gauge("ssi_users_tracked", ""), "users")],
                    kind="stat",
                    width=6,
                ),
                Panel(
                    "Users by score band",
                    "Users whose latest score lies in each band (0-20, 20-40, 40-70, 70-100), "
                    "from the benchmark of everyone.",
                    "short",
                    [(gauge("ssi_score_band_users", "band"), "{{band}}")],
                    kind="bargauge",
                    width=9,
                ),
                Panel(
                    "Share of users by score band",
                    "Share of tracked users in each score band (LinkedIn, 2015: 46.7% at 0-20, "
                    "1.4% at 70+).",
                    "percentunit",
                    [
                        (
                            f"{gauge('ssi_score_band_users', 'band')} / scalar("
                            f"sum(max by (band) (max_over_time(ssi_score_band_users{{{SEL}}}"
                            f"[{RI}]))))",
                            "{{band}}",
                        )
                    ],
                    kind="piechart",
                    width=9,
                ),
                Panel(
                    "Published score distribution",
                    "Score changes published in the interval, by score bucket (upper bound).",
                    "short",
                    [
                        (
                            f"sum by (le) (increase(ssi_published_score_bucket{{{SEL}}}[{RI}]))",
                            "{{le}}",
                        )
                    ],
                    kind="heatmap",
                    width=12,
                    extra={"format": "heatmap"},
                ),
                Panel(
                    "Published score percentiles",
                    "Median and 90th percentile of the scores carried by published changes.",
                    "short",
                    [
                        (quantile(0.5, "ssi_published_score"), "p50"),
                        (quantile(0.9, "ssi_published_score"), "p90"),
                    ],
                    width=12,
                ),
                Panel(
                    "Score changes by cause",
                    "Score-change events published per second: activity, decay, profile, rescore.",
                    "eps",
                    [(rate("ssi_score_changes_total", "cause"), "{{cause}}")],
                    extra={"stack": True},
                    width=12,
                ),
                Panel(
                    "Pillar averages",
                    "Average pillar points (0-25) carried by the score changes published in "
                    "the interval.",
                    "short",
                    [
                        (
                            f"sum by (pillar) (rate(ssi_published_pillar_points_sum{{{SEL}}}"
                            f"[{RI}])) / sum by (pillar) (rate("
                            f"ssi_published_pillar_points_count{{{SEL}}}[{RI}]))",
                            "{{pillar}}",
                        )
                    ],
                    width=12,
                    extra={"max": 25},
                ),
            ],
        ),
        Row(
            "Industries and activity",
            [
                Panel(
                    "Users per industry",
                    "Users with a score in each of the 20 largest industries.",
                    "short",
                    [(gauge("ssi_industry_users", "industry"), "{{industry}}")],
                    kind="bargauge",
                    width=12,
                ),
                Panel(
                    "Industry median and p90 score",
                    "Median and 90th-percentile score per industry (industries of at least 10 "
                    "members: the privacy floor).",
                    "short",
                    [
                        (
                            gauge("ssi_industry_score", "industry, quantile"),
                            "{{industry}} q{{quantile}}",
                        )
                    ],
                    width=12,
                ),
                Panel(
                    "Activity accepted by type",
                    "Accepted activity events per second, by type: what users are doing.",
                    "eps",
                    [
                        (
                            rate("ssi_events_consumed_total", "type", 'outcome="accepted"'),
                            "{{type}}",
                        )
                    ],
                    width=24,
                    extra={"stack": True},
                ),
            ],
        ),
    ]


def _panel_json(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    targets = []
    for i, (expr, legend) in enumerate(p.targets):
        t: dict[str, Any] = {
            "datasource": DS,
            "expr": expr,
            "legendFormat": legend,
            "refId": chr(ord("A") + i),
            "range": True,
        }
        if p.extra.get("format"):
            t["format"] = p.extra["format"]
        targets.append(t)
    defaults: dict[str, Any] = {"unit": p.unit}
    if "max" in p.extra:
        defaults["max"] = p.extra["max"]
        defaults["min"] = 0
    options: dict[str, Any] = {}
    if p.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 10,
            "stacking": {"mode": "normal" if p.extra.get("stack") else "none", "group": "A"},
        }
        options = {"legend": {"displayMode": "list", "placement": "bottom"}}
    elif p.kind in ("stat", "bargauge"):
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    elif p.kind == "piechart":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "legend": {"displayMode": "table", "placement": "right", "values": ["percent"]},
        }
    elif p.kind == "heatmap":
        options = {"calculate": False, "yAxis": {"unit": "short"}}
    return {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DS,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": targets,
        "interval": "",
    }


def _variables() -> list[dict[str, Any]]:
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
        },
        {
            "name": "job",
            "label": "Job",
            "type": "query",
            "datasource": DS,
            "query": {"query": "label_values(ssi_build_info, job)", "refId": "job"},
            "definition": "label_values(ssi_build_info, job)",
            "current": {"text": "ssi-worker", "value": "ssi-worker"},
            "refresh": 2,
            "hide": 0,
            "includeAll": False,
            "multi": False,
        },
        {
            "name": "instance",
            "label": "Instance",
            "type": "query",
            "datasource": DS,
            "query": {
                "query": 'label_values(ssi_build_info{job=~"$job"}, instance)',
                "refId": "instance",
            },
            "definition": 'label_values(ssi_build_info{job=~"$job"}, instance)',
            "current": {"text": "All", "value": "$__all"},
            "refresh": 2,
            "hide": 0,
            "includeAll": True,
            "allValue": ".*",
            "multi": True,
        },
    ]


def dashboard(uid: str, title: str, description: str, rows: list[Row]) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row in rows:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y, x, line_h = pid + 1, y + 1, 0, 0
        for p in row.panels:
            if x + p.width > 24:
                x, y, line_h = 0, y + line_h, 0
            panels.append(_panel_json(p, pid, x, y))
            pid, x, line_h = pid + 1, x + p.width, max(line_h, p.height)
        y += line_h
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["ssi-stream"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": _variables()},
        "annotations": {"list": []},
        "links": [
            {
                "title": "ssi-stream dashboards",
                "type": "dashboards",
                "tags": ["ssi-stream"],
                "asDropdown": False,
            }
        ],
        "panels": panels,
    }


def dashboards() -> dict[str, dict[str, Any]]:
    """File name → dashboard JSON."""
    return {
        "ssi-service.json": dashboard(
            "ssi-service",
            "SSI scorer: service",
            "Rate, errors and duration first, then saturation and resources of the scorer.",
            service_rows(),
        ),
        "ssi-business.json": dashboard(
            "ssi-business",
            "SSI scorer: business",
            "Score distribution, score changes, pillar averages, users and industries.",
            business_rows(),
        ),
    }


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, board in dashboards().items():
        path = OUT / name
        text = render(board)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale, run python deploy/grafana/generate.py:", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
