"""Baselines for the throughput benchmark, each run as its own process by `bench.throughput`.

    python -m bench.baselines faust-count   # bare Faust agent that only counts records
    python -m bench.baselines faust-relay   # bare Faust agent that forwards each record
    python -m bench.baselines raw           # raw aiokafka consume-and-json-decode loop

Configuration comes from the environment (`SSI_*` as for `ssi worker`, plus `BENCH_*`): the Faust
baselines build their app with the scorer's own settings (`streams.app.app_options`) and read the
topic with the same serializers (raw bytes), so the only difference to the scorer is the work done
per record. They report through two HTTP views on the Faust web port, like the scorer's
`/readyz` and `/metrics`: `/readyz` (partitions assigned, not rebalancing) and `/bench` (count and
wall-clock times of the first and last record). The raw loop prints one JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

BARE_COUNT = "faust-count"
BARE_RELAY = "faust-relay"
RAW = "raw"


def _bare_faust(mode: str) -> int:
    import faust
    from aiohttp import web as aioweb

    from streams.app import app_options
    from streams.config import Settings
    from streams.runtime import tune_gc
    from streams.worker import kafka_url

    settings = Settings()
    app = faust.App(
        settings.group_id, broker=kafka_url(settings.broker_url), **app_options(settings)
    )

    def topic(name: str) -> Any:
        # as Scorer._topic: raw key and value, the scorer's partitions, declared if missing
        return app.topic(
            name,
            partitions=settings.partitions,
            replicas=settings.replication_factor,
            key_serializer="raw",
            value_serializer="raw",
            internal=True,
        )

    source = topic(os.environ["BENCH_TOPIC"])
    progress: dict[str, Any] = {"count": 0, "first": None, "last": None}

    if mode == BARE_COUNT:

        async def count(stream: Any) -> None:
            n = 0
            async for _value in stream:
                n += 1
                if n == 1:
                    progress["first"] = time.time()
                progress["count"] = n
                progress["last"] = time.time()

        app.agent(source, name="bench.count")(count)
    else:
        sink = topic(os.environ["BENCH_OUT_TOPIC"])

        async def relay(stream: Any) -> None:
            async for key, value in stream.items():
                await sink.send(key=key, value=value)
                progress["count"] += 1

        app.agent(source, name="bench.relay")(relay)

    async def readyz(request: aioweb.Request) -> aioweb.Response:
        try:
            assigned = len(app.consumer.assignment())
        except Exception:
            assigned = 0
        ready = assigned > 0 and not app.rebalancing
        return aioweb.json_response({"ready": ready}, status=200 if ready else 503)

    async def bench(request: aioweb.Request) -> aioweb.Response:
        return aioweb.json_response(progress)

    web_app: aioweb.Application = app.web.web_app  # type: ignore[attr-defined]
    web_app.router.add_get("/readyz", readyz)
    web_app.router.add_get("/bench", bench)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    tune_gc()  # the same runtime tuning for the scorer and the bare Faust baseline
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 0
    return 0


async def _raw(bootstrap: str, topic: str, expected: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        for _ in range(100):
            if parts:
                break
            await asyncio.sleep(0.1)
            await consumer.topics()
            parts = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        loads = json.loads
        count = 0
        t0 = time.time()
        first = last = None
        while count < expected:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for msg in records:
                    loads(msg.value)
                    count += 1
            if count and first is None:
                first = time.time()
        last = time.time()
        return {"count": count, "start": t0, "first": first, "last": last}
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    mode = args[0] if args else ""
    if mode in (BARE_COUNT, BARE_RELAY):
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        return _bare_faust(mode)
    if mode == RAW:
        result = asyncio.run(
            _raw(
                os.environ["BENCH_BOOTSTRAP"],
                os.environ["BENCH_TOPIC"],
                int(os.environ["BENCH_EXPECTED"]),
            )
        )
        print(json.dumps(result), flush=True)
        return 0
    print(f"usage: python -m bench.baselines {BARE_COUNT}|{BARE_RELAY}|{RAW}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
