"""Grafana dashboards and provisioning: the committed JSON is the generator's output, and every
panel follows the conventions (unit, description, datasource variable, $__rate_interval)."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY

GRAFANA = DEPLOY / "grafana"
UIDS = {"ssi-service.json": "ssi-service", "ssi-business.json": "ssi-business"}
# unit ids of Grafana's value formats (packages/grafana-data/src/valueFormats/categories.ts)
GRAFANA_UNITS = {"short", "percentunit", "s", "bytes", "ops", "eps", "recps"}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ssi_grafana_generate", GRAFANA / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _boards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def test_committed_dashboards_equal_generator_output() -> None:
    gen = _generator()
    generated = {name: gen.render(board) for name, board in gen.dashboards().items()}
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert set(generated) == set(committed)
    for name, text in generated.items():
        assert committed[name] == text, f"{name} is stale: run python deploy/grafana/generate.py"
    assert gen.main(["--check"]) == 0


def test_stable_uids() -> None:
    assert {name: b["uid"] for name, b in _boards().items()} == UIDS


@pytest.mark.parametrize("name", sorted(UIDS))
def test_every_panel_follows_the_conventions(name: str) -> None:
    board = _boards()[name]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = set()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert panels
    for p in panels:
        where = f"{name} / {p['title']}"
        assert p["id"] not in ids, where
        ids.add(p["id"])
        assert p["fieldConfig"]["defaults"].get("unit") in GRAFANA_UNITS, where
        assert len(p.get("description", "")) > 20, where
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert p["targets"], where
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", where
            assert "$__rate_interval" in t["expr"], where
            assert 'job=~"$job"' in t["expr"] and 'instance=~"$instance"' in t["expr"], where
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, where


def test_the_issue_panels_are_there() -> None:
    titles = {name: {p["title"] for p in b["panels"]} for name, b in _boards().items()}
    service = titles["ssi-service.json"]
    for want in (
        "Events consumed by type",
        "Error and dead-letter ratio",
        "Batch processing time",
        "End-to-end latency",
        "Consumer lag per partition",
        "Batch sizes",
        "Redis call latency p99",
        "CPU",
        "Memory",
        "Rebalances",
    ):
        assert want in service
    business = titles["ssi-business.json"]
    for want in (
        "Users by score band",
        "Score changes by cause",
        "Pillar averages",
        "Users tracked",
        "Users per industry",
    ):
        assert want in business
    # RED before USE: the first row of the service dashboard is the RED one
    rows = [p["title"] for p in _boards()["ssi-service.json"]["panels"] if p["type"] == "row"]
    assert rows[0].startswith("RED") and rows[1].startswith("USE")


def test_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "ssi.yml").read_text())
    (provider,) = prov["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
