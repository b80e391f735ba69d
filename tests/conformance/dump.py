"""Print the spans of conformance fixtures (decoded with opentelemetry-proto).

Usage (from the repo root, with the project's venv)::

    python tests/conformance/dump.py tests/conformance/fixtures/openllmetry.json
    python tests/conformance/dump.py fixtures/*.json --grep usage --grep tenant
    python tests/conformance/dump.py fixtures/logfire.json --max-len 0   # no truncation

For each payload: its path and content type, then per resource its attributes, per scope its
name and version, and per span its trace id, span id, parent span id (``-`` for a root), name,
kind and attributes (optionally only those whose key contains one of ``--grep``).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


def decode(payload: dict[str, Any]) -> ExportTraceServiceRequest:
    body = base64.b64decode(payload["body_b64"])
    req = ExportTraceServiceRequest()
    if "json" in payload["content_type"]:
        from google.protobuf import json_format

        json_format.Parse(body.decode(), req)
    else:
        req.ParseFromString(body)
    return req


def spans(fixture: dict[str, Any]) -> list[dict[str, Any]]:
    """Every span of a fixture as a flat dict (payload index, resource, scope, ids, attrs)."""
    out = []
    for i, payload in enumerate(fixture["payloads"]):
        for rs in decode(payload).resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out.append(
                        {
                            "payload": i,
                            "path": payload["path"],
                            "resource": resource,
                            "scope": ss.scope.name,
                            "scope_version": ss.scope.version,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "kind": KINDS.get(span.kind, str(span.kind)),
                            "status": span.status.code,
                            "duration_ms": (span.end_time_unix_nano - span.start_time_unix_nano)
                            / 1e6,
                            "attributes": attrs(span.attributes),
                            "events": [e.name for e in span.events],
                        }
                    )
    return out


def short(v: Any, max_len: int) -> str:
    text = json.dumps(v) if not isinstance(v, str) else repr(v)
    if max_len and len(text) > max_len:
        return text[:max_len] + f"...({len(text)} chars)"
    return text


def dump(path: Path, grep: list[str], max_len: int, resource: bool) -> None:
    fixture = json.loads(path.read_text())
    print(f"=== {path.name}: {fixture['library']}  {fixture.get('versions', {})}")
    for shape, info in fixture.get("shapes", {}).items():
        print(f"  shape {shape}: tenant {info['tenant_id']} truth {info['truth']}")
    if fixture.get("skipped"):
        print(f"  skipped: {fixture['skipped']}")
    all_spans = spans(fixture)
    traces = {s["trace_id"] for s in all_spans}
    print(
        f"  {len(fixture['payloads'])} payload(s), {len(all_spans)} span(s), {len(traces)} trace(s)"
    )
    ids = {s["span_id"] for s in all_spans}
    last = None
    for s in sorted(all_spans, key=lambda s: (s["trace_id"], s["parent_span_id"] != "")):
        head = (s["payload"], s["path"], json.dumps(s["resource"], sort_keys=True))
        if head != last:
            print(f"-- payload {s['payload']} {s['path']}")
            if resource:
                print(f"   resource: {short(s['resource'], max_len)}")
            last = head
        parent = s["parent_span_id"][:8] or "-"
        if s["parent_span_id"] and s["parent_span_id"] not in ids:
            parent += " (NOT EXPORTED)"
        print(
            f"  trace {s['trace_id']} span {s['span_id'][:8]} parent {parent}"
            f"  {s['name']!r} {s['kind']}"
            f"  scope {s['scope']} {s['scope_version']}  status {s['status']}"
        )
        for k, v in sorted(s["attributes"].items()):
            if grep and not any(g.lower() in k.lower() for g in grep):
                continue
            print(f"      {k} = {short(v, max_len)}")
        if s["events"]:
            print(f"      events: {s['events']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fixtures", nargs="+", type=Path)
    parser.add_argument("--grep", action="append", default=[], help="only attributes with this")
    parser.add_argument("--max-len", type=int, default=160, help="truncate values (0: never)")
    parser.add_argument("--no-resource", action="store_true", help="hide resource attributes")
    args = parser.parse_args(argv)
    for path in args.fixtures:
        dump(path, args.grep, args.max_len, not args.no_resource)
    return 0


if __name__ == "__main__":
    sys.exit(main())
