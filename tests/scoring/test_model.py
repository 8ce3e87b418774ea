"""The scoring model: the built-in v1 file, rejection of malformed files, `ssi model`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

from scoring.batch import score_lines
from scoring.errors import ModelError
from scoring.model import PILLARS, load_model, parse_model
from scoring.score import score

BUILTIN_TEXT = resources.files("scoring").joinpath("model.toml").read_text(encoding="utf-8")
REPO = Path(__file__).resolve().parents[2]

EXPECTED_COMPONENTS = {
    "brand": {"completeness": 9, "publishing": 6, "engagement_received": 6, "audience": 4},
    "people": {"prospecting": 8, "searches": 5, "leads": 4, "active_days": 8},
    "insights": {
        "conversations": 8,
        "reactions": 4,
        "groups": 3,
        "inmail_response": 5,
        "resonance": 5,
    },
    "relationships": {"network": 7, "persona": 6, "acceptance": 6, "follow_ups": 6},
}


def _replace_once(text: str, old: str, new: str) -> str:
    """Edit the built-in model text at exactly one place, so the test stays honest."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in the model"
    return text.replace(old, new)


# ------------------------------------------------------------------------------ built-in model


def test_builtin_model_loads_with_version_window_and_persona() -> None:
    model = load_model()
    assert model.model_version == "1"
    assert model.window_days == 28
    assert model.persona == frozenset({"director", "vp", "cxo", "owner", "partner"})
    assert model.future_tolerance_seconds == 300
    assert model.max_record_bytes == 65536


def test_builtin_model_has_the_17_components_of_design_section_4() -> None:
    model = load_model()
    assert len(model.components) == 17
    got = {p: {c.key: c.points for c in model.pillar_components(p)} for p in PILLARS}
    assert got == EXPECTED_COMPONENTS


@pytest.mark.parametrize("pillar", PILLARS)
def test_each_pillar_sums_to_25(pillar: str) -> None:
    assert sum(c.points for c in load_model().pillar_components(pillar)) == pytest.approx(25.0)


def test_builtin_catalogue_covers_every_event_type_of_design_3_2() -> None:
    types = {
        "profile.updated",
        "post.published",
        "post.reacted",
        "post.commented",
        "post.shared",
        "connection.requested",
        "connection.accepted",
        "connection.declined",
        "inmail.sent",
        "inmail.replied",
        "message.sent",
        "profile.viewed",
        "search.performed",
        "lead.saved",
        "group.joined",
        "group.posted",
        "endorsement.given",
        "follow.started",
    }
    assert set(load_model().events) == types


def test_builtin_model_is_parsed_once() -> None:
    assert load_model() is load_model()


# ---------------------------------------------------------------------------- malformed models

