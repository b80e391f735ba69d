"""Replay what real instrumentation libraries exported and check tenantscope counted it.

The fixtures (``tests/conformance/fixtures/<library>.json``, written by
``tests/conformance/record.py``) hold the raw OTLP payloads a library sent for four call
shapes against the fake provider, each shape under its own tenant, and the truth: what the
fake provider was told to answer. ``replay`` posts them to a running server, as recorded or
shuffled and split into requests of a few spans; ``measure`` reads each shape's tenant back
through the JSON API and compares requests, input and output tokens and cost with the truth
priced by ``genai-prices`` itself (not by tenantscope's pricer: a second opinion).

Used by the test suite (``tests/conformance/test_replay.py``) and by
``bench/accuracy.py``, which prints the table.
"""

from __future__ import annotations

import gzip
import json
import random
from base64 import b64decode
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

SHAPES = ("openai_chat", "openai_stream", "anthropic_message", "anthropic_stream")
# Cells a library's own omission keeps from the truth, and what is missing. Such a cell is
# held to exactly what can be made of what the library sent (the truth without the
# figures it leaves out); the README's table of libraries says the same.
KNOWN_LIMITS: dict[tuple[str, str], str] = {
    (library, shape): "opentelemetry-instrumentation-openai-v2 sends no cached-token "
    "attribute, so cache reads are priced as uncached input (opentelemetry-instrumentation-"
    "genai-openai does send it)"
    for library, shape in (("otel-openai-v2", "openai_chat"), ("otel-openai-v2", "openai_stream"))
}
_PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True, slots=True)
class Figures:
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None

    def __str__(self) -> str:
        cost = "?" if self.cost_usd is None else f"${self.cost_usd.normalize():f}"
        return f"{self.requests} req, {self.input_tokens} in, {self.output_tokens} out, {cost}"


@dataclass(frozen=True, slots=True)
class Cell:
    """One library x call shape."""

    library: str
    shape: str
    tenant_id: str
    expected: Figures | None  # None: the library could not make this call (skipped)
    got: Figures | None
    note: str = ""  # why it was skipped, or the known limit (``KNOWN_LIMITS``) it is held to

    @property
    def exact(self) -> bool:
        return self.expected is not None and self.got == self.expected

    @property
    def error(self) -> str:
        """What differs, for people ("" when exact)."""
        if self.expected is None:
            return f"not recorded: {self.note}"
        if self.got is None:
            return "nothing counted"
        parts = []
        for name in ("requests", "input_tokens", "output_tokens", "cost_usd"):
            want, have = getattr(self.expected, name), getattr(self.got, name)
            if want != have:
                parts.append(f"{name} {have} (want {want})")
        return ", ".join(parts)


def load_fixtures(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def expected_figures(truth: dict[str, Any]) -> Figures:
    """The truth of one shape, priced by genai-prices at today's prices."""
    from genai_prices import Usage, calc_price

    price = calc_price(
        Usage(
            input_tokens=truth["input_tokens"],
            cache_read_tokens=truth["cache_read_tokens"],
            cache_write_tokens=truth["cache_write_tokens"],
            output_tokens=truth["output_tokens"],
        ),
        model_ref=truth["model"],
        provider_id=truth["provider"],
    )
    return Figures(
        truth["requests"], truth["input_tokens"], truth["output_tokens"], price.total_price
    )


def _request(payload: dict[str, Any]) -> Any:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    body = b64decode(payload["body_b64"])
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    if (payload.get("content_type") or _PROTOBUF).split(";")[0].strip() == "application/json":
        return json_format.Parse(body, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    return ExportTraceServiceRequest.FromString(body)


def payloads(fixture: dict[str, Any], rng: random.Random | None = None) -> Iterator[bytes]:
    """The fixture's requests as protobuf bodies: as recorded, or (with ``rng``) every span
    in its own resource and scope, shuffled, in requests of one to three spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    requests = [_request(p) for p in fixture["payloads"]]
    if rng is None:
        for request in requests:
            yield request.SerializeToString()
        return
    spans = [
        (rs.resource, ss.scope, span)
        for request in requests
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    rng.shuffle(spans)
    while spans:
        n = rng.randint(1, 3)
        out = ExportTraceServiceRequest()
        for resource, scope, span in spans[:n]:
            rs = out.resource_spans.add()
            rs.resource.CopyFrom(resource)
            ss = rs.scope_spans.add()
            ss.scope.CopyFrom(scope)
            ss.spans.add().CopyFrom(span)
        spans = spans[n:]
        yield out.SerializeToString()


def replay(
    client: httpx.Client, fixtures: Sequence[dict[str, Any]], rng: random.Random | None = None
) -> int:
    """Post every fixture's payloads to ``client``'s server; returns the requests sent."""
    sent = 0
    for fixture in fixtures:
        for body in payloads(fixture, rng):
            response = client.post("/v1/traces", content=body, headers={"content-type": _PROTOBUF})
            response.raise_for_status()
            sent += 1
    return sent


def measure(client: httpx.Client, fixtures: Sequence[dict[str, Any]]) -> list[Cell]:
    """Each fixture shape's tenant as the JSON API reports it, beside the truth."""
    window = {
        "from": "2000-01-01T00:00:00Z",
        "to": (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    cells = []
    for fixture in fixtures:
        library = fixture["library"]
        skipped = fixture.get("skipped") or {}
        for shape in SHAPES:
            spec = fixture["shapes"].get(shape)
            if spec is None:
                cells.append(Cell(library, shape, "", None, None, skipped.get(shape, "")))
                continue
            tenant = spec["tenant_id"]
            truth = spec["truth"]
            limit = KNOWN_LIMITS.get((library, shape), "")
            if limit:  # what the library's spans can tell: no cache figures
                truth = {**truth, "cache_read_tokens": 0, "cache_write_tokens": 0}
            response = client.get(f"/api/tenants/{quote(tenant, safe='')}", params=window)
            got = None
            if response.status_code == 200:
                totals = response.json()["totals"]
                cost = totals.get("cost_usd")
                got = Figures(
                    totals["requests"],
                    totals["input_tokens"],
                    totals["output_tokens"],
                    None if cost is None else Decimal(cost),
                )
            elif response.status_code != 404:
                response.raise_for_status()
            cells.append(Cell(library, shape, tenant, expected_figures(truth), got, limit))
    return cells
