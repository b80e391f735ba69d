"""Demo traffic: the seeds' "MeetingMind" meeting-summary SaaS, as real OTLP export bodies.

``demo_tenants`` gives the tenant catalogue (the cookbook's Apex Legal, Stratex Consulting
and TechStart Inc plus a Zipf-skewed tail of made-up SaaS customers); ``demo_batches``
yields serialized ``ExportTraceServiceRequest`` protobuf bodies of about ``batch_spans``
spans each, ready to POST to ``/v1/traces``. Everything is deterministic from the seed
(and ``now``).

What the traffic exercises, on purpose:

- attribution only on the root span (``tenant.id``, ``user.id``, ``session.id`` and the
  feature attributes); LLM child spans carry ``gen_ai.*`` only and inherit the rest;
- ~10% of traces wrap their calls in a manual usage span carrying ``gen_ai.usage.cost``
  (the cookbook's ``set_usage`` pattern) around auto-instrumented LLM spans, which must
  not be counted twice;
- a few traces whose root span arrives in the next request (as a batch exporter would
  send it when the flush timer fires mid-trace);
- OpenAI (cached input, ``o4-mini`` reasoning tokens, embeddings), Anthropic (cache reads
  and writes reported additively, as its API does) and Gemini;
- ~2-4% failed calls (429s, timeouts, 503s; more on the starter tier);
- per-model log-normal latencies with a rare slow tail. Apex Legal's long deposition
  transcripts make it breach its 2 s p95 SLA while the other tenants comply; root spans
  slower than their tenant's SLA carry an ``sla-breach`` event, as in the cookbook.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tenantscope import semconv
from tenantscope.storage.base import Actor

if TYPE_CHECKING:
    from tenantscope.storage.base import ConfigStore

__all__ = [
    "SERVICE_NAME",
    "DemoBatches",
    "DemoTenant",
    "configure_tenants",
    "demo_batches",
    "demo_tenants",
]

SERVICE_NAME = "meetingmind-api"
ENVIRONMENT = "production"

AttrValue = str | int | float | bool | list[str]
Attrs = dict[str, AttrValue]

_NS_PER_MS = 1_000_000
_SPAN_KIND_INTERNAL = 1
_SPAN_KIND_SERVER = 2
_SPAN_KIND_CLIENT = 3
_STATUS_OK = 1
_STATUS_ERROR = 2

_APP_SCOPE = "meetingmind"
_DB_SCOPE = "opentelemetry.instrumentation.psycopg"
_SCOPE_VERSION = {
    _APP_SCOPE: "2.14.0",
    _DB_SCOPE: "0.55b0",
    "opentelemetry.instrumentation.openai_v2": "2.1b0",
    "opentelemetry.instrumentation.anthropic": "0.40.7",
    "opentelemetry.instrumentation.google_genai": "0.3b0",
}

TIER_SLA_MS: dict[str, int | None] = {"enterprise": 2000, "professional": 3000, "starter": None}
_TIER_RPM: dict[str, tuple[int, ...]] = {
    "enterprise": (60, 120),
    "professional": (30,),
    "starter": (10,),
}


# --- tenants ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoTenant:
    tenant_id: str
    display_name: str
    tier: str
    sla_p95_ms: int | None
    rate_limit_rpm: int | None
    monthly_budget_usd: Decimal | None
    weight: float


_NAMED: tuple[DemoTenant, ...] = (
    DemoTenant("apex-legal", "Apex Legal", "enterprise", 2000, 60, Decimal("120"), 6.0),
    DemoTenant(
        "stratex-consulting", "Stratex Consulting", "professional", 3000, 30, Decimal("8"), 4.0
    ),
    DemoTenant("techstart-inc", "TechStart Inc", "starter", None, 10, Decimal("2"), 1.5),
)

_NAME_FIRST = (
    "Acme", "Alder", "Amber", "Apollo", "Arcadia", "Aspen", "Atlas", "Beacon", "Birch",
    "Bluefin", "Brightline", "Cascade", "Cedar", "Cobalt", "Copper", "Crescent", "Delta",
    "Ember", "Evergreen", "Falcon", "Fjord", "Granite", "Harbor", "Helix", "Horizon",
    "Indigo", "Juniper", "Keystone", "Lakeside", "Lumen", "Maple", "Meridian", "Nimbus",
    "Northwind", "Oakridge", "Orbit", "Pinnacle", "Polaris", "Quartz", "Redwood", "Ridge",
    "Sable", "Sequoia", "Silverline", "Solstice", "Summit", "Tidewater", "Trident", "Vantage",
    "Vertex", "Willow", "Zenith",
)  # fmt: skip
_NAME_SECOND = (
    "Analytics", "Bio", "Capital", "Clinics", "Consulting", "Dynamics", "Education",
    "Energy", "Financial", "Foods", "Health", "Insurance", "Labs", "Law", "Logistics",
    "Media", "Partners", "Realty", "Recruiting", "Retail", "Robotics", "Software", "Studios",
    "Systems", "Ventures",
)  # fmt: skip
_WORKSPACES = ("sales", "engineering", "customer-success", "leadership", "product", "ops")
_APEX_WORKSPACES = ("litigation", "corporate", "ip", "employment")


def _slug(text: str) -> str:
    return "-".join(text.lower().split())


def _pick_tier(rng: random.Random, rank_fraction: float) -> str:
    # big customers buy big plans: the head is mostly enterprise, the tail mostly starter
    if rank_fraction < 0.2:
        weights = (0.6, 0.35, 0.05)
    elif rank_fraction < 0.6:
        weights = (0.2, 0.5, 0.3)
    else:
        weights = (0.05, 0.35, 0.6)
    return rng.choices(("enterprise", "professional", "starter"), weights)[0]


def demo_tenants(n_extra: int = 50, seed: int = 7) -> list[DemoTenant]:
    """The three cookbook tenants plus ``n_extra`` made-up ones with Zipf-skewed weights."""
    rng = random.Random(f"tenants:{seed}")
    out = list(_NAMED)
    taken = {t.tenant_id for t in out}
    names: list[str] = []
    while len(names) < n_extra:
        name = f"{rng.choice(_NAME_FIRST)} {rng.choice(_NAME_SECOND)}"
        if len(names) >= len(_NAME_FIRST) * len(_NAME_SECOND) // 2:
            name = f"{name} {len(names)}"  # the word lists ran dry: number the rest
        if _slug(name) not in taken:
            taken.add(_slug(name))
            names.append(name)
    for rank, name in enumerate(names):
        weight = round(10.0 / (rank + 2) ** 1.1, 4)
        tier = _pick_tier(rng, rank / max(n_extra, 1))
        rpm = rng.choice(_TIER_RPM[tier]) if rng.random() < 0.7 else None
        budget: Decimal | None = None
        if rng.random() < 0.5:
            # around the tenant's expected monthly spend in the default demo, so that some
            # are comfortably inside their budget and a few run over it
            per_weight = {"enterprise": 9.0, "professional": 1.2, "starter": 0.5}[tier]
            budget = Decimal(max(1, round(weight * per_weight * rng.uniform(0.6, 2.5))))
        out.append(
            DemoTenant(
                tenant_id=_slug(name),
                display_name=name,
                tier=tier,
                sla_p95_ms=TIER_SLA_MS[tier],
                rate_limit_rpm=rpm,
                monthly_budget_usd=budget,
                weight=weight,
            )
        )
    return out


# demo tenants are configured by the `tenantscope demo` command (the audit log says so)
DEMO = Actor("cli", name="tenantscope demo")


def configure_tenants(config: ConfigStore, tenants: Sequence[DemoTenant]) -> None:
    """Store the demo tenants' configuration (name, tier, SLA, rate limit, budget)."""
    for t in tenants:
        config.set_tenant(
            t.tenant_id,
            actor=DEMO,
            display_name=t.display_name,
            tier=t.tier,
            sla_p95_ms=t.sla_p95_ms,
            rate_limit_rpm=t.rate_limit_rpm,
            monthly_budget_usd=t.monthly_budget_usd,
        )


