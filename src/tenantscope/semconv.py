"""Attribute names tenantscope emits, and the table of names it accepts on ingest.

The accept table is ordered: for each field the first non-empty attribute wins. Span
attributes are looked at first, then baggage copied onto the span (``baggage.<key>``),
then resource attributes.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Final

# --- names we emit (current OTel GenAI conventions + our own namespace) -------------------
TENANT_ID: Final = "tenant.id"
WORKSPACE_ID: Final = "tenantscope.workspace_id"
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"
FEATURE: Final = "tenantscope.feature"
BILLABLE_ACTION: Final = "tenantscope.billable_action"
CUSTOMER_VISIBLE_LABEL: Final = "tenantscope.customer_visible_label"
# the tenant's own end customer (a tenant that resells AI features to its customers)
CUSTOMER_ID: Final = "tenantscope.customer_id"
BILLABLE_STATE: Final = "tenantscope.billable_state"
EVENT_ID: Final = "tenantscope.event_id"
SPAN_KIND: Final = "tenantscope.span.kind"
# ok | error | cancelled, overriding what the OTLP status code says (e.g. a stream the app
# closed early is cancelled, not an error)
STATUS: Final = "tenantscope.status"
# The limit check's reservation a call holds (``/v1/limits/check``): when its span is
# stored, the reservation is settled at the span's real cost
RESERVATION_ID: Final = "tenantscope.reservation_id"
# Set by our SDK on an LLM span whose stream a limit cut off (status cancelled, usage so far)
LIMIT_CUT: Final = "tenantscope.limit.cut"
# Set by our SDK when the span's token figures are its own count / upper-bound estimate,
# not the provider's (a stream cut before the provider's usage event)
USAGE_ESTIMATED: Final = "tenantscope.usage.estimated"
# On a record of a call a limit refused (status blocked): which limit
LIMIT_ID: Final = "tenantscope.limit.id"
# Set by our SDK when ``gen_ai.usage.input_tokens`` already includes cache tokens whatever
# the provider (the OTel convention); without it Anthropic figures are read as the API sends
# them (cache additive).
INPUT_INCLUDES_CACHE: Final = "tenantscope.usage.input_includes_cache"

GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"
GEN_AI_SERVER_TTFT: Final = "gen_ai.server.time_to_first_token"
TTFT_MS: Final = "tenantscope.ttft_ms"
ERROR_TYPE: Final = "error.type"

SERVICE_NAME: Final = "service.name"
DEPLOYMENT_ENVIRONMENT: Final = "deployment.environment"
DEPLOYMENT_ENVIRONMENT_NAME: Final = "deployment.environment.name"

# --- what we accept: field -> attribute names, first non-empty wins ----------------------
ACCEPT: Final[dict[str, tuple[str, ...]]] = {
    "tenant_id": (
        "tenant.id",
        "tenantscope.tenant_id",
        "netra.tenant_id",
        "tenant_id",
        # where other SDKs can put it: Langfuse trace metadata, OpenLLMetry association
        # properties (``LANGFUSE_TENANT_KEYS`` lists the same for people)
        "langfuse.trace.metadata.tenant_id",
        "langfuse.trace.metadata.tenant",
        "langfuse.observation.metadata.tenant_id",
        "traceloop.association.properties.tenant_id",
    ),
    "workspace_id": ("tenantscope.workspace_id", "workspace.id", "workspace_id"),
    "user_id": (
        "user.id",
        "enduser.id",
        "langfuse.user.id",
        "netra.user_id",
        "langfuse.trace.user_id",
    ),
    "session_id": (
        "session.id",
        "langfuse.session.id",
        "gen_ai.conversation.id",
        "netra.session_id",
    ),
    "feature": ("tenantscope.feature", "feature", "feature_key"),
    "customer_id": ("tenantscope.customer_id", "customer.id", "customer_id"),
    "billable_action": ("tenantscope.billable_action", "billable_action"),
    "customer_visible_label": (
        "tenantscope.customer_visible_label",
        "customer_visible_label",
    ),
    "provider": ("gen_ai.provider.name", "gen_ai.system", "netra.llm_system"),
    "model": (
        "gen_ai.response.model",
        "gen_ai.request.model",
        "langfuse.observation.model.name",
    ),
    "operation": ("gen_ai.operation.name",),
    "response_id": ("gen_ai.response.id",),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cache_read_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
    ),
    "cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "gen_ai.usage.cache_write.input_tokens",
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "llm.usage.reasoning_tokens",
    ),
    "total_tokens": ("gen_ai.usage.total_tokens", "llm.usage.total_tokens"),
    "reported_cost": ("gen_ai.usage.cost",),
    # Langfuse (v3 and later, OTel-based): JSON objects of usage and cost by type
    "usage_details": ("langfuse.observation.usage_details",),
    "cost_details": ("langfuse.observation.cost_details",),
    "observation_type": ("langfuse.observation.type",),
    # a JSON list of objects with ``cost_in_usd`` (summed)
    "reported_cost_list": ("netra.usage",),
    "environment": ("deployment.environment.name", "deployment.environment"),
    "service": ("service.name",),
    "billable_state": ("tenantscope.billable_state",),
    "event_id": ("tenantscope.event_id",),
    "ttft_ms": ("tenantscope.ttft_ms",),
    "ttft_s": ("gen_ai.server.time_to_first_token", "gen_ai.response.time_to_first_chunk"),
}

# Fields that may come from OTel baggage copied onto spans as ``baggage.<key>`` or as-is.
BAGGAGE_FIELDS: Final = (
    "tenant_id",
    "user_id",
    "session_id",
    "workspace_id",
    "feature",
    "customer_id",
)
BAGGAGE_PREFIX: Final = "baggage."

# Resource attributes are consulted for these fields (after span attributes).
RESOURCE_FIELDS: Final = ("service", "environment", "tenant_id", "workspace_id")

# Instrumentation scope name fragments -> provider, used when no provider attribute is set.
SCOPE_PROVIDERS: Final[tuple[tuple[str, str], ...]] = (
    ("openai", "openai"),
    ("anthropic", "anthropic"),
    ("google_genai", "google"),
    ("google-genai", "google"),
    ("vertexai", "google"),
    ("gemini", "google"),
    ("bedrock", "aws"),
    ("mistral", "mistral"),
    ("groq", "groq"),
    ("cohere", "cohere"),
)

# gen_ai.provider.name / gen_ai.system values -> genai-prices provider ids
PROVIDER_ALIASES: Final[dict[str, str]] = {
    "openai": "openai",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure_openai": "azure",
    "anthropic": "anthropic",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "google": "google",
    "vertex_ai": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "groq": "groq",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "perplexity": "perplexity",
}

# --- token conventions, by instrumentation ------------------------------------------------
# Whether ``gen_ai.usage.input_tokens`` already includes cache reads and writes is a property
# of the instrumentation that wrote the span (and of its version), not of the provider: the
# OTel GenAI convention says it does, Anthropic's API does not, and libraries differ in which
# they follow. Normalisation looks the span's scope up here; for a scope not listed it
# decides from the figures (``ingest/normalize.py``), and the record keeps the name of the
# rule that decided (``usage_convention``) so a wrong guess can be seen and explained.


@dataclass(frozen=True, slots=True)
class Convention:
    name: str  # stored in ``UsageRecord.usage_convention``
    library: str  # who writes such spans, for people
    scopes: tuple[str, ...]  # instrumentation scope names (prefixes) it covers
    # None: as the provider's API reports it (``CACHE_ADDITIVE_PROVIDERS`` exclude the cache)
    input_includes_cache: bool | None
    # scope versions it holds from ("" = any); an older version falls to the figures
    since: str = ""
    # where the library counts reasoning tokens and which spellings it uses, for people
    note: str = ""
    # its gen_ai.usage.cost is its own estimate from a price list of its own, not a price
    # the app was charged: the catalog prices the call, the estimate stays as an attribute
    cost_is_estimate: bool = False


# First match wins: a longer scope name that shares a prefix comes first. The order is also
# the preference among equally complete copies of one response (``ingest/duplicates.py``).
CONVENTIONS: Final[tuple[Convention, ...]] = (
    Convention(
        "tenantscope",
        "tenantscope SDK",
        ("tenantscope",),
        True,
        note="input includes cache, output includes reasoning; also says so with "
        "tenantscope.usage.input_includes_cache",
    ),
    Convention(
        "anthropic-sdk",
        "anthropic SDK's own spans (2.x)",
        ("com.anthropic.sdk",),
        True,
        note="gen_ai.usage.input_tokens includes cache (OTel convention)",
    ),
    Convention(
        "otel-genai",
        "OpenTelemetry GenAI instrumentations (openai-v2, genai-openai, genai-anthropic)",
        (
            "opentelemetry.instrumentation.openai_v2",
            "opentelemetry.instrumentation.genai",
            "opentelemetry.util.genai",
        ),
        True,
        note="the OTel GenAI convention: input includes cache, output includes reasoning",
    ),
    Convention(
        "openllmetry",
        "OpenLLMetry (opentelemetry-instrumentation-openai/-anthropic, traceloop-sdk)",
        (
            "opentelemetry.instrumentation.openai",
            "opentelemetry.instrumentation.anthropic",
        ),
        True,
        note="input includes cache (gen_ai.usage.total_tokens = input + output); cache as "
        "gen_ai.usage.cache_read_input_tokens / cache_creation_input_tokens",
    ),
    Convention(
        "logfire",
        "Pydantic Logfire",
        ("logfire",),
        True,
        note="input includes cache; a stream's usage is on its 'streaming response' span",
    ),
    Convention(
        "openlit",
        "OpenLIT",
        ("openlit",),
        None,
        note="input as the provider reports it (Anthropic: without the cache); its "
        "gen_ai.usage.cost is its own estimate that leaves cache prices out (0 when it "
        "knows no price)",
        cost_is_estimate=True,
    ),
    Convention(
        "netra",
        "netra-sdk",
        ("netra",),
        True,
        note="wraps OpenLLMetry's instrumentations; cost from set_usage in netra.usage",
    ),
)

# The other rules a record's ``usage_convention`` may name, and what each means.
USAGE_RULES: Final[dict[str, str]] = {
    "attribute": "the span says so (tenantscope.usage.input_includes_cache): input includes cache",
    "figures:input<cache": "input was smaller than its cache tokens, so it cannot "
    "include them: cache added to input",
    "figures:total": "gen_ai.usage.total_tokens equals input + cache + output: input "
    "excludes cache, cache added",
    "otel": "unknown instrumentation, figures consistent with the OTel GenAI convention: "
    "input includes cache",
    "langfuse": "Langfuse usage details (input, cache and reasoning given apart): summed",
    "event": "native usage event: input includes cache (documented event convention)",
}


@functools.lru_cache(maxsize=1024)  # a handful of scopes, asked for every LLM span
def convention_for(scope_name: str, scope_version: str = "") -> Convention | None:
    """The listed convention of an instrumentation scope (None: not listed)."""
    for convention in CONVENTIONS:
        if scope_name.startswith(convention.scopes):
            if convention.since and _version(scope_version) < _version(convention.since):
                return None
            return convention
    return None


def describe_usage_convention(name: str) -> str:
    """What a record's ``usage_convention`` means, for the trace page and API readers."""
    for convention in CONVENTIONS:
        if convention.name == name:
            if convention.input_includes_cache is None:
                return f"{convention.library}: input as the provider's API reports it"
            includes = "includes" if convention.input_includes_cache else "excludes"
            return f"{convention.library}: input {includes} cache tokens"
    return USAGE_RULES.get(name, "")


# Providers whose API reports input tokens without the cache tokens (cache additive).
CACHE_ADDITIVE_PROVIDERS: Final = frozenset({"anthropic"})


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)
