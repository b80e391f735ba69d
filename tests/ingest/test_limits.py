"""The shared validation helpers, on their own."""

from __future__ import annotations

import json

import pytest

from tenantscope.errors import ValidationFailed
from tenantscope.ingest import limits


def _strict_size(value: object) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


@pytest.mark.parametrize(
    "value",
    [
        {"a": "x" * 10},
        {"é": "ünïcode ✓" * 3, "n": [1, 2.5, None, True, {"deep": ["z"]}]},
        [{"k": "v"}] * 3,
        {"big": 10**30},  # beyond orjson's 64-bit integers: measured the strict way
        {1: "int key"},  # ditto for a key that is not a string (JSON makes it "1")
    ],
)
def test_json_within_measures_utf8_json_bytes_exactly(value: object) -> None:
    size = _strict_size(value)
    assert limits.json_within("attributes", value, size)
    assert not limits.json_within("attributes", value, size - 1)


def test_json_within_rejects_what_json_cannot_carry() -> None:
    with pytest.raises(ValidationFailed, match="^attributes: is not JSON-serialisable"):
        limits.json_within("attributes", {"x": object()}, 1000)
    with pytest.raises(ValidationFailed, match="^attributes: is not JSON-serialisable"):
        limits.json_within("attributes", {"x": float("nan"), 1: 2}, 1000)