# --- features and models -----------------------------------------------------------------
@dataclass(frozen=True)
class _Feature:
    name: str
    route: str
    billable_action: str
    label: str
    calls: tuple[str, ...]  # "chat", "embed", "reason"
    input_range: tuple[int, int]
    output_range: tuple[int, int]


_FEATURES: dict[str, _Feature] = {
    f.name: f
    for f in (
        _Feature(
            "meeting_summary", "/v1/summarize", "summary.generated", "Meeting summary",
            ("chat",), (3000, 14000), (150, 420),
        ),
        _Feature(
            "action_items", "/v1/action-items", "action_items.extracted", "Action items",
            ("chat",), (2500, 11000), (60, 220),
        ),
        _Feature(
            "transcript_qa", "/v1/ask", "question.answered", "Ask your meeting",
            ("embed", "chat"), (1200, 4500), (40, 240),
        ),
        _Feature(
            "follow_up_email", "/v1/follow-up-email", "email.drafted", "Follow-up email",
            ("chat",), (800, 3000), (120, 380),
        ),
        _Feature(
            "decision_log", "/v1/decisions", "decisions.logged", "Key decisions",
            ("chat",), (3000, 12000), (80, 260),
        ),
        _Feature(
            "custom_report", "/v1/reports", "report.generated", "Custom report",
            ("embed", "reason"), (4000, 16000), (200, 600),
        ),
    )
}  # fmt: skip

