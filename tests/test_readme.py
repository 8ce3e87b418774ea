"""The README's event catalogue and model table agree with the code."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from scoring.events import parse_structured
from scoring.model import load_model

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_every_catalogue_example_is_a_valid_event_of_its_type() -> None:
    model = load_model()
    rows = re.findall(r"^\| `([a-z]+\.[a-z]+)` \| `(\{.*?\})` \|", README, re.M)
    assert {t for t, _ in rows} | {"profile.updated"} == set(model.events)
    for type_, data in rows:
        env = {
            "specversion": "1.0",
            "id": "e1",
            "source": "app://readme",
            "type": type_,
            "time": "2026-11-20T10:15:00Z",
            "subject": "u42",
            "data": json.loads(data),
        }
        assert parse_structured(json.dumps(env), model, NOW).type == type_


def test_structured_example_and_model_table_match_the_model() -> None:
    model = load_model()
    first = re.search(r'^\{"specversion".*\}$', README, re.M)
    assert first is not None
    assert parse_structured(first.group(0), model, NOW).type == "profile.updated"
    table = re.findall(r"^\| (\w+) \| (\w+) \| (\d+) \|", README, re.M)
    assert {(p, c, float(n)) for p, c, n in table} == {
        (c.pillar, c.key, c.points) for c in model.components
    }
