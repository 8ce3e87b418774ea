"""Prometheus metrics of the scorer: `ssi_` prefix, base units, no user ids in labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


class Metrics:
    """All of the scorer's metrics in one registry (one per app, so tests can run several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.events = Counter(
            "ssi_events_consumed",
            "Activity records consumed, by event type and outcome",
            ["type", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "ssi_dead_letters",
            "Records sent to the dead-letter topic, by reason",
            ["reason"],
            registry=r,
        )
        self.signals = Counter(
            "ssi_signals_applied", "Per-user event deltas applied to state", registry=r
        )
        self.duplicates = Counter(
            "ssi_duplicates_skipped",
            "Events skipped as duplicates, by kind (exact, conflicting, replayed)",
            ["kind"],
            registry=r,
        )
        self.late = Counter(
            "ssi_late_events",
            "Accepted events whose day is already outside the rolling window",
            registry=r,
        )
        self.changes = Counter(
            "ssi_score_changes", "Score-change events published, by cause", ["cause"], registry=r
        )
        self.batch_size = Histogram(
            "ssi_batch_size_records",
            "Records per processed batch, by agent",
            ["agent"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.processing = Histogram(
            "ssi_processing_duration_seconds",
            "Time to process one batch, by agent",
            ["agent"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.event_lag = Histogram(
            "ssi_event_time_lag_seconds",
            "Score-change publish time minus the event time of the activity behind it",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "ssi_end_to_end_latency_seconds",
            "Score-change publish time minus the activity record's broker timestamp",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.redis = Histogram(
            "ssi_redis_call_duration_seconds",
            "Redis round trips, by operation",
            ["op"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.redis_errors = Counter(
            "ssi_redis_errors", "Redis calls that failed, by operation", ["op"], registry=r
        )
        self.users = Gauge("ssi_users_tracked", "Users with state in Redis", registry=r)
        self.sweep_duration = Histogram(
            "ssi_sweep_duration_seconds",
            "Decay sweep duration per run",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sweep_due = Counter(
            "ssi_sweep_users_due", "Users found due by decay sweeps", registry=r
        )
        self.sweep_last = Gauge(
            "ssi_sweep_last_success_timestamp_seconds",
            "Unix time of the last completed decay sweep",
            registry=r,
        )
        self.assigned = Gauge(
            "ssi_assigned_partitions",
            "Partitions assigned to this worker, by topic",
            ["topic"],
            registry=r,
        )
        self.ready = Gauge("ssi_ready", "1 when the worker is ready (broker and Redis)", registry=r)
        self.build = Info("ssi_build", "Build information", registry=r)