_TIER_FEATURES: dict[str, tuple[tuple[str, float], ...]] = {
    "enterprise": (
        ("meeting_summary", 0.36), ("action_items", 0.18), ("transcript_qa", 0.18),
        ("follow_up_email", 0.1), ("decision_log", 0.1), ("custom_report", 0.08),
    ),
    "professional": (
        ("meeting_summary", 0.45), ("action_items", 0.22), ("transcript_qa", 0.18),
        ("follow_up_email", 0.15),
    ),
    "starter": (("meeting_summary", 0.6), ("action_items", 0.25), ("follow_up_email", 0.15)),
}  # fmt: skip


@dataclass(frozen=True)
class _Model:
    provider: str  # gen_ai.provider.name as instrumentations send it
    request: str
    response: str
    scope: str
    server: str
    base_ms: float
    ms_per_out: float
    ms_per_kin: float  # per 1,000 input tokens
    sigma: float
    cache: str  # "openai" (input includes cached), "anthropic" (additive), "" (none)
    id_prefix: str


_OPENAI = "opentelemetry.instrumentation.openai_v2"
_ANTHROPIC = "opentelemetry.instrumentation.anthropic"
_GEMINI = "opentelemetry.instrumentation.google_genai"

_MODELS: dict[str, _Model] = {
    m.request: m
    for m in (
        _Model("openai", "gpt-4o", "gpt-4o-2024-08-06", _OPENAI, "api.openai.com",
               300, 1.6, 24, 0.28, "openai", "chatcmpl-"),
        _Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", _OPENAI, "api.openai.com",
               260, 2.0, 22, 0.3, "openai", "chatcmpl-"),
        _Model("openai", "o4-mini", "o4-mini-2025-04-16", _OPENAI, "api.openai.com",
               420, 1.1, 15, 0.3, "openai", "chatcmpl-"),
        _Model("openai", "text-embedding-3-small", "text-embedding-3-small", _OPENAI,
               "api.openai.com", 70, 0.0, 4, 0.35, "", ""),
        _Model("anthropic", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022",
               _ANTHROPIC, "api.anthropic.com", 320, 1.8, 24, 0.28, "anthropic", "msg_01"),
        _Model("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022",
               _ANTHROPIC, "api.anthropic.com", 300, 1.9, 20, 0.3, "anthropic", "msg_01"),
        _Model("gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash", _GEMINI,
               "generativelanguage.googleapis.com", 280, 1.5, 18, 0.33, "", ""),
        _Model("gcp.gemini", "gemini-2.0-flash", "gemini-2.0-flash", _GEMINI,
               "generativelanguage.googleapis.com", 230, 1.3, 15, 0.33, "", ""),
    )
}  # fmt: skip