MALFORMED = [
    pytest.param(
        (
            'credits = [{ to = "actor", counter = "posts" }]',
            'credits = [{ to = "actor", counter = "postz" }]',
        ),
        r"events\.post\.published\.credits\[0\]: unknown counter 'postz'",
        id="unknown-counter-in-credit",
    ),
    pytest.param(
        ('key = "publishing"\npoints = 6', 'key = "publishing"\npoints = 7'),
        r"pillar 'brand' points add up to 26(\.0)?, not 25",
        id="pillar-sums-to-26",
    ),
    pytest.param(
        ('key = "follow_ups"\npoints = 6', 'key = "follow_ups"\npoints = 5'),
        r"pillar 'relationships' points add up to 24(\.0)?, not 25",
        id="pillar-sums-to-24",
    ),
    pytest.param(
        ("window_days = 28 ", "window_days = = 28 "),
        r"not valid TOML",
        id="bad-toml",
    ),
    pytest.param(
        (
            'fields = { group_id = "id" }\ncredits = [{ to = "actor", counter = "groups" }]\n\n'
            '[events."group.posted"]',
            'fields = { group_id = "uuid" }\ncredits = [{ to = "actor", counter = "groups" }]\n\n'
            '[events."group.posted"]',
        ),
        r"events\.group\.joined\.group_id: unknown field type 'uuid'",
        id="unknown-field-type",
    ),
    pytest.param(
        ('kind = "enum:lead|account"', 'kind = "enum:"'),
        r"events\.lead\.saved\.kind: empty enum",
        id="empty-enum",
    ),
    pytest.param(
        ("step = { posts = 1 }", "step = { postz = 1 }"),
        r"components\.publishing: unknown counter 'postz'",
        id="unknown-counter-in-step",
    ),
    pytest.param(
        ("inputs = { searches = 1 }", "inputs = { searchez = 1 }"),
        r"components\.searches: unknown counter 'searchez'",
        id="unknown-counter-in-inputs",
    ),
    pytest.param(
        ('weight_by = "degree"', 'weight_by = "distance"'),
        r"events\.profile\.viewed\.credits\[0\]: unknown field 'distance'",
        id="unknown-weight-by-field",
    ),
    pytest.param(
        (
            '{ to = "viewed_id", counter = "audience", weight = 1 }',
            '{ to = "viewer_id", counter = "audience", weight = 1 }',
        ),
        r"'to' must be 'actor' or a user field, not 'viewer_id'",
        id="credit-to-unknown-user-field",
    ),
    pytest.param(
        (
            'key = "leads"\npoints = 4\nkind = "saturation"',
            'key = "leads"\npoints = 4\nkind = "sigmoid"',
        ),
        r"components\.leads: unknown kind 'sigmoid'",
        id="unknown-component-kind",
    ),
    pytest.param(
        ('pillar = "people"\nkey = "leads"', 'pillar = "prospects"\nkey = "leads"'),
        r"components\.leads: unknown pillar 'prospects'",
        id="unknown-pillar",
    ),
    pytest.param(
        ('persona = ["director", "vp", "cxo", "owner", "partner"]', 'persona = ["vp", "ceo"]'),
        r"persona has unknown seniorities: \['ceo'\]",
        id="unknown-persona-seniority",
    ),
    pytest.param(
        ('model_version = "1"\n', ""),
        r"missing 'model_version'",
        id="missing-model-version",
    ),
    pytest.param(
        ("target = 8\n", "target = 0\n"),
        r"components\.publishing: target, full_at and goal must be > 0",
        id="zero-target",
    ),
    pytest.param(
        (
            'counterpart = "author_id"\ncredits = [\n'
            '  { to = "actor", counter = "conversations", weight = 1 }',
            'counterpart = "post_id"\ncredits = [\n'
            '  { to = "actor", counter = "conversations", weight = 1 }',
        ),
        r"counterpart 'post_id' is not a user field",
        id="counterpart-not-a-user-field",
    ),
    pytest.param(
        ('active_counter = "active"', 'active_counter = "connections"'),
        r"active_counter 'connections' must be a windowed counter",
        id="active-counter-not-windowed",
    ),
]


@pytest.mark.parametrize(("edit", "message"), MALFORMED)
def test_malformed_model_raises_model_error_naming_the_problem(
    edit: tuple[str, str], message: str
) -> None:
    text = _replace_once(BUILTIN_TEXT, *edit)
    with pytest.raises(ModelError, match=message):
        parse_model(text, source="custom.toml")


def test_bad_toml_message_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("model_version = \n", encoding="utf-8")
    with pytest.raises(ModelError, match=r"broken\.toml: not valid TOML"):
        load_model(path)


def test_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"cannot read model file .*nope\.toml"):
        load_model(tmp_path / "nope.toml")


WRONG_TYPES = [
    pytest.param(("window_days = 28 ", 'window_days = "four weeks" '), id="window-days-string"),
    pytest.param(
        ('key = "publishing"\npoints = 6', 'key = "publishing"\npoints = "six"'),
        id="points-string",
    ),
    pytest.param(("posts = { window = true, cap = 3 }", "posts = 3"), id="counter-not-a-table"),
    pytest.param(
        ("inputs = { posts = 1 }", 'inputs = { posts = "one" }'), id="input-weight-string"
    ),
]


