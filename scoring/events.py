"""Decoding and validating activity events (CloudEvents 1.0, structured or binary mode).

Every rejection raises `InvalidEvent` with a stable reason code (see `scoring.errors`). Checks
run cheapest first: size, encoding, JSON, envelope, type, data fields, time. The clock is
passed in; nothing here reads the wall clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from scoring.errors import InvalidEvent
from scoring.model import SENIORITIES, EventSpec, FieldSpec, Model

MAX_ID_CHARS = 256
_RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})\Z"  # \Z: `$` would also match before a final newline
)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_ENVELOPE_STR = ("id", "source", "type", "subject")


@dataclass(frozen=True, slots=True)
class Event:
    """A validated activity event. `data` holds the catalogue fields only, normalised."""

    id: str
    source: str
    type: str
    time: datetime
    subject: str
    data: Mapping[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        """The identity of the event: a second event with the same pair is a duplicate."""
        return (self.source, self.id)

    @property
    def day(self) -> int:
        """The event's UTC calendar date as a proleptic ordinal (its window bucket)."""
        return self.time.date().toordinal()


def parse_time(value: Any) -> datetime:
    """An RFC 3339 timestamp with `Z` or a numeric offset, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise InvalidEvent("invalid_time", "time must be an RFC 3339 string")
    m = _RFC3339.match(value)
    if not m:
        raise InvalidEvent("invalid_time", f"time {value[:40]!r} is not RFC 3339 with a UTC offset")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = m.group(7) or ""
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    off = m.group(8)
    if off in ("Z", "z"):
        tz = UTC
    else:
        sign = 1 if off[0] == "+" else -1
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            raise InvalidEvent("invalid_time", f"time {value[:40]!r} has a bad offset")
        tz = timezone(sign * timedelta(hours=oh, minutes=om))
    try:
        # OverflowError: a valid local time in years 1 or 9999 can fall outside them in UTC
        return datetime(y, mo, d, h, mi, s, micro, tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidEvent("invalid_time", f"time {value[:40]!r}: {exc}") from None


def check_not_future(time: datetime, now: datetime, model: Model) -> None:
    """Reject an event time more than the model's tolerance after the clock."""
    if time > now + timedelta(seconds=model.future_tolerance_seconds):
        raise InvalidEvent(
            "future_time",
            f"time {format_time(time)} is more than "
            f"{model.future_tolerance_seconds:g} s after the clock ({format_time(now)})",
        )


