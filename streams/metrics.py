"""Prometheus metrics of the scorer: `ssi_` prefix, base units, no user ids in labels."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
REBALANCE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
SCORE_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
PILLAR_BUCKETS = (2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20, 22.5, 25)
SCORE_BANDS = ((0, 20), (20, 40), (40, 70), (70, 100))  # LinkedIn's published 0-20 / 21-69 / 70+


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

        # Kafka consumption, from the consumer's end offsets and committed offsets (gauges timer).
        # `partition` is a partition number: bounded by the topic's partition count.
        self.lag = Gauge(
            "ssi_consumer_lag_records",
            "Records behind the end of the partition (end offset minus committed offset)",
            ["topic", "partition"],
            registry=r,
        )
        self.committed = Gauge(
            "ssi_consumer_committed_offset",
            "Committed offset (next record to process) of each assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.highwater = Gauge(
            "ssi_consumer_end_offset",
            "End offset (high watermark) of each assigned partition",
            ["topic", "partition"],
            registry=r,
        )

        # Faust's own sensor events (streams.sensors.ScorerSensor).
        self.received = Counter(
            "ssi_kafka_messages_received",
            "Records received by the Faust consumer, by topic",
            ["topic"],
            registry=r,
        )
        self.acked = Counter(
            "ssi_kafka_messages_acked",
            "Records acknowledged by every stream (committable), by topic",
            ["topic"],
            registry=r,
        )
        self.sent = Counter(
            "ssi_kafka_messages_sent",
            "Records acknowledged by the broker, by topic",
            ["topic"],
            registry=r,
        )
        self.send_errors = Counter(
            "ssi_kafka_send_errors",
            "Records the broker failed to accept, by topic",
            ["topic"],
            registry=r,
        )
        self.send_latency = Histogram(
            "ssi_kafka_send_duration_seconds",
            "Time from handing a record to the producer to the broker's acknowledgement",
            ["topic"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_latency = Histogram(
            "ssi_kafka_commit_duration_seconds",
            "Offset commit duration",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.buffer_full = Counter(
            "ssi_kafka_topic_buffer_full",
            "Times the consumer waited because a stream's buffer was full (backpressure)",
            ["topic"],
            registry=r,
        )
        self.rebalances = Counter(
            "ssi_rebalances", "Consumer-group rebalances this worker went through", registry=r
        )
        self.rebalance_duration = Histogram(
            "ssi_rebalance_duration_seconds",
            "Rebalance duration, from partitions revoked to processing resumed",
            buckets=REBALANCE_BUCKETS,
            registry=r,
        )
        self.rebalancing = Gauge(
            "ssi_rebalancing", "1 while this worker is in a rebalance", registry=r
        )
        self.assignments = Counter(
            "ssi_partition_assignments",
            "Partition assignments computed by this worker as group leader, by outcome",
            ["outcome"],
            registry=r,
        )

        # Business view: published score changes (sensor) and the benchmark sets (gauges timer).
        self.published_score = Histogram(
            "ssi_published_score",
            "Score carried by each published score change (0-100)",
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.published_pillar = Histogram(
            "ssi_published_pillar_points",
            "Pillar points carried by each published score change (0-25), by pillar",
            ["pillar"],
            buckets=PILLAR_BUCKETS,
            registry=r,
        )
        self.score_band = Gauge(
            "ssi_score_band_users",
            "Users whose latest score is in the band [low, high), 70-100 inclusive",
            ["band"],
            registry=r,
        )
        self.industry_users = Gauge(
            "ssi_industry_users",
            "Users with a score per industry (the 20 largest industries)",
            ["industry"],
            registry=r,
        )
        self.industry_score = Gauge(
            "ssi_industry_score",
            "Score percentiles per industry (industries of at least 10 members only)",
            ["industry", "quantile"],
            registry=r,
        )

        # CPU, memory, file descriptors, GC and Python version of the worker process.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
