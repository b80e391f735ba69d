"""The public price catalog: genai-prices' bundled data, resolved fast and never updated online.

genai-prices can fetch fresh prices in the background (``UpdatePrices``) and then swaps a
process-global snapshot. We never start that and never read the global snapshot: every look-up
goes through our own reference to the data shipped inside the installed package, so a row's
``price_version`` always names exactly the data that priced it.

genai-prices' own look-up path re-validates units and builds a ``Usage`` per call and caches
every model name it ever saw (unbounded). Ingest prices tens of thousands of rows a second, so
this module resolves ``(provider, model)`` once (bounded LRU), keeps each model's token prices
per UTC day, and hands the pricer plain ``Rates``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from importlib.metadata import version as _dist_version

from genai_prices import types as gp
from genai_prices.data_snapshot import find_provider_by_id

__all__ = [
    "CatalogPrice",
    "Price",
    "Rates",
    "catalog_model",
    "catalog_price",
    "canonical_provider",
    "catalog_version",
    "infer_provider",
    "rates_at",
]

Price = Decimal | gp.TieredPrices

# Provider names OTel instrumentations send (gen_ai.provider.name / gen_ai.system) that
# genai-prices' own provider matching does not map to the right catalog provider.
_PROVIDER_ALIASES: dict[str, str] = {
    "x_ai": "x-ai",
    "xai": "x-ai",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    "az.ai.openai": "azure",
    "azure_openai": "azure",
    "fireworks_ai": "fireworks",
    "fireworks-ai": "fireworks",
    "aws_bedrock": "aws",
    "meta_llama": "meta",
}

# Bounds of the look-up caches: names come from clients, so an attacker could send endless
# distinct ones; a bounded LRU keeps memory flat while real traffic (a few dozen models) hits.
_RESOLVE_CACHE_SIZE = 4096
_DAYS_PER_MODEL = 4096


@functools.cache
def catalog_version() -> str:
    """The price data in use, stored with each catalog-priced row as ``price_version``."""
    return f"genai-prices {_dist_version('genai-prices')}"


@functools.cache
def _providers() -> list[gp.Provider]:
    # The bundled data module, never genai_prices.data_snapshot.get_snapshot(): that returns
    # whatever an UpdatePrices task fetched from the network, if anyone ever started one.
    from genai_prices.data import providers

    return providers


@dataclass(frozen=True, slots=True)
class Rates:
    """One model's prices on one day, in USD per million tokens (requests: per thousand).

    ``None`` means the catalog has no price of that kind; genai-prices then leaves those tokens
    in their parent kind (a cache read without its own price costs the input price)."""

    provider: str
    model: str
    input: Price | None
    output: Price | None
    cache_read: Price | None
    cache_write: Price | None
    reasoning: Price | None
    requests_kcount: Decimal | None
    tiered: bool


@dataclass(frozen=True, slots=True)
class CatalogPrice:
    """A catalog price in USD per million tokens; for tiered prices the base tier."""

    provider: str
    model: str
    input_mtok: Decimal | None
    output_mtok: Decimal | None
    cache_read_mtok: Decimal | None
    cache_write_mtok: Decimal | None
    tiered: bool


@dataclass(slots=True)
class _Entry:
    provider: gp.Provider
    model: gp.ModelInfo
    # Off-peak prices (DeepSeek) change within a day, so those models cannot be cached per day.
    time_of_day: bool
    by_day: dict[int, Rates | None] = field(default_factory=dict)


@functools.lru_cache(maxsize=_RESOLVE_CACHE_SIZE)
def canonical_provider(provider: str) -> str | None:
    """The catalog's id for a provider name as instrumentations send it, or None if unknown.

    "gcp.vertex_ai" -> "google", "aws.bedrock" -> "aws", "x_ai" -> "x-ai", "openai" -> "openai".
    """
    key = provider.strip().lower()
    if not key:
        return None
    key = _PROVIDER_ALIASES.get(key, key)
    if key == "litellm":
        return key
    found = find_provider_by_id(_providers(), key)
    return found.id if found is not None else None


def _provider_for_model(model_lower: str) -> gp.Provider | None:
    for provider in _providers():
        if provider.model_match is not None and provider.model_match.is_match(model_lower):
            return provider
    return None


def infer_provider(model: str) -> str | None:
    """The catalog provider whose model names look like ``model`` ("gpt-4o" -> "openai")."""
    if not model:
        return None
    provider = _provider_for_model(model.strip().lower())
    return provider.id if provider is not None else None


def _find_in(provider: gp.Provider, model_lower: str) -> _Entry | None:
    info = provider.find_model(model_lower, all_providers=_providers())
    if info is None:
        return None
    time_of_day = isinstance(info.prices, list) and any(
        isinstance(c.constraint, gp.TimeOfDateConstraint) for c in info.prices
    )
    return _Entry(provider, info, time_of_day)


@functools.lru_cache(maxsize=_RESOLVE_CACHE_SIZE)
def _resolve(provider: str, model: str) -> _Entry | None:
    """Find the catalog model: under the named provider first, else by the model name alone.

    The fallback matters for OpenAI-compatible gateways: the openai client reports
    ``gen_ai.system=openai`` for a ``claude-…`` model served through LiteLLM or a proxy."""
    model_lower = model.strip().lower()
    if not model_lower:
        return None
    pid = canonical_provider(provider)
    if pid == "litellm":
        # LiteLLM names models "<provider>/<model>".
        prefix, sep, rest = model_lower.partition("/")
        if sep and (named := canonical_provider(prefix)) is not None:
            pid, model_lower = named, rest
        else:
            pid = None
    if pid is not None:
        named_provider = find_provider_by_id(_providers(), pid)
        if named_provider is not None and (entry := _find_in(named_provider, model_lower)):
            return entry
    inferred = _provider_for_model(model_lower)
    return _find_in(inferred, model_lower) if inferred is not None else None


def catalog_model(provider: str | None, model: str) -> tuple[str, str] | None:
    """(provider id, model id) of the catalog entry that prices ``model`` as sent: the
    family a dated snapshot belongs to ("gpt-4o-2024-08-06" -> ("openai", "gpt-4o")), a
    provider prefix understood ("openai/gpt-4o"); None when the catalog does not know it."""
    entry = _resolve(provider or "", model)
    if entry is None:
        prefix, sep, rest = model.strip().lower().partition("/")
        if sep and rest and (named := canonical_provider(prefix)) is not None:
            entry = _resolve(named, rest)
    return None if entry is None else (entry.provider.id, entry.model.id)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        return at.replace(tzinfo=timezone.utc)
    return at if at.tzinfo is timezone.utc else at.astimezone(timezone.utc)


def _price_attr(model_price: gp.ModelPrice, key: str) -> Price | None:
    value = model_price.__dict__.get(key)
    if isinstance(value, (Decimal, gp.TieredPrices)):
        return value
    return None


def _rates(entry: _Entry, model_price: gp.ModelPrice) -> Rates | None:
    get = functools.partial(_price_attr, model_price)
    input_price, output_price = get("input_mtok"), get("output_mtok")
    if input_price is None and output_price is None:
        # Priced per character, audio hour, page...: token counts cannot price it.
        return None
    token_prices = (
        input_price,
        output_price,
        get("cache_read_mtok"),
        get("cache_write_mtok"),
        get("output_reasoning_mtok"),
    )
    requests = get("requests_kcount")
    return Rates(
        provider=entry.provider.id,
        model=entry.model.id,
        input=token_prices[0],
        output=token_prices[1],
        cache_read=token_prices[2],
        cache_write=token_prices[3],
        reasoning=token_prices[4],
        requests_kcount=requests if isinstance(requests, Decimal) else None,
        tiered=any(isinstance(p, gp.TieredPrices) for p in token_prices),
    )


def rates_at(provider: str | None, model: str, at: datetime) -> Rates | None:
    """The model's catalog prices at ``at`` (UTC; naive means UTC), or None if unknown."""
    entry = _resolve(provider or "", model)
    if entry is None:
        return None
    at = _utc(at)
    if entry.time_of_day:
        return _rates(entry, entry.model.get_prices(at))
    day = at.toordinal()
    try:
        return entry.by_day[day]
    except KeyError:
        pass
    rates = _rates(entry, entry.model.get_prices(at))
    if len(entry.by_day) >= _DAYS_PER_MODEL:
        entry.by_day.clear()
    entry.by_day[day] = rates
    return rates


def _base(price: Price | None) -> Decimal | None:
    if isinstance(price, gp.TieredPrices):
        return price.base
    return price


def catalog_price(provider: str | None, model: str, at: datetime) -> CatalogPrice | None:
    """The catalog's per-MTok prices of a model at a time; base tier when tiered."""
    rates = rates_at(provider, model, at)
    if rates is None:
        return None
    return CatalogPrice(
        provider=rates.provider,
        model=rates.model,
        input_mtok=_base(rates.input),
        output_mtok=_base(rates.output),
        cache_read_mtok=_base(rates.cache_read),
        cache_write_mtok=_base(rates.cache_write),
        tiered=rates.tiered,
    )
