"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from tenantscope.server.services import services_of

router = APIRouter(tags=["health"])


@router.get("/api", summary="Where to go from here: the API's entry points")
def index(request: Request) -> dict[str, object]:
    base = str(request.base_url).rstrip("/")
    return {
        "name": "tenantscope",
        "links": {
            "dashboard": f"{base}/",
            "api_docs": f"{base}/docs",
            "openapi": f"{base}/openapi.json",
            "tenants": f"{base}/api/tenants",
            "traces": f"{base}/api/traces",
            "sla": f"{base}/api/sla",
            "otlp_traces": f"{base}/v1/traces",
            "events": f"{base}/v1/events",
        },
    }


@router.get("/healthz", summary="The process is up (HEAD too)")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


# Load balancers probe with HEAD: the same status, no body. Separate routes, left out of
# the schema, because one route for both methods gives two operations one id.
@router.head("/healthz", include_in_schema=False)
def healthz_head() -> Response:
    return Response(status_code=200)


@router.head("/readyz", include_in_schema=False)
def readyz_head(request: Request) -> Response:
    return Response(status_code=readyz(request).status_code)


@router.get("/readyz", summary="Both stores answer and the writer runs (HEAD too)")
def readyz(request: Request) -> JSONResponse:
    svc = services_of(request)
    problems = []
    try:
        svc.events.ping()
    except Exception as exc:  # readiness reports, never raises
        problems.append(f"event store: {exc}")
    try:
        svc.config.ping()
    except Exception as exc:
        problems.append(f"config store: {exc}")
    if not svc.writer.running:
        problems.append("ingest writer is not running")
    if svc.writer.apply_error:
        problems.append(f"answered spans cannot be stored yet: {svc.writer.apply_error}")
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", summary="Prometheus text format", response_class=PlainTextResponse)
def metrics(request: Request) -> str:
    svc = services_of(request)
    w = svc.writer
    lines = [
        "# HELP tenantscope_ingest_batches_total Write batches committed.",
        "# TYPE tenantscope_ingest_batches_total counter",
        f"tenantscope_ingest_batches_total {w.batches}",
        "# HELP tenantscope_ingest_records_total Records stored.",
        "# TYPE tenantscope_ingest_records_total counter",
        f"tenantscope_ingest_records_total {w.records_written}",
        "# HELP tenantscope_ingest_duplicates_total Records dropped as already stored.",
        "# TYPE tenantscope_ingest_duplicates_total counter",
        f"tenantscope_ingest_duplicates_total {w.duplicates}",
        "# HELP tenantscope_ingest_failed_batches_total Batches that failed to store.",
        "# TYPE tenantscope_ingest_failed_batches_total counter",
        f"tenantscope_ingest_failed_batches_total {w.failures}",
        "# HELP tenantscope_ingest_decode_worker_restarts_total Decode worker pools replaced.",
        "# TYPE tenantscope_ingest_decode_worker_restarts_total counter",
        f"tenantscope_ingest_decode_worker_restarts_total {svc.decoder.restarts}",
        "# HELP tenantscope_limit_checks_total Limit checks decided (docs/limits.md).",
        "# TYPE tenantscope_limit_checks_total counter",
        f"tenantscope_limit_checks_total {svc.limiter.checks}",
        "# HELP tenantscope_limit_refusals_total Checks and stream extensions refused.",
        "# TYPE tenantscope_limit_refusals_total counter",
        f"tenantscope_limit_refusals_total {svc.limiter.denials}",
        "# HELP tenantscope_limit_reservations Reservations held by calls in flight.",
        "# TYPE tenantscope_limit_reservations gauge",
        f"tenantscope_limit_reservations {len(svc.limiter.ledger.reservations)}",
    ]
    return "\n".join(lines) + "\n"
