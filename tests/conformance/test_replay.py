"""Every recorded library and call shape counts exactly: requests, tokens and cost per
tenant, whatever order and requests the spans arrive in (see ``fixtures/`` and
``tenantscope.testing.conformance``)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tenantscope.testing.conformance import (
    SHAPES,
    Cell,
    load_fixtures,
    measure,
    replay,
)
from tests.conftest import seeded_server

FIXTURES = load_fixtures(Path(__file__).parent / "fixtures")
# The libraries issue 10 names; each must have a fixture.
REQUIRED = {
    "tenantscope",
    "openllmetry",
    "otel-genai",
    "otel-openai-v2",
    "anthropic-sdk",
    "logfire",
    "openlit",
    "langfuse-3",
    "langfuse",
    "netra",
}


def _inexact(cells: list[Cell]) -> list[str]:
    # a cell with a known limit (conformance.KNOWN_LIMITS) is held to what can be made of it
    return [
        f"{c.library} {c.shape}: {c.error}" for c in cells if c.expected is not None and not c.exact
    ]


def test_every_library_is_recorded_with_every_shape_or_a_reason() -> None:
    libraries = {f["library"] for f in FIXTURES}
    assert REQUIRED <= libraries, sorted(REQUIRED - libraries)
    for fixture in FIXTURES:
        for shape in SHAPES:
            assert shape in fixture["shapes"] or fixture["skipped"].get(shape), (
                fixture["library"],
                shape,
            )
        assert fixture["payloads"], fixture["library"]


@pytest.mark.parametrize(
    "seed", [None, 1, 2, 3], ids=["as-recorded", "split-1", "split-2", "split-3"]
)
def test_every_fixture_counts_exactly(tmp_path: Path, seed: int | None) -> None:
    rng = None if seed is None else random.Random(seed)
    with seeded_server(tmp_path / "data", lambda services: None) as server:
        replay(server.client, FIXTURES, rng)
        cells = measure(server.client, FIXTURES)
    assert cells and not _inexact(cells)


def test_resent_payloads_count_once(tmp_path: Path) -> None:
    with seeded_server(tmp_path / "data", lambda services: None) as server:
        replay(server.client, FIXTURES)
        replay(server.client, FIXTURES, random.Random(9))  # an exporter's retries, re-split
        cells = measure(server.client, FIXTURES)
    assert not _inexact(cells)
