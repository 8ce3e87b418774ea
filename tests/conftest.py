"""Session fixtures: the bundled broker and a real Redis-protocol server, started once.

Each test isolates itself with a unique topic prefix and Redis key prefix; nothing is flushed.
Servers are stopped by pid at the end of the session (and by an atexit hook if pytest dies).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from streams.embedded import EmbeddedBroker, EmbeddedRedis, start_broker, start_redis


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    b = start_broker()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    r = start_redis()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def key_prefix() -> str:
    return f"k{uuid.uuid4().hex[:8]}."