_TIER_CHAT: dict[str, tuple[tuple[str, float], ...]] = {
    "enterprise": (("gpt-4o", 0.6), ("claude-3-5-sonnet-20241022", 0.4)),
    "professional": (
        ("gpt-4o-mini", 0.55),
        ("claude-3-5-haiku-20241022", 0.25),
        ("gemini-2.5-flash", 0.2),
    ),
    "starter": (("gpt-4o-mini", 0.7), ("gemini-2.0-flash", 0.3)),
}

# The app's own price sheet (USD per million input/output tokens) for the manual
# ``set_usage`` figure: like the cookbook's, a rough estimate that tenantscope keeps for
# reference only, since the auto-instrumented span under it is the one that counts.
_APP_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "o4-mini": (1.1, 4.4),
    "text-embedding-3-small": (0.02, 0.0),
    "claude-3-5-sonnet-20241022": (3.0, 15.0),
    "claude-3-5-haiku-20241022": (0.8, 4.0),
    "gemini-2.5-flash": (0.3, 2.5),
    "gemini-2.0-flash": (0.1, 0.4),
}

_ERRORS: tuple[tuple[str, str, int, tuple[float, float]], ...] = (
    # error.type, status message, HTTP status of the root, call duration range (ms)
    ("RateLimitError", "429 rate limit exceeded: too many requests per minute", 429, (40, 250)),
    ("APITimeoutError", "upstream timeout: no response after 8s", 504, (8000, 8050)),
    ("InternalServerError", "503 upstream overloaded, please retry", 502, (150, 900)),
)

# Hourly activity (UTC) and weekday factors: customers are busiest in business hours.
_HOURLY = (
    0.15, 0.12, 0.1, 0.1, 0.12, 0.2, 0.35, 0.6, 0.95, 1.3, 1.5, 1.45,
    1.3, 1.4, 1.55, 1.5, 1.35, 1.1, 0.8, 0.55, 0.4, 0.3, 0.22, 0.18,
)  # fmt: skip
_WEEKDAY = (1.0, 1.05, 1.05, 1.0, 0.9, 0.3, 0.25)


# --- the plan: lightweight span specs, turned into protobuf per batch ---------------------
@dataclass(slots=True)
class _SpanSpec:
    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    name: str
    kind: int
    start_ns: int
    end_ns: int
    scope: str
    attrs: Attrs
    status_code: int = 0
    status_message: str = ""
    events: list[tuple[str, int, Attrs]] = field(default_factory=list)


@dataclass(slots=True)
class _Trace:
    start_ns: int
    spans: list[_SpanSpec]  # export order: children first, root last


@dataclass
class _Profile:
    tenant: DemoTenant
    users: list[tuple[str, str]]  # (user id, workspace id)
    user_weights: list[float]
    features: tuple[str, ...]
    feature_weights: tuple[float, ...]
    chat_models: tuple[str, ...]
    chat_weights: tuple[float, ...]
    latency_factor: float
    error_rate: float


def _profiles(rng: random.Random, tenants: Sequence[DemoTenant]) -> list[_Profile]:
    out = []
    for t in tenants:
        tier = t.tier if t.tier in _TIER_FEATURES else "starter"
        n_users = max(2, min(40, round(3 + t.weight * 4)))
        if t.tenant_id == "apex-legal":
            spaces: tuple[str, ...] = _APEX_WORKSPACES
        elif tier == "enterprise":
            spaces = tuple(rng.sample(_WORKSPACES, 3))
        else:
            spaces = ("",)
        users = [(f"u-{t.tenant_id}-{i:02d}", spaces[i % len(spaces)]) for i in range(n_users)]
        feats = _TIER_FEATURES[tier]
        chats = _TIER_CHAT[tier]
        out.append(
            _Profile(
                tenant=t,
                users=users,
                user_weights=[1.0 / (i + 1) ** 0.8 for i in range(n_users)],
                features=tuple(f for f, _ in feats),
                feature_weights=tuple(w for _, w in feats),
                chat_models=tuple(m for m, _ in chats),
                chat_weights=tuple(w for _, w in chats),
                # Apex Legal's deposition transcripts are long: its calls are slower
                latency_factor=1.3 if t.tenant_id == "apex-legal" else rng.uniform(0.72, 0.9),
                error_rate={"enterprise": 0.012, "professional": 0.02, "starter": 0.04}[tier],
            )
        )
    return out


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def trace(self) -> bytes:
        return (self._rng.getrandbits(128) | 1).to_bytes(16, "big")

    def span(self) -> bytes:
        return (self._rng.getrandbits(64) | 1).to_bytes(8, "big")

    def token(self, n: int) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self._rng.choice(alphabet) for _ in range(n))


