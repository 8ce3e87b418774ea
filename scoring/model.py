"""The scoring model: counters, event catalogue, components and advice steps, loaded from TOML.

The model is data (DESIGN section 4): weights, targets, caps, window and persona live in a
versioned TOML file; this module only parses and checks it. `load_model()` without a path gives
the built-in v1 model shipped beside this module.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from scoring.errors import ModelError

PILLARS = ("brand", "people", "insights", "relationships")
PILLAR_NAMES = {
    "brand": "Establish your professional brand",
    "people": "Find the right people",
    "insights": "Engage with insights",
    "relationships": "Build strong relationships",
}
PILLAR_MAX = 25.0
SENIORITIES = (
    "entry",
    "senior",
    "manager",
    "director",
    "vp",
    "cxo",
    "owner",
    "partner",
    "training",
    "unpaid",
)
FIELD_TYPES = ("user", "id", "text", "bool", "count", "seniority", "degree")
COMPONENT_KINDS = ("profile", "saturation", "linear", "ratio")


@dataclass(frozen=True)
class Counter:
    """A stored per-user quantity: daily buckets with an optional per-day cap, or all-time."""

    name: str
    window: bool
    cap: float | None = None


@dataclass(frozen=True)
class FieldSpec:
    """One `data` field of an event type: its type and whether it must be present."""

    name: str
    type: str
    required: bool
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Credit:
    """How an event adds to one counter of one user."""

    to: str
    counter: str
    weight: float = 1.0
    weight_by: str | None = None
    weights: dict[str, float] = field(default_factory=dict)
    when: dict[str, str] = field(default_factory=dict)
    if_persona: str | None = None


@dataclass(frozen=True)
class EventSpec:
    """One event type of the catalogue."""

    type: str
    fields: tuple[FieldSpec, ...]
    credits: tuple[Credit, ...]
    counterpart: str | None = None
    snapshot: bool = False

    @cached_property
    def user_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.type == "user")


@dataclass(frozen=True)
class ProfileItem:
    """A profile-completeness item: a bool field, a count reaching `at_least`, or `per` scaled."""

    field: str
    weight: float
    label: str
    at_least: int = 1
    per: int | None = None


@dataclass(frozen=True)
class Component:
    """One scoring component of a pillar and how its points are computed."""

    pillar: str
    key: str
    points: float
    kind: str
    inputs: dict[str, float] = field(default_factory=dict)
    target: float = 1.0
    per: str | None = None
    full_at: float = 1.0
    numerator: str = ""
    denominator: str = ""
    prior_num: float = 0.0
    prior_den: float = 0.0
    goal: float = 1.0
    items: tuple[ProfileItem, ...] = ()
    step: dict[str, float] = field(default_factory=dict)
    advice: str = ""


@dataclass(frozen=True)
class Model:
    """A complete, checked scoring model."""

    model_version: str
    window_days: int
    persona: frozenset[str]
    future_tolerance_seconds: float
    max_record_bytes: int
    dedupe_horizon_seconds: float
    active_counter: str
    counters: dict[str, Counter]
    events: dict[str, EventSpec]
    components: tuple[Component, ...]
    source: str = "built-in"

    def pillar_components(self, pillar: str) -> tuple[Component, ...]:
        return tuple(c for c in self.components if c.pillar == pillar)

    # cached: a model is immutable once loaded, and these are read for every event and user
    @cached_property
    def window_counters(self) -> tuple[str, ...]:
        return tuple(n for n, c in self.counters.items() if c.window)

    @cached_property
    def total_counters(self) -> tuple[str, ...]:
        return tuple(n for n, c in self.counters.items() if not c.window)

    @cached_property
    def counter_positions(self) -> tuple[dict[str, int], dict[str, int]]:
        """1-based positions of the windowed and of the all-time counters (storage order)."""
        return (
            {n: i + 1 for i, n in enumerate(self.window_counters)},
            {n: i + 1 for i, n in enumerate(self.total_counters)},
        )


def _req(table: dict[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ModelError(f"{where}: missing '{key}'")
    return table[key]


def _field_spec(name: str, spec: str, where: str) -> FieldSpec:
    required = not spec.endswith("?")
    base = spec.rstrip("?")
    if base.startswith("enum:"):
        choices = tuple(c for c in base[5:].split("|") if c)
        if not choices:
            raise ModelError(f"{where}.{name}: empty enum")
        return FieldSpec(name, "enum", required, choices)
    if base not in FIELD_TYPES:
        raise ModelError(f"{where}.{name}: unknown field type '{base}'")
    return FieldSpec(name, base, required)


def _event(type_: str, table: dict[str, Any], counters: dict[str, Counter]) -> EventSpec:
    where = f"events.{type_}"
    fields = tuple(_field_spec(n, s, where) for n, s in table.get("fields", {}).items())
    names = {f.name for f in fields}
    users = {f.name for f in fields if f.type == "user"}
    credits = []
    for i, raw in enumerate(table.get("credits", [])):
        cw = f"{where}.credits[{i}]"
        credit = Credit(
            to=_req(raw, "to", cw),
            counter=_req(raw, "counter", cw),
            weight=float(raw.get("weight", 1.0)),
            weight_by=raw.get("weight_by"),
            weights={str(k): float(v) for k, v in raw.get("weights", {}).items()},
            when={str(k): str(v) for k, v in raw.get("when", {}).items()},
            if_persona=raw.get("if_persona"),
        )
        if credit.to != "actor" and credit.to not in users:
            raise ModelError(f"{cw}: 'to' must be 'actor' or a user field, not '{credit.to}'")
        if credit.counter not in counters:
            raise ModelError(f"{cw}: unknown counter '{credit.counter}'")
        for ref in [credit.weight_by, credit.if_persona, *credit.when]:
            if ref is not None and ref not in names:
                raise ModelError(f"{cw}: unknown field '{ref}'")
        credits.append(credit)
    counterpart = table.get("counterpart")
    if counterpart is not None and counterpart not in users:
        raise ModelError(f"{where}: counterpart '{counterpart}' is not a user field")
    return EventSpec(type_, fields, tuple(credits), counterpart, bool(table.get("snapshot")))


def _component(raw: dict[str, Any], counters: dict[str, Counter], window_days: int) -> Component:
    where = f"components.{raw.get('key', '?')}"
    kind = _req(raw, "kind", where)
    if kind not in COMPONENT_KINDS:
        raise ModelError(f"{where}: unknown kind '{kind}'")
    pillar = _req(raw, "pillar", where)
    if pillar not in PILLARS:
        raise ModelError(f"{where}: unknown pillar '{pillar}'")
    items = tuple(
        ProfileItem(
            field=_req(it, "field", where),
            weight=float(_req(it, "weight", where)),
            label=str(it.get("label", it["field"])),
            at_least=int(it.get("at_least", 1)),
            per=int(it["per"]) if "per" in it else None,
        )
        for it in raw.get("items", [])
    )
    comp = Component(
        pillar=pillar,
        key=_req(raw, "key", where),
        points=float(_req(raw, "points", where)),
        kind=kind,
        inputs={k: float(v) for k, v in raw.get("inputs", {}).items()},
        target=float(raw.get("target", 1.0)),
        per=raw.get("per"),
        full_at=float(raw.get("full_at", window_days)),
        numerator=str(raw.get("numerator", "")),
        denominator=str(raw.get("denominator", "")),
        prior_num=float(raw.get("prior_num", 0.0)),
        prior_den=float(raw.get("prior_den", 0.0)),
        goal=float(raw.get("goal", 1.0)),
        items=items,
        step={k: float(v) for k, v in raw.get("step", {}).items()},
        advice=str(raw.get("advice", "")),
    )
    refs = [*comp.inputs, *comp.step]
    if comp.per:
        refs.append(comp.per)
    if kind == "ratio":
        refs += [comp.numerator, comp.denominator]
    for ref in refs:
        if ref not in counters:
            raise ModelError(f"{where}: unknown counter '{ref}'")
    if kind in ("saturation", "linear") and not comp.inputs:
        raise ModelError(f"{where}: needs inputs")
    if comp.target <= 0 or comp.full_at <= 0 or comp.goal <= 0 or comp.points < 0:
        raise ModelError(f"{where}: target, full_at and goal must be > 0, points >= 0")
    return comp


def parse_model(text: str, source: str = "built-in") -> Model:
    """Parse and check a model from TOML text."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return _build(raw, source)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # a value of the wrong TOML type (a string where a number belongs, ...)
        raise ModelError(f"{source}: a value has the wrong type: {exc}") from None


