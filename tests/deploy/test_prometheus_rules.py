"""Prometheus configuration and rules: promtool's own checks and unit tests, plus the
conventions every alert follows (severity, annotations, a runbook section that exists)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.deploy.conftest import DEPLOY

PROM = DEPLOY / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
REQUIRED_ALERTS = {  # the list, by the alert that covers it
    "worker down": "SsiWorkerDown",
    "consumer lag growing": "SsiConsumerLagGrowing",
    "no progress while lag > 0": "SsiConsumerNoProgress",
    "dead-letter ratio high": "SsiDeadLetterRatioHigh",
    "processing latency p99 high": "SsiProcessingLatencyHigh",
    "Redis errors": "SsiRedisErrors",
    "Redis latency": "SsiRedisLatencyHigh",
    "decay sweep falling behind": "SsiDecaySweepBehind",
    "rebalance stuck": "SsiRebalanceStuck",
}


def _run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    return out


def _alerts() -> list[dict]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_promtool_check_config(promtool: str) -> None:
    out = _run(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert "SUCCESS" in out and f"{len(RULE_FILES)} rule files found" in out


def test_promtool_check_rules(promtool: str) -> None:
    out = _run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert out.count("SUCCESS") == len(RULE_FILES)


def test_promtool_unit_tests(promtool: str) -> None:
    tests = sorted((PROM / "tests").glob("*.yml"))
    assert tests
    out = _run(promtool, "test", "rules", *map(str, tests))
    assert "SUCCESS" in out and "FAILED" not in out


def test_promtool_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """The unit tests have teeth: with one threshold changed they fail."""
    for path in RULE_FILES:
        (tmp_path / "rules").mkdir(exist_ok=True)
        text = path.read_text()
        if path.name == "alerts.yml":
            text = text.replace(
                "ssi:dead_letter_ratio:rate5m > 0.05", "ssi:dead_letter_ratio:rate5m > 0.5"
            )
        (tmp_path / "rules" / path.name).write_text(text)
    (tmp_path / "tests").mkdir()
    test_file = tmp_path / "tests" / "alerts_test.yml"
    test_file.write_text((PROM / "tests" / "alerts_test.yml").read_text())
    done = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "SsiDeadLetterRatioHigh" in done.stdout + done.stderr


def test_required_alerts_exist() -> None:
    names = {a["alert"] for a in _alerts()}
    missing = {need: name for need, name in REQUIRED_ALERTS.items() if name not in names}
    assert not missing


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    doc = yaml.safe_load((PROM / "tests" / "alerts_test.yml").read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in doc["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested not firing"


def _anchors(markdown: str) -> set[str]:
    """GitHub-style heading anchors of a Markdown document."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(slug)
    return out


def test_alert_conventions_and_runbook_sections() -> None:
    anchors = _anchors((DEPLOY / "RUNBOOK.md").read_text())
    for alert in _alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        ann = alert["annotations"]
        for key in ("summary", "description", "runbook_url"):
            assert ann.get(key), (name, key)
        path, _, anchor = ann["runbook_url"].partition("#")
        assert path == "deploy/RUNBOOK.md", name
        assert anchor == name.lower(), name
        assert anchor in anchors, f"no RUNBOOK.md section for {name}"


def test_runbook_sections_have_meaning_confirm_and_action() -> None:
    text = (DEPLOY / "RUNBOOK.md").read_text()
    for alert in _alerts():
        section = text.split(f"## {alert['alert']}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Meaning**", "**Confirm**", "**Act**"):
            assert part in section, (alert["alert"], part)


def test_recording_rules_are_used() -> None:
    """Every recording rule feeds an alert or a dashboard: none is dead weight."""
    records = [
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]
    users = "\n".join(a["expr"] for a in _alerts())
    users += "".join(p.read_text() for p in (DEPLOY / "grafana" / "dashboards").glob("*.json"))
    unused = [r for r in records if r not in users]
    assert not unused