def format_time(dt: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, milliseconds only when present."""
    dt = dt.astimezone(UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(raw: bytes | str, max_bytes: int) -> Any:
    """Size, encoding and JSON checks shared by both CloudEvents modes."""
    size = len(raw.encode("utf-8", "surrogatepass")) if isinstance(raw, str) else len(raw)
    if size > max_bytes:
        raise InvalidEvent("too_large", f"record is {size} bytes, the limit is {max_bytes}")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEvent(
                "invalid_encoding", f"not UTF-8 at byte {exc.start}: {exc.reason}"
            ) from None
    else:
        text = raw
        try:  # a `str` may hold lone surrogates that no UTF-8 record could carry
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEvent(
                "invalid_encoding", f"not Unicode text at character {exc.start}: {exc.reason}"
            ) from None
    if not text.strip():
        raise InvalidEvent("invalid_json", "empty record")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidEvent("invalid_json", "JSON nested too deeply") from None
    except ValueError as exc:
        raise InvalidEvent("invalid_json", str(exc)[:200]) from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise InvalidEvent("invalid_encoding", "a string holds an unpaired UTF-16 surrogate")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """JSON escapes can spell text that is not Unicode (lone surrogates): not a valid id."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _check_field(spec: FieldSpec, value: Any) -> Any:
    t = spec.type
    name = spec.name
    if t in ("user", "id", "text"):
        if not isinstance(value, str) or not value:
            raise InvalidEvent("schema", f"data.{name} must be a non-empty string")
        if len(value) > MAX_ID_CHARS:
            raise InvalidEvent("schema", f"data.{name} is longer than {MAX_ID_CHARS} characters")
        return value
    if t == "bool":
        if not isinstance(value, bool):
            raise InvalidEvent("schema", f"data.{name} must be true or false")
        return value
    if t == "count":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidEvent("schema", f"data.{name} must be an integer >= 0")
        return value
    if t == "seniority":
        if value not in SENIORITIES:
            raise InvalidEvent("schema", f"data.{name} must be one of {', '.join(SENIORITIES)}")
        return value
    if t == "degree":
        if isinstance(value, int) and not isinstance(value, bool) and value in (1, 2, 3):
            return str(value)
        if value in ("1", "2", "3", "out"):
            return value
        raise InvalidEvent("schema", f'data.{name} must be 1, 2, 3 or "out"')
    if t == "enum":
        if value not in spec.choices:
            raise InvalidEvent("schema", f"data.{name} must be one of {', '.join(spec.choices)}")
        return value
    raise AssertionError(t)  # pragma: no cover - the model loader rejects unknown types


def validate_data(spec: EventSpec, data: Any) -> dict[str, Any]:
    """Required fields present and typed; unknown extra fields dropped."""
    if not isinstance(data, dict):
        raise InvalidEvent("schema", "data must be a JSON object")
    out: dict[str, Any] = {}
    for f in spec.fields:
        value = data.get(f.name)
        if value == "" and not f.required and f.type == "text":
            value = None  # an empty optional text (industry, team, ...) is absent
        if value is None:
            if f.required:
                raise InvalidEvent("schema", f"data.{f.name} is required for {spec.type}")
            continue
        out[f.name] = _check_field(f, value)
    return out


def from_envelope(env: Any, model: Model, now: datetime | None) -> Event:
    """Validate a decoded structured-mode envelope (a dict) into an `Event`."""
    if not isinstance(env, dict):
        raise InvalidEvent("schema", f"event must be a JSON object, not {type(env).__name__}")
    if env.get("specversion") != "1.0":
        raise InvalidEvent("schema", 'specversion must be "1.0"')
    for name in _ENVELOPE_STR:
        value = env.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidEvent("schema", f"{name} must be a non-empty string")
        if len(value) > MAX_ID_CHARS:
            raise InvalidEvent("schema", f"{name} is longer than {MAX_ID_CHARS} characters")
    spec = model.events.get(env["type"])
    if spec is None:
        raise InvalidEvent("unknown_type", f"unknown event type {env['type'][:64]!r}")
    if not isinstance(env.get("time"), str):
        raise InvalidEvent("schema", "time must be an RFC 3339 string")
    data = validate_data(spec, env.get("data", {} if spec.snapshot else None))
    time = parse_time(env["time"])
    if now is not None:
        check_not_future(time, now, model)
    return Event(env["id"], env["source"], env["type"], time, env["subject"], data)


def parse_structured(raw: bytes | str, model: Model, now: datetime | None) -> Event:
    """A structured-mode CloudEvent (the whole event as one JSON object)."""
    return from_envelope(decode_json(raw, model.max_record_bytes), model, now)


def parse_binary(
    headers: Iterable[tuple[str, bytes | None]],
    value: bytes | None,
    model: Model,
    now: datetime | None,
) -> Event:
    """A binary-mode CloudEvent: `ce_*` headers carry the attributes, the value is `data`.
    A header with a null value is an empty attribute."""
    env: dict[str, Any] = {}
    size = len(value or b"")
    for name, raw in headers:
        size += len(name) + len(raw or b"")
        lname = name.lower()
        if not lname.startswith("ce_"):
            continue
        try:
            env[lname[3:]] = (raw or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("invalid_encoding", f"header {name} is not UTF-8") from None
    if size > model.max_record_bytes:
        raise InvalidEvent(
            "too_large", f"record is {size} bytes, the limit is {model.max_record_bytes}"
        )
    # an empty value is no data: only a snapshot type (all fields optional) accepts that
    env["data"] = decode_json(value, model.max_record_bytes) if value else None
    spec = model.events.get(env.get("type", ""))
    if env["data"] is None and spec is not None and spec.snapshot:
        env["data"] = {}
    return from_envelope(env, model, now)


def is_binary_mode(headers: Iterable[tuple[str, bytes | None]]) -> bool:
    """A record is binary mode when it carries a `ce_specversion` header."""
    return any(name.lower() == "ce_specversion" for name, _ in headers)
