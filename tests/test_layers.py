"""Imports go one way, streams -> state -> scoring, and scoring never reads the clock.

DESIGN section 2 and STYLE 1 and 3, checked statically with `ast` so that a lazy import inside
a function counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "scoring": {"faust", "redis", "aiokafka", "mode", "prometheus_client", "state", "streams"},
    "state": {"faust", "aiokafka", "mode", "streams"},
}

# Calls that read the wall clock; scoring/ takes `now` as an argument instead.
CLOCK_CALLS = {
    "time.time",
    "time.time_ns",
    "datetime.now",
    "datetime.utcnow",
    "datetime.today",
    "datetime.datetime.now",
    "datetime.datetime.utcnow",
    "datetime.datetime.today",
    "date.today",
    "datetime.date.today",
}
CLOCK_FUNCTIONS = {("time", "time"), ("time", "time_ns")}  # `from time import time`


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of every module imported anywhere in `source` (relative ones resolved)."""
    found: set[str] = set()
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            if name:
                found.add(name)
            found.update(f"{name}.{alias.name}" if name else alias.name for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and _dotted(node.func) in ("importlib.import_module", "import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def clock_calls(source: str) -> list[str]:
    """Wall-clock reads in `source`, as `name@line`."""
    tree = ast.parse(source)
    bare = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if (node.module, alias.name) in CLOCK_FUNCTIONS
    }
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in CLOCK_CALLS or name in bare:
                hits.append(f"{name}@{node.lineno}")
    return hits


def violations(package: str) -> list[str]:
    bad = []
    for path in python_files(package):
        mod = module_name(path)
        names = imported_modules(path.read_text(encoding="utf-8"), mod, path.stem == "__init__")
        for name in sorted(names):
            if name.split(".")[0] in FORBIDDEN[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


def test_the_packages_are_where_the_layout_says() -> None:
    for package in ("scoring", "state", "streams"):
        assert (ROOT / package / "__init__.py").is_file(), package
    assert len(python_files("scoring")) >= 8


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package: str) -> None:
    assert violations(package) == []


def test_scoring_never_reads_the_clock() -> None:
    hits = [
        f"{path.relative_to(ROOT)}: {hit}"
        for path in python_files("scoring")
        for hit in clock_calls(path.read_text(encoding="utf-8"))
    ]
    assert hits == []


def test_streams_does_wire_the_other_layers() -> None:
    names = set().union(
        *(
            imported_modules(p.read_text(encoding="utf-8"), module_name(p), p.stem == "__init__")
            for p in python_files("streams")
        )
    )
    assert any(n.split(".")[0] == "scoring" for n in names)


# The checkers themselves must catch what they are for.


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import faust\n", "scoring.x", "faust"),
        ("import redis.asyncio as r\n", "scoring.x", "redis.asyncio"),
        ("from aiokafka import AIOKafkaConsumer\n", "scoring.x", "aiokafka"),
        ("def f():\n    from state import keys\n", "scoring.x", "state.keys"),
        ("from ..streams import app\n", "scoring.x", "streams.app"),
        ("from .. import streams\n", "scoring.x", "streams"),
        (
            "import importlib\nimportlib.import_module('prometheus_client')\n",
            "scoring.x",
            "prometheus_client",
        ),
        ("from . import model\n", "scoring", "scoring.model"),
    ],
)
def test_import_checker_sees(source: str, module: str, expected: str) -> None:
    assert expected in imported_modules(source, module, is_package=module == "scoring")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import time\nx = time.time()\n", ["time.time@2"]),
        ("from datetime import datetime, UTC\nx = datetime.now(UTC)\n", ["datetime.now@2"]),
        ("import datetime\nx = datetime.datetime.utcnow()\n", ["datetime.datetime.utcnow@2"]),
        (
            "from datetime import datetime\n\ndef f():\n    return datetime.utcnow()\n",
            ["datetime.utcnow@4"],
        ),
        ("from time import time as now\nx = now()\n", ["now@2"]),
        ("from datetime import date\nx = date.today()\n", ["date.today@2"]),
        ("from datetime import datetime\nx = datetime.fromisoformat('2026-01-01')\n", []),
        ("def f(now):\n    return now.date()\n", []),
    ],
)
def test_clock_checker_sees(source: str, expected: list[str]) -> None:
    assert clock_calls(source) == expected
