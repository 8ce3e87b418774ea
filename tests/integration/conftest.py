"""Fixtures for real non-Python Kafka clients: kcat, and a Tansu broker it can talk to.

kcat (librdkafka 2.0.2 on Debian 12) cannot parse Tansu's ApiVersions v3 answer (see
tests/integration/kafka_shim.py), so `shimmed_broker` is a dedicated Tansu that advertises
the port of the protocol shim put in front of it: every client, kcat or aiokafka, reaches it
through the shim.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator

import pytest

from streams.embedded import LOOPBACK, start_broker
from tests.integration.kafka_shim import start_shim
from tests.integration.worker_proc import ShimmedBroker, in_ci


@pytest.fixture(scope="session")
def shimmed_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShimmedBroker]:
    # The shim's socket is bound first, so the port Tansu advertises cannot be taken.
    listener = socket.create_server((LOOPBACK, 0))
    try:
        broker = start_broker(advertised_port=listener.getsockname()[1])
        try:
            log = tmp_path_factory.mktemp("kafka-shim") / "shim.log"
            shim = start_shim(listener, broker.bootstrap, log)
        except BaseException:
            broker.close()
            raise
    finally:
        listener.close()  # the shim holds its own copy
    try:
        yield ShimmedBroker(broker, shim)
    finally:
        shim.stop()
        broker.close()


@pytest.fixture(scope="session")
def kcat() -> str:
    """kcat's path: a failure under CI when missing (CI installs it: .ci/run), else a skip."""
    found = shutil.which("kcat") or shutil.which("kafkacat")
    if found:
        return found
    if in_ci():
        pytest.fail("kcat is missing: CI must install it (.ci/run)")
    pytest.skip("kcat is not installed")