@dataclass
class _Session:
    session_id: str
    first: bool = True  # the first call of a session writes the prompt cache


def _llm_call(
    rng: random.Random,
    ids: _Ids,
    prof: _Profile,
    feature: _Feature,
    call: str,
    session: _Session,
    fail: tuple[str, str, int, tuple[float, float]] | None,
) -> tuple[Attrs, str, float, str, int, str, list[tuple[str, float, Attrs]]]:
    """Attributes, span name, duration (ms), scope, status code, status message, events."""
    if call == "embed":
        model = _MODELS["text-embedding-3-small"]
        op = "embeddings"
    elif call == "reason":
        model = _MODELS["o4-mini"]
        op = "chat"
    else:
        model = _MODELS[rng.choices(prof.chat_models, prof.chat_weights)[0]]
        op = "chat"
    attrs: Attrs = {
        semconv.GEN_AI_PROVIDER_NAME: model.provider,
        semconv.GEN_AI_OPERATION_NAME: op,
        semconv.GEN_AI_REQUEST_MODEL: model.request,
        "server.address": model.server,
    }
    name = f"{op} {model.request}"
    if fail is not None:
        etype, message, _, (lo, hi) = fail
        attrs[semconv.ERROR_TYPE] = etype
        ev_attrs: Attrs = {"exception.type": etype, "exception.message": message}
        dur = rng.uniform(lo, hi)
        return attrs, name, dur, model.scope, _STATUS_ERROR, message, [("exception", dur, ev_attrs)]
    attrs[semconv.GEN_AI_RESPONSE_MODEL] = model.response
    if call == "embed":
        inp, out, reasoning = rng.randint(8, 64), 0, 0
    else:
        lo_in, hi_in = feature.input_range
        lo_out, hi_out = feature.output_range
        # log-uniform: most meetings are short, a few are very long
        inp = int(math.exp(rng.uniform(math.log(lo_in), math.log(hi_in))))
        if prof.tenant.tenant_id == "apex-legal":
            inp = int(inp * 1.6)
        out = rng.randint(lo_out, hi_out)
        reasoning = rng.randint(300, 1800) if call == "reason" else 0
        out += reasoning  # OpenAI's completion tokens include reasoning
        attrs["gen_ai.request.temperature"] = 0.3
        attrs["gen_ai.request.max_tokens"] = 4096 if call == "reason" else 1024
        attrs["gen_ai.response.finish_reasons"] = ["stop"]
    cache_read = cache_write = 0
    reported_in = inp
    if model.cache == "openai" and inp >= 1024 and not session.first and rng.random() < 0.6:
        # OpenAI caches the shared prompt prefix in 128-token steps; input includes it
        cache_read = min(inp - 256, 1024 + 128 * rng.randint(0, 8))
    elif model.cache == "anthropic":
        system_prompt = rng.randint(1800, 2600)
        if session.first or rng.random() < 0.15:
            cache_write = system_prompt
        else:
            cache_read = system_prompt
        # Anthropic's API reports input tokens without the cache; OpenLLMetry adds the
        # cache back (the OTel convention), so the span's input includes it
        inp = max(inp, system_prompt + 1)
        reported_in = inp
    attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] = reported_in
    attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = out
    if cache_read:
        attrs[semconv.GEN_AI_USAGE_CACHE_READ] = cache_read
    if cache_write:
        attrs[semconv.GEN_AI_USAGE_CACHE_WRITE] = cache_write
    if reasoning:
        attrs[semconv.GEN_AI_USAGE_REASONING] = reasoning
    if model.id_prefix:
        attrs[semconv.GEN_AI_RESPONSE_ID] = model.id_prefix + ids.token(24)
    median = model.base_ms + model.ms_per_out * out + model.ms_per_kin * inp / 1000
    duration = median * prof.latency_factor * math.exp(rng.gauss(0.0, model.sigma))
    if rng.random() < 0.012:
        duration *= rng.uniform(2.0, 4.5)  # the provider's occasional slow tail
    duration = max(duration, 15.0)
    events: list[tuple[str, float, Attrs]] = []
    if op == "chat" and rng.random() < 0.5:
        ttft_s = round(duration * rng.uniform(0.12, 0.3) / 1000, 4)
        attrs[semconv.GEN_AI_SERVER_TTFT] = ttft_s
    return attrs, name, duration, model.scope, 0, "", events


