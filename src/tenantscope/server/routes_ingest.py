"""POST /v1/traces (OTLP/HTTP) and POST /v1/events (native usage events)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from tenantscope.errors import UnsupportedMediaType, ValidationFailed
from tenantscope.ingest.events import parse_events
from tenantscope.ingest.otlp import JSON, decompress_body, media_type
from tenantscope.ingest.wal import Logged
from tenantscope.ingest.writer import synthetic_ids
from tenantscope.records import UsageRecord
from tenantscope.server.body import read_body
from tenantscope.server.keys import Principal
from tenantscope.server.services import Services, services_of

router = APIRouter(tags=["ingest"])


@router.post(
    "/v1/traces",
    summary="OTLP/HTTP traces",
    description=(
        "OpenTelemetry traces as an ExportTraceServiceRequest, protobuf"
        " (`application/x-protobuf`) or JSON (`application/json`, hex ids), optionally"
        " gzip-encoded. Answered only when the spans are durable. Spans that cannot be"
        " accepted are counted in `partialSuccess.rejectedSpans`."
    ),
    response_class=Response,
    responses={
        200: {"description": "stored; partial_success when some spans were rejected"},
        400: {"description": "the body is not OTLP"},
        413: {"description": "body over the size limit"},
        415: {"description": "content type other than protobuf or JSON"},
    },
)
async def post_traces(request: Request) -> Response:
    svc = services_of(request)
    limit = svc.settings.max_body_bytes
    body = await read_body(request, limit)
    ctype = request.headers.get("content-type")
    encoding = request.headers.get("content-encoding")
    bound = _bound_tenant(request)
    if bound is None:
        # the common case: decoded, priced and logged by a worker process
        await svc.writer.room()
        result, rejected, errors = await svc.decoder.decode_logged(
            body, ctype, encoding, limit, svc.price.snapshot(), svc.writer.wal_dir
        )
        if isinstance(result, Logged):
            svc.writer.write_logged(result, sender=_sender(request))
        else:
            await svc.writer.write_table(result, sender=_sender(request))
    else:
        records, rejected, errors = await svc.decoder.decode(body, ctype, encoding, limit)
        records, refused = await _bound_to_key_tenant(request, records, bound)
        if refused:
            rejected += len(refused)
            errors = [*errors, *refused[: max(0, 10 - len(errors))]]
        await svc.writer.write(records, resolved=True)
    message = "; ".join(errors)
    if ctype and ctype.split(";")[0].strip().lower() == "application/x-protobuf":
        resp = ExportTraceServiceResponse()
        if rejected:
            resp.partial_success.rejected_spans = rejected
            resp.partial_success.error_message = message
        return Response(resp.SerializeToString(), media_type="application/x-protobuf")
    out: dict[str, Any] = {}
    if rejected:
        out["partialSuccess"] = {"rejectedSpans": rejected, "errorMessage": message}
    return JSONResponse(out)


def _sender(request: Request) -> str:
    principal: Principal | None = getattr(request.state, "principal", None)
    return "" if principal is None else principal.sender


def _bound_tenant(request: Request) -> str | None:
    """The tenant an ingest key is bound to, if any."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None and principal.role == "ingest" and principal.tenant_id:
        return principal.tenant_id
    return None


async def _bound_to_key_tenant(
    request: Request, records: list[UsageRecord], bound: str | None
) -> tuple[list[UsageRecord], list[str]]:
    """An ingest key bound to a tenant writes only that tenant's records: records without
    a tenant are given it, records of another tenant are refused (with a message), and so
    are records joining a trace that holds another tenant's records: attribution is
    resolved per trace, so such a span could otherwise re-attribute or shadow them.
    ``bound``: the key's tenant (``_bound_tenant``), None for any other key."""
    if not bound:
        return records, []
    kept: list[UsageRecord] = []
    refused: list[str] = []
    for r in records:
        if r.tenant_id == "":
            r = r.replace(tenant_id=bound)
        elif r.tenant_id != bound:
            refused.append(
                f"record {r.event_id}: this ingest key writes tenant {bound!r} only,"
                f" not {r.tenant_id!r}"
            )
            continue
        kept.append(r)
    if kept:
        svc = services_of(request)
        await svc.writer.wait_applied()  # spans answered before this one count too
        foreign = await run_in_threadpool(_foreign_traces, svc, kept, bound)
        if foreign:
            refused += [
                f"record {r.event_id}: trace {r.trace_id} holds another tenant's records"
                for r in kept
                if r.trace_id in foreign
            ]
            kept = [r for r in kept if r.trace_id not in foreign]
    return kept, refused


def _foreign_traces(svc: Services, records: list[UsageRecord], tenant: str) -> set[str]:
    """The trace ids among ``records`` with stored records of a tenant other than
    ``tenant``, looked for as far apart as the writer joins a trace's spans."""
    window = timedelta(hours=svc.settings.trace_window_hours)
    # an event sent without a trace has a trace of its own (derived from its event id);
    # sending it again is a duplicate, which the writer already ignores
    ids = sorted(
        {
            r.trace_id
            for r in records
            if r.trace_id and r.trace_id != synthetic_ids(r.event_id, r.tenant_id)[0]
        }
    )
    if not ids:
        return set()
    stored = svc.events.trace_records(
        ids,
        min(r.start_time for r in records) - window,
        max(r.start_time for r in records) + window,
    )
    return {s.trace_id for s in stored if s.tenant_id != tenant}


class ItemErrorOut(BaseModel):
    index: int
    field: str
    message: str


class EventsResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    errors: list[ItemErrorOut]


@router.post(
    "/v1/events",
    summary="Native usage events",
    description=(
        'A JSON list of usage events (or `{"events": [...]}`), at most 1,000, optionally'
        " gzip-encoded. Idempotent by"
        " `event_id`: an event sent again is counted once. Valid items are stored even when"
        " others fail; each failure names the item index and the field. 400 when no item"
        " is valid. See docs/events.md for the fields."
    ),
    response_model=EventsResult,
    responses={400: {"description": "not JSON, too many items, or no valid item"}},
)
async def post_events(request: Request) -> EventsResult:
    svc = services_of(request)
    ctype = media_type(request.headers.get("content-type"))
    if ctype not in ("", JSON):
        raise UnsupportedMediaType(f"send events as {JSON}, not {ctype}")
    limit = svc.settings.max_body_bytes
    raw = await read_body(request, limit)
    encoding = request.headers.get("content-encoding")
    parsed = await run_in_threadpool(
        lambda: parse_events(
            decompress_body(raw, encoding, max_bytes=limit),
            received_at=datetime.now(timezone.utc),
            max_items=svc.settings.max_events,
        )
    )
    bound = _bound_tenant(request)
    records = []
    for r in parsed.records:
        if not r.trace_id:
            # a trace of its own per event of a tenant (the key's, for a bound key)
            trace_id, span_id = synthetic_ids(r.event_id, r.tenant_id or bound or "")
            r = r.replace(trace_id=trace_id, span_id=r.span_id or span_id)
        records.append(r)
    records, refused = await _bound_to_key_tenant(request, records, bound)
    errors = [ItemErrorOut(index=e.index, field=e.field, message=e.message) for e in parsed.errors]
    errors += [ItemErrorOut(index=-1, field="tenant_id", message=m) for m in refused]
    if errors and not records:
        raise ValidationFailed(
            f"no valid event in the batch; first problem: item {errors[0].index}"
            f" field {errors[0].field}: {errors[0].message}",
            details=[e.model_dump() for e in errors[:100]],
        )
    result = await svc.writer.write(records)
    return EventsResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=len(errors),
        errors=errors[:100],
    )
