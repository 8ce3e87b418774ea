"""The exception tree of ssi-stream.

SsiError                    root of everything this project raises on purpose
├── InvalidEvent            a record that cannot be scored; `.code` is the dead-letter reason
│     codes: too_large, invalid_encoding, invalid_json, schema, unknown_type,
│            invalid_time, future_time (plus conflicting_duplicate, found by the stream's
│            dedupe rather than the decoder: see DEAD_LETTER_CODES)
└── ModelError              a scoring-model file that does not make sense
"""

from __future__ import annotations

REASON_CODES = (
    "too_large",
    "invalid_encoding",
    "invalid_json",
    "schema",
    "unknown_type",
    "invalid_time",
    "future_time",
)
# every `ssi-error-code` a dead letter can carry: the decoder's codes and the stream's dedupe
DEAD_LETTER_CODES = (*REASON_CODES, "conflicting_duplicate")


class SsiError(Exception):
    """Root of the project's exceptions."""


class InvalidEvent(SsiError):
    """An input record was rejected; `code` is stable and reused by the dead-letter headers."""

    def __init__(self, code: str, message: str) -> None:
        assert code in REASON_CODES, code
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ModelError(SsiError):
    """A scoring-model file is malformed or inconsistent."""
