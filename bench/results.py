"""`bench/results.json`: one key per benchmark, each written without touching the others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


def save(key: str, result: dict[str, Any], path: Path = RESULTS) -> None:
    """Store `result` under `key`, keeping the other benchmarks' keys."""
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
    data[key] = result
    path.write_text(json.dumps(data, indent=2) + "\n")
