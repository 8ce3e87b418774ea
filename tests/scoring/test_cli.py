"""`ssi score-file`, `ssi model` and `ssi --help` as a user runs them (DESIGN 3.4)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from scoring.batch import records, score_lines
from scoring.events import parse_time
from scoring.model import PILLARS, load_model

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-20T12:00:00Z"


def ssi(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SSI_")}
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        env={**base, **(env or {})},
        timeout=60,
    )


def ev(id_: str, type_: str, subject: str, time: str, **data: Any) -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": id_,
            "source": "cli-test",
            "type": type_,
            "time": time,
            "subject": subject,
            "data": data,
        }
    )


# Users deliberately out of order in the file; u5 is only named (a pending request), so it
# scores 0; "a0" sorts first.
GOOD = [
    ev("1", "post.published", "u3", "2026-11-19T09:00:00Z", post_id="p1", format="text"),
    ev("2", "post.commented", "u1", "2026-11-19T10:00:00Z", post_id="p1", author_id="u3"),
    ev("3", "profile.updated", "a0", "2026-11-01T08:00:00+01:00", photo=True, headline=True),
    ev(
        "4",
        "connection.requested",
        "u3",
        "2026-11-18T10:00:00Z",
        recipient_id="u5",
        personalized=True,
    ),
    ev("5", "follow.started", "u10", "2026-11-20T11:30:00Z", followee_id="u3"),
    ev("2", "post.commented", "u1", "2026-11-19T10:00:00Z", post_id="p1", author_id="u3"),
]
USERS = ["a0", "u1", "u10", "u3", "u5"]  # string order: "u10" < "u3"


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(GOOD) + "\n", encoding="utf-8")
    return path


def parse_out(proc: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


def test_score_file_outputs_one_sorted_line_per_user(good_file: Path) -> None:
    proc = ssi("score-file", str(good_file), "--now", NOW)
    assert proc.returncode == 0, proc.stderr
    out = parse_out(proc)
    assert [r["user_id"] for r in out] == USERS
    for rec in out:
        assert set(rec) == {"user_id", "score", "pillars", "as_of"}
        assert set(rec["pillars"]) == set(PILLARS)
        assert rec["as_of"] == NOW
        assert rec["score"] == round(rec["score"], 2)
    by_user = {r["user_id"]: r for r in out}
    assert by_user["u5"]["score"] == 0.0
    assert by_user["u5"]["pillars"] == dict.fromkeys(PILLARS, 0.0)
    assert by_user["a0"]["pillars"]["brand"] == pytest.approx(9 * 0.35)
    assert by_user["u3"]["score"] > by_user["u1"]["score"] > 0


def test_score_file_matches_the_library(good_file: Path) -> None:
    model = load_model()
    expected = list(records(score_lines(GOOD, model, parse_time(NOW)), model))
    assert parse_out(ssi("score-file", str(good_file), "--now", NOW)) == expected


def test_score_file_reads_stdin_with_dash(good_file: Path) -> None:
    from_file = ssi("score-file", str(good_file), "--now", NOW)
    from_stdin = ssi("score-file", "-", "--now", NOW, stdin=good_file.read_bytes())
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == from_file.stdout
    assert from_stdin.stdout


def test_now_defaults_to_the_latest_event_time(good_file: Path) -> None:
    out = parse_out(ssi("score-file", str(good_file)))
    assert {r["as_of"] for r in out} == {"2026-11-20T11:30:00Z"}


def test_now_with_an_offset_is_reported_in_utc(good_file: Path) -> None:
    out = parse_out(ssi("score-file", str(good_file), "--now", "2026-11-20T14:00:00+02:00"))
    assert {r["as_of"] for r in out} == {NOW}


@pytest.mark.parametrize(
    "now", ["tomorrow", "2026-11-20", "2026-11-20T12:00:00", "2026-13-01T00:00:00Z"]
)
def test_bad_now_exits_2(good_file: Path, now: str) -> None:
    proc = ssi("score-file", str(good_file), "--now", now)
    assert proc.returncode == 2
    assert b"--now" in proc.stderr
    assert b"Traceback" not in proc.stderr
    assert proc.stdout == b""


BAD = [
    ("{not json", "invalid_json"),
    (ev("b1", "post.liked", "u1", "2026-11-19T10:00:00Z", post_id="p"), "unknown_type"),
    (ev("b2", "post.published", "u1", "2026-11-19T10:00:00Z", post_id="p"), "schema"),
    (ev("b3", "group.joined", "u1", "2026-11-19T10:00:00", group_id="g"), "invalid_time"),
    (ev("b4", "group.joined", "u9", "2026-11-20T12:06:00Z", group_id="g"), "future_time"),
]


@pytest.fixture
def mixed_file(tmp_path: Path) -> Path:
    # line 1 good, 2 bad, 3 blank, 4 good, 5.. bad
    lines = [GOOD[0], BAD[0][0], "", GOOD[1], *(b for b, _ in BAD[1:])]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


EXPECTED_ERRORS = [
    (2, "invalid_json"),
    (5, "unknown_type"),
    (6, "schema"),
    (7, "invalid_time"),
    (8, "future_time"),
]


def _error_lines(stderr: bytes) -> list[tuple[int, str]]:
    found = []
    for line in stderr.decode().splitlines():
        m = re.fullmatch(r"line (\d+): ([a-z_]+): (.+)", line)
        if m:
            found.append((int(m.group(1)), m.group(2)))
    return found


def test_bad_lines_are_reported_and_exit_0_without_strict(mixed_file: Path) -> None:
    proc = ssi("score-file", str(mixed_file), "--now", NOW)
    assert proc.returncode == 0
    assert _error_lines(proc.stderr) == EXPECTED_ERRORS
    assert [r["user_id"] for r in parse_out(proc)] == ["u1", "u3"]  # good lines still scored
    assert b"Traceback" not in proc.stderr


def test_strict_exits_1_on_bad_lines(mixed_file: Path) -> None:
    proc = ssi("score-file", str(mixed_file), "--now", NOW, "--strict")
    assert proc.returncode == 1
    assert _error_lines(proc.stderr) == EXPECTED_ERRORS
    assert [r["user_id"] for r in parse_out(proc)] == ["u1", "u3"]


def test_strict_exits_0_on_a_clean_file(good_file: Path) -> None:
    proc = ssi("score-file", str(good_file), "--now", NOW, "--strict")
    assert proc.returncode == 0, proc.stderr
    assert _error_lines(proc.stderr) == []


def test_explain_adds_components_and_advice(good_file: Path) -> None:
    plain = {r["user_id"]: r for r in parse_out(ssi("score-file", str(good_file), "--now", NOW))}
    out = parse_out(ssi("score-file", str(good_file), "--now", NOW, "--explain"))
    model = load_model()
    for rec in out:
        assert {k: rec[k] for k in plain[rec["user_id"]]} == plain[rec["user_id"]]
        comps = rec["components"]
        assert set(comps) == set(PILLARS)
        for pillar in PILLARS:
            keys = {c.key for c in model.pillar_components(pillar)}
            assert set(comps[pillar]) == keys
            for comp in comps[pillar].values():
                assert set(comp) >= {"value", "points", "max_points"}
                assert 0 <= comp["points"] <= comp["max_points"]
            assert sum(c["points"] for c in comps[pillar].values()) == pytest.approx(
                rec["pillars"][pillar], abs=0.05
            )
        assert rec["advice"], rec["user_id"]
        gains = [a["gain"] for a in rec["advice"]]
        assert gains == sorted(gains, reverse=True)
        assert all(g > 0 for g in gains)
        for a in rec["advice"]:
            assert set(a) >= {"pillar", "component", "text", "gain"}
            assert a["component"] in {c.key for c in model.pillar_components(a["pillar"])}


def test_missing_file_exits_2_without_traceback(tmp_path: Path) -> None:
    proc = ssi("score-file", str(tmp_path / "missing.jsonl"), "--now", NOW)
    assert proc.returncode == 2
    assert b"missing.jsonl" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_empty_input_prints_nothing() -> None:
    proc = ssi("score-file", "-", "--now", NOW, stdin=b"")
    assert proc.returncode == 0
    assert proc.stdout == b""


def test_ssi_model_env_selects_a_custom_model(tmp_path: Path, good_file: Path) -> None:
    text = resources.files("scoring").joinpath("model.toml").read_text(encoding="utf-8")
    custom = tmp_path / "model.toml"
    custom.write_text(
        text.replace('model_version = "1"', 'model_version = "custom-7"'), encoding="utf-8"
    )
    proc = ssi(
        "score-file", str(good_file), "--now", NOW, "--explain", env={"SSI_MODEL": str(custom)}
    )
    assert proc.returncode == 0, proc.stderr
    assert {r["model_version"] for r in parse_out(proc)} == {"custom-7"}
    shown = ssi("model", env={"SSI_MODEL": str(custom)})
    assert b"version custom-7" in shown.stdout


def test_ssi_model_prints_the_model() -> None:
    proc = ssi("model")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "version 1" in text
    for comp in load_model().components:
        assert re.search(rf"^{comp.pillar}\s+{comp.key}\s", text, re.M), comp.key
    assert "persona: cxo, director, owner, partner, vp" in text


def test_ssi_model_toml_prints_the_file() -> None:
    proc = ssi("model", "--toml")
    assert proc.returncode == 0
    assert proc.stdout.decode() == resources.files("scoring").joinpath("model.toml").read_text(
        encoding="utf-8"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], [b"score-file", b"model", b"simulate"]),
        (["score-file", "--help"], [b"--now", b"--explain", b"--strict"]),
        (["model", "--help"], [b"--file"]),
    ],
)
def test_help(args: list[str], expected: list[bytes]) -> None:
    proc = ssi(*args)
    assert proc.returncode == 0, proc.stderr
    for word in expected:
        assert word in proc.stdout


def test_no_command_is_a_usage_error() -> None:
    proc = ssi()
    assert proc.returncode == 2
    assert b"usage" in proc.stderr.lower()