def _build(raw: dict[str, Any], source: str) -> Model:
    window_days = int(_req(raw, "window_days", "model"))
    if window_days < 1:
        raise ModelError("window_days must be >= 1")
    counters = {
        name: Counter(name, bool(c.get("window", True)), float(c["cap"]) if "cap" in c else None)
        for name, c in _req(raw, "counters", "model").items()
    }
    active = str(raw.get("active_counter", "active"))
    if active not in counters or not counters[active].window:
        raise ModelError(f"active_counter '{active}' must be a windowed counter")
    persona = frozenset(raw.get("persona", []))
    if not persona <= set(SENIORITIES):
        raise ModelError(f"persona has unknown seniorities: {sorted(persona - set(SENIORITIES))}")
    events = {t: _event(t, e, counters) for t, e in _req(raw, "events", "model").items()}
    components = tuple(_component(c, counters, window_days) for c in raw.get("components", []))
    snapshot_fields = {f.name for e in events.values() if e.snapshot for f in e.fields}
    for c in components:
        for item in c.items:
            if item.field not in snapshot_fields:
                raise ModelError(
                    f"components.{c.key}: profile item '{item.field}' is not a field of any "
                    "snapshot event"
                )
    keys = [c.key for c in components]
    if len(set(keys)) != len(keys):
        raise ModelError("component keys must be unique")
    for pillar in PILLARS:
        total = sum(c.points for c in components if c.pillar == pillar)
        if abs(total - PILLAR_MAX) > 1e-9:
            raise ModelError(f"pillar '{pillar}' points add up to {total}, not {PILLAR_MAX}")
    return Model(
        model_version=str(_req(raw, "model_version", "model")),
        window_days=window_days,
        persona=persona,
        future_tolerance_seconds=float(raw.get("future_tolerance_seconds", 300)),
        max_record_bytes=int(raw.get("max_record_bytes", 65536)),
        dedupe_horizon_seconds=float(raw.get("dedupe_horizon_seconds", 86400)),
        active_counter=active,
        counters=counters,
        events=events,
        components=components,
        source=source,
    )


@lru_cache(maxsize=8)
def _load_cached(path: str | None) -> Model:
    if path is None:
        text = resources.files("scoring").joinpath("model.toml").read_text(encoding="utf-8")
        return parse_model(text)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror}") from exc
    return parse_model(text, source=path)


def load_model(path: str | Path | None = None) -> Model:
    """The model at `path`, or the built-in one. Parsed once per path."""
    return _load_cached(str(path) if path is not None else None)
