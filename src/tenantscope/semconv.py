"""Attribute names tenantscope emits, and the table of names it accepts on ingest.

The accept table is ordered: for each field the first non-empty attribute wins. Span
attributes are looked at first, then baggage copied onto the span (``baggage.<key>``),
then resource attributes.
"""

from __future__ import annotations

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
    "tenant_id": ("tenant.id", "tenantscope.tenant_id", "netra.tenant_id", "tenant_id"),
    "workspace_id": ("tenantscope.workspace_id", "workspace.id", "workspace_id"),
    "user_id": ("user.id", "enduser.id", "langfuse.user.id", "netra.user_id"),
    "session_id": (
        "session.id",
        "langfuse.session.id",
        "gen_ai.conversation.id",
        "netra.session_id",
    ),
    "feature": ("tenantscope.feature", "feature", "feature_key"),
    "billable_action": ("tenantscope.billable_action", "billable_action"),
    "customer_visible_label": (
        "tenantscope.customer_visible_label",
        "customer_visible_label",
    ),
    "provider": ("gen_ai.provider.name", "gen_ai.system", "netra.llm_system"),
    "model": ("gen_ai.response.model", "gen_ai.request.model"),
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
    "reported_cost": ("gen_ai.usage.cost",),
    # a JSON list of objects with ``cost_in_usd`` (summed)
    "reported_cost_list": ("netra.usage",),
    "environment": ("deployment.environment.name", "deployment.environment"),
    "service": ("service.name",),
    "billable_state": ("tenantscope.billable_state",),
    "event_id": ("tenantscope.event_id",),
    "ttft_ms": ("tenantscope.ttft_ms",),
    "ttft_s": ("gen_ai.server.time_to_first_token",),
}

# Fields that may come from OTel baggage copied onto spans as ``baggage.<key>`` or as-is.
BAGGAGE_FIELDS: Final = ("tenant_id", "user_id", "session_id", "workspace_id", "feature")
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

# Providers whose API reports input tokens without the cache tokens (cache additive).
CACHE_ADDITIVE_PROVIDERS: Final = frozenset({"anthropic"})
# Instrumentation scopes (prefixes) whose spans follow the OTel convention (input includes
# cache tokens) even for a cache-additive provider: anthropic 2.x's own spans do.
CACHE_INCLUSIVE_SCOPES: Final = ("com.anthropic.sdk",)