def _app_cost(spans: Sequence[_SpanSpec]) -> float:
    total = 0.0
    for s in spans:
        model = s.attrs.get(semconv.GEN_AI_REQUEST_MODEL)
        price = _APP_PRICES.get(model) if isinstance(model, str) else None
        inp = s.attrs.get(semconv.GEN_AI_USAGE_INPUT_TOKENS, 0)
        out = s.attrs.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, 0)
        if price and isinstance(inp, int) and isinstance(out, int):
            total += (inp * price[0] + out * price[1]) / 1e6
    return round(total, 8)


def _make_trace(
    rng: random.Random,
    ids: _Ids,
    prof: _Profile,
    user: tuple[str, str],
    session: _Session,
    base_ns: int,
    now_ns: int,
) -> _Trace:
    tenant = prof.tenant
    feature = _FEATURES[rng.choices(prof.features, prof.feature_weights)[0]]
    trace_id = ids.trace()
    root_id = ids.span()
    wrapped = rng.random() < 0.1
    wrapper_id = ids.span() if wrapped else b""
    call_parent = wrapper_id or root_id
    fail_at = -1
    fail: tuple[str, str, int, tuple[float, float]] | None = None
    if rng.random() < prof.error_rate:
        fail_at = rng.randrange(len(feature.calls))
        weights = (0.6, 0.15, 0.25) if tenant.tier == "starter" else (0.35, 0.25, 0.4)
        fail = rng.choices(_ERRORS, weights)[0]

    children: list[_SpanSpec] = []
    t = rng.uniform(2.0, 12.0)  # ms from the root's start: auth, routing
    if rng.random() < 0.5:
        d = rng.uniform(2.0, 25.0)
        children.append(
            _SpanSpec(
                trace_id, ids.span(), root_id, "SELECT meetingmind.transcripts",
                _SPAN_KIND_CLIENT, int(t * _NS_PER_MS), int((t + d) * _NS_PER_MS), _DB_SCOPE,
                {"db.system.name": "postgresql", "db.operation.name": "SELECT",
                 "db.collection.name": "transcripts"},
            )
        )  # fmt: skip
        t += d + rng.uniform(0.5, 3.0)
    calls_start = t
    llm_spans: list[_SpanSpec] = []
    for i, call in enumerate(feature.calls):
        this_fail = fail if i == fail_at else None
        attrs, name, dur, scope, code, msg, events = _llm_call(
            rng, ids, prof, feature, call, session, this_fail
        )
        start_ns = int(t * _NS_PER_MS)
        end_ns = int((t + dur) * _NS_PER_MS)
        llm_spans.append(
            _SpanSpec(
                trace_id, ids.span(), call_parent, name, _SPAN_KIND_CLIENT, start_ns, end_ns,
                scope, attrs, code, msg,
                [(n, start_ns + int(o * _NS_PER_MS), a) for n, o, a in events],
            )
        )  # fmt: skip
        t += dur + rng.uniform(1.0, 6.0)
        if this_fail is not None:
            break
    session.first = False
    children.extend(llm_spans)
    if wrapped:
        wrapper_attrs: Attrs = {
            "tenant_id": tenant.tenant_id,  # the cookbook sets it on its span by hand
            "tier": tenant.tier,
            semconv.GEN_AI_REQUEST_MODEL: str(llm_spans[-1].attrs[semconv.GEN_AI_REQUEST_MODEL]),
            semconv.GEN_AI_USAGE_COST: _app_cost(llm_spans),
        }
        children.append(
            _SpanSpec(
                trace_id, wrapper_id, root_id, f"{feature.name.replace('_', '-')}",
                _SPAN_KIND_INTERNAL, int((calls_start - 0.5) * _NS_PER_MS),
                int((t - 0.5) * _NS_PER_MS), _APP_SCOPE, wrapper_attrs,
                _STATUS_ERROR if fail else _STATUS_OK, fail[1] if fail else "",
            )
        )  # fmt: skip
    root_ms = t + rng.uniform(2.0, 20.0)
    status_code = fail[2] if fail else 200
    root_attrs: Attrs = {
        semconv.TENANT_ID: tenant.tenant_id,
        semconv.USER_ID: user[0],
        semconv.SESSION_ID: session.session_id,
        semconv.FEATURE: feature.name,
        semconv.BILLABLE_ACTION: feature.billable_action,
        semconv.CUSTOMER_VISIBLE_LABEL: feature.label,
        "http.request.method": "POST",
        "http.route": feature.route,
        "http.response.status_code": status_code,
        "meetingmind.tier": tenant.tier,
    }
    if user[1]:
        root_attrs[semconv.WORKSPACE_ID] = user[1]
    root_events: list[tuple[str, int, Attrs]] = []
    if tenant.sla_p95_ms is not None:
        met = root_ms <= tenant.sla_p95_ms
        root_attrs["meetingmind.sla_met"] = met
        if not met:
            root_events.append(
                (
                    "sla-breach",
                    int(root_ms * _NS_PER_MS),
                    {"actual_ms": round(root_ms, 1), "sla_ms": tenant.sla_p95_ms},
                )
            )
    root = _SpanSpec(
        trace_id, root_id, b"", f"POST {feature.route}", _SPAN_KIND_SERVER, 0,
        int(root_ms * _NS_PER_MS), _APP_SCOPE, root_attrs,
        _STATUS_ERROR if fail else 0, fail[1] if fail else "", root_events,
    )  # fmt: skip
    spans = [*children, root]
    # never in the future: a session running into "now" is moved back
    start = min(base_ns, now_ns - root.end_ns - rng.randint(1, 5000) * _NS_PER_MS)
    for s in spans:
        s.start_ns += start
        s.end_ns += start
        s.events = [(n, ts + start, a) for n, ts, a in s.events]
    return _Trace(start, spans)