@pytest.mark.parametrize("edit", WRONG_TYPES)
def test_wrongly_typed_model_values_raise_model_error(edit: tuple[str, str]) -> None:
    text = _replace_once(BUILTIN_TEXT, *edit)
    with pytest.raises(ModelError, match=r"custom\.toml: a value has the wrong type"):
        parse_model(text, source="custom.toml")


def test_completeness_item_on_unknown_profile_field_is_rejected() -> None:
    text = _replace_once(BUILTIN_TEXT, 'field = "photo"', 'field = "fotos"')
    with pytest.raises(ModelError, match=r"components\.completeness: profile item 'fotos'"):
        parse_model(text, source="custom.toml")


# --------------------------------------------------------------------------------- custom models

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _accepted(i: int, seniority: str) -> str:
    """u1 accepts a request from r{i} whose seniority is `seniority`."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"acc-{i}",
            "source": "app://crm",
            "type": "connection.accepted",
            "time": "2026-11-20T10:00:00Z",
            "subject": "u1",
            "data": {"requester_id": f"r{i}", "requester_seniority": seniority},
        }
    )


def _persona_points(model_text: str, source: str) -> float:
    model = parse_model(model_text, source=source)
    lines = [_accepted(1, "manager"), _accepted(2, "manager"), _accepted(3, "entry")]
    result = score_lines(lines, model, NOW)
    comps = {c.key: c for c in score(result.states["u1"], model, NOW).components}
    return comps["persona"].points


def test_custom_persona_changes_persona_scoring() -> None:
    custom = _replace_once(
        BUILTIN_TEXT,
        'persona = ["director", "vp", "cxo", "owner", "partner"]',
        'persona = ["manager"]',
    )
    # Default persona: no manager counts; custom: 2 of 3 connections match, share 0.67 ≥ 0.30.
    assert _persona_points(BUILTIN_TEXT, "built-in") == 0.0
    assert _persona_points(custom, "custom.toml") == pytest.approx(6.0)


def test_custom_model_file_loads_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "model.toml"
    path.write_text(
        _replace_once(BUILTIN_TEXT, 'model_version = "1"', 'model_version = "1-manager"'),
        encoding="utf-8",
    )
    model = load_model(path)
    assert model.model_version == "1-manager"
    assert model.source == str(path)


# ----------------------------------------------------------------------------------- ssi model


def _ssi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("SSI_")},
    )


def test_ssi_model_prints_every_component_with_its_points() -> None:
    proc = _ssi("model")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "version 1" in out
    lines = out.splitlines()
    for pillar, comps in EXPECTED_COMPONENTS.items():
        for key, points in comps.items():
            row = [ln for ln in lines if ln.split()[:3] == [pillar, key, str(points)]]
            assert row, f"no row for {pillar}/{key} ({points} points) in:\n{out}"


def test_ssi_model_file_shows_the_custom_persona(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        _replace_once(
            BUILTIN_TEXT,
            'persona = ["director", "vp", "cxo", "owner", "partner"]',
            'persona = ["manager", "senior"]',
        ),
        encoding="utf-8",
    )
    proc = _ssi("model", "--file", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "persona: manager, senior" in proc.stdout
    assert str(path) in proc.stdout


def test_ssi_model_with_malformed_file_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        _replace_once(
            BUILTIN_TEXT, 'key = "publishing"\npoints = 6', 'key = "publishing"\npoints = 7'
        ),
        encoding="utf-8",
    )
    proc = _ssi("model", "--file", str(path))
    assert proc.returncode == 2
    assert "pillar 'brand' points add up to" in proc.stderr
    assert "Traceback" not in proc.stderr