def _plan(
    tenants: Sequence[DemoTenant], days: int, traces: int, seed: int, now: datetime
) -> list[_Trace]:
    if days < 1:
        raise ValueError("days must be at least 1")
    if traces < 0:
        raise ValueError("traces must not be negative")
    if not tenants:
        raise ValueError("at least one tenant is needed")
    rng = random.Random(seed)
    ids = _Ids(rng)
    profiles = _profiles(rng, tenants)
    tenant_cum = _cumulative([max(p.tenant.weight, 0.0) for p in profiles])
    now_ns = _to_ns(now)
    window_start = now - timedelta(days=days)
    slot_cum = _cumulative(
        [
            _HOURLY[(slot := window_start + timedelta(hours=h, minutes=30)).hour]
            * _WEEKDAY[slot.weekday()]
            for h in range(days * 24)
        ]
    )
    start_ns = _to_ns(window_start)
    out: list[_Trace] = []
    while len(out) < traces:
        prof = rng.choices(profiles, cum_weights=tenant_cum)[0]
        user = rng.choices(prof.users, prof.user_weights)[0]
        session = _Session(f"sess-{ids.token(12).lower()}")
        hour = rng.choices(range(days * 24), cum_weights=slot_cum)[0]
        t_ns = start_ns + int((hour + rng.random()) * 3600e9)
        n = min(1 + int(rng.expovariate(1 / 2.5)), 12, traces - len(out))
        for _ in range(n):
            trace = _make_trace(rng, ids, prof, user, session, t_ns, now_ns)
            out.append(trace)
            # the user reads the result, then asks for the next thing
            t_ns = trace.spans[-1].end_ns + int(rng.uniform(15, 400) * 1e9)
    out.sort(key=lambda tr: tr.start_ns)
    return out


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = 0.0
    out = []
    for w in weights:
        total += w
        out.append(total)
    if total <= 0:
        raise ValueError("weights must not all be zero")
    return out


def _to_ns(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    delta = t - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _pack(plan: Sequence[_Trace], batch_spans: int, seed: int) -> list[list[_SpanSpec]]:
    """Whole traces per batch; ~3% of roots slip into the next batch, as a batch span
    processor's flush timer can cut a trace in two."""
    rng = random.Random(f"pack:{seed}")
    batches: list[list[_SpanSpec]] = []
    current: list[_SpanSpec] = []
    carried: list[_SpanSpec] = []
    for trace in plan:
        if current and len(current) + len(trace.spans) > batch_spans:
            batches.append(current)
            current, carried = carried, []
        if rng.random() < 0.03:
            current.extend(trace.spans[:-1])
            carried.append(trace.spans[-1])
        else:
            current.extend(trace.spans)
    current.extend(carried)
    if current:
        batches.append(current)
    return batches


# --- protobuf --------------------------------------------------------------------------
def _any(value: AttrValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value]))
    return AnyValue(string_value=value)


def _kvs(attrs: Attrs) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any(v)) for k, v in attrs.items()]


def _resource() -> Resource:
    return Resource(
        attributes=_kvs(
            {
                semconv.SERVICE_NAME: SERVICE_NAME,
                semconv.DEPLOYMENT_ENVIRONMENT: ENVIRONMENT,
                "service.version": "2.14.0",
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
            }
        )
    )


def _encode(specs: Sequence[_SpanSpec]) -> bytes:
    by_scope: dict[str, list[Span]] = {}
    for s in specs:
        span = Span(
            trace_id=s.trace_id,
            span_id=s.span_id,
            parent_span_id=s.parent_span_id,
            name=s.name,
            kind=s.kind,  # type: ignore[arg-type]
            start_time_unix_nano=s.start_ns,
            end_time_unix_nano=s.end_ns,
            attributes=_kvs(s.attrs),
            events=[
                Span.Event(time_unix_nano=ts, name=n, attributes=_kvs(a)) for n, ts, a in s.events
            ],
            status=Status(code=s.status_code, message=s.status_message),  # type: ignore[arg-type]
        )
        by_scope.setdefault(s.scope, []).append(span)
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=_resource(),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name=name, version=_SCOPE_VERSION[name]),
                        spans=spans,
                    )
                    for name, spans in by_scope.items()
                ],
            )
        ]
    )
    data: bytes = request.SerializeToString()
    return data


class DemoBatches(Iterator[bytes]):
    """Serialized ``ExportTraceServiceRequest`` bodies; ``len()`` is the batch count.

    The plan (plain span specs) is built up front, deterministic from the seed; each body is
    encoded only when it is reached, so memory stays proportional to the plan."""

    def __init__(
        self,
        tenants: Sequence[DemoTenant],
        *,
        days: int = 7,
        traces: int = 6000,
        seed: int = 7,
        now: datetime | None = None,
        batch_spans: int = 500,
    ) -> None:
        if batch_spans < 1:
            raise ValueError("batch_spans must be at least 1")
        moment = now or datetime.now(timezone.utc)
        plan = _plan(tenants, days, traces, seed, moment)
        self.span_count = sum(len(t.spans) for t in plan)
        self.trace_count = len(plan)
        self._batches = _pack(plan, batch_spans, seed)
        self._next = 0

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self) -> DemoBatches:
        return self

    def __next__(self) -> bytes:
        if self._next >= len(self._batches):
            raise StopIteration
        specs = self._batches[self._next]
        self._batches[self._next] = []  # encoded once: let the specs go
        self._next += 1
        return _encode(specs)


def demo_batches(
    tenants: list[DemoTenant],
    *,
    days: int = 7,
    traces: int = 6000,
    seed: int = 7,
    now: datetime | None = None,
    batch_spans: int = 500,
) -> DemoBatches:
    """OTLP protobuf export bodies of about ``batch_spans`` spans (whole traces, except a
    few roots sent one batch later), oldest first, all ending before ``now``."""
    return DemoBatches(
        tenants, days=days, traces=traces, seed=seed, now=now, batch_spans=batch_spans
    )
