"""The cost of one usage record: reported cost > operator override > catalog > unknown.

Token counts follow the OTel GenAI convention (normalised before pricing): ``input_tokens``
includes cache reads and writes, ``output_tokens`` includes reasoning. That is also what
genai-prices expects, and the catalog arithmetic below reproduces its ``ModelPrice.calc_price``
exactly (tests compare the two over the whole catalog) without its per-call overhead.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from genai_prices.types import TieredPrices

from tenantscope.pricing.catalog import (
    Price,
    Rates,
    canonical_provider,
    catalog_model,
    catalog_version,
    infer_provider,
    rates_at,
)
from tenantscope.records import MONEY_QUANTUM, CostSource, UsageRecord
from tenantscope.storage.base import PriceOverride

__all__ = ["PriceResult", "Pricer", "catalog_cost", "override_covers"]

_MTOK = 1_000_000
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PriceResult:
    cost_usd: Decimal | None
    cost_source: CostSource
    price_version: str


_UNKNOWN = PriceResult(None, "unknown", "")


@dataclass(frozen=True, slots=True)
class _Override:
    rule: PriceOverride
    provider: str  # lower-cased; "" matches any provider
    effective_from: datetime  # UTC-aware
    version: str


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        return at.replace(tzinfo=timezone.utc)
    return at if at.tzinfo is timezone.utc else at.astimezone(timezone.utc)


def _at_tier(price: Price, total_input: int) -> Decimal:
    # genai-prices' "cliff" tiers: crossing a threshold prices the whole request at that tier,
    # chosen by all input tokens (cache included), strictly above the tier start.
    if isinstance(price, TieredPrices):
        for tier in reversed(price.tiers):
            if total_input > tier.start:
                return tier.price
        return price.base
    return price


def _quantize(value: Decimal) -> Decimal | None:
    try:
        return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:  # beyond the context's precision: an absurd amount
        return None


def catalog_cost(
    rates: Rates,
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write: int,
    reasoning: int,
) -> Decimal:
    """Unrounded USD cost of one call at catalog ``rates`` (genai-prices' arithmetic).

    Token kinds without a price of their own stay in their parent kind: cache tokens are then
    input tokens, reasoning tokens output tokens."""
    cost = _ZERO
    plain_input = input_tokens
    if rates.cache_read is not None:
        plain_input -= cache_read
        cost += _at_tier(rates.cache_read, input_tokens) * cache_read / _MTOK
    if rates.cache_write is not None:
        plain_input -= cache_write
        cost += _at_tier(rates.cache_write, input_tokens) * cache_write / _MTOK
    if rates.input is not None:
        cost += _at_tier(rates.input, input_tokens) * plain_input / _MTOK
    plain_output = output_tokens
    if rates.reasoning is not None:
        plain_output -= reasoning
        cost += _at_tier(rates.reasoning, input_tokens) * reasoning / _MTOK
    if rates.output is not None:
        cost += _at_tier(rates.output, input_tokens) * plain_output / _MTOK
    if rates.requests_kcount is not None:
        cost += rates.requests_kcount / 1000
    return cost


def _catalog_kind(rates: Rates | None, kind: str, total_input: int) -> Decimal | None:
    if rates is None:
        return None
    price: Price | None = getattr(rates, kind)
    return None if price is None else _at_tier(price, total_input)


def _override_cost(
    rule: PriceOverride, rates: Rates | None, inp: int, out: int, cache_read: int, cache_write: int
) -> Decimal | None:
    """USD cost at an operator's rates; None when a needed price exists nowhere.

    A kind the override leaves empty falls back to the catalog price of that kind; cache
    kinds the catalog does not price either cost the (override's) input price."""
    input_mtok = rule.input_mtok
    if input_mtok is None:
        input_mtok = _catalog_kind(rates, "input", inp)
    output_mtok = rule.output_mtok
    if output_mtok is None:
        output_mtok = _catalog_kind(rates, "output", inp)
    read_mtok = rule.cache_read_mtok
    if read_mtok is None:
        read_mtok = _catalog_kind(rates, "cache_read", inp)
    if read_mtok is None:
        read_mtok = input_mtok
    write_mtok = rule.cache_write_mtok
    if write_mtok is None:
        write_mtok = _catalog_kind(rates, "cache_write", inp)
    if write_mtok is None:
        write_mtok = input_mtok
    plain_input = inp - cache_read - cache_write
    cost = _ZERO
    for count, mtok in (
        (plain_input, input_mtok),
        (cache_read, read_mtok),
        (cache_write, write_mtok),
        (out, output_mtok),
    ):
        if count:
            if mtok is None:
                return None
            cost += mtok * count / _MTOK
    return cost


def _name_key(model: str) -> str:
    return "name:" + model.strip().lower()


def _family_key(provider: str | None, model: str) -> str | None:
    found = catalog_model(provider, model)
    return None if found is None else f"catalog:{found[0]}/{found[1]}"


def _index(overrides: Sequence[PriceOverride]) -> dict[str, tuple[_Override, ...]]:
    """Overrides by the model name they give and by the catalog model that name stands
    for, so one for "gpt-4o" also prices "gpt-4o-2024-08-06" (the catalog prices both as
    gpt-4o) but not "gpt-4o-2024-05-13" (a model of its own there)."""
    by_key: dict[str, list[_Override]] = {}
    for rule in overrides:
        start = _utc(rule.effective_from)
        version = f"override:{rule.id}" if rule.id is not None else f"override:{start.isoformat()}"
        entry = _Override(rule, rule.provider.strip().lower(), start, version)
        by_key.setdefault(_name_key(rule.model), []).append(entry)
        family = _family_key(rule.provider, rule.model)
        if family is not None:
            by_key.setdefault(family, []).append(entry)
    # Latest effective date first; among equal dates the later-created (higher id) wins.
    return {
        key: tuple(
            sorted(
                entries,
                key=lambda o: (o.effective_from, o.rule.id if o.rule.id is not None else -1),
                reverse=True,
            )
        )
        for key, entries in by_key.items()
    }


def override_covers(rule: PriceOverride, provider: str, model: str) -> bool:
    """Whether ``rule`` prices calls of ``model`` from ``provider`` (from its effective
    date): what ``prices show`` and the prices page list under it."""
    index = _index([rule])
    record = UsageRecord(event_id="", kind="llm", provider=provider, model=model)
    return _override_in(index, record, datetime.max.replace(tzinfo=timezone.utc)) is not None


def _provider_names(record: UsageRecord) -> set[str]:
    names = {record.provider.strip().lower()}
    canonical = (
        canonical_provider(record.provider) if record.provider else infer_provider(record.model)
    )
    if canonical is not None:
        names.add(canonical)
    names.discard("")
    return names


def _override_in(
    index: dict[str, tuple[_Override, ...]], record: UsageRecord, at: datetime
) -> _Override | None:
    """The override in effect at ``at`` for the record's model: one given for the exact
    name first, else one for the catalog model the name stands for."""
    names: set[str] | None = None
    for key in (_name_key(record.model), _family_key(record.provider, record.model)):
        candidates = index.get(key) if key is not None else None
        for candidate in candidates or ():
            if candidate.effective_from > at:
                continue
            if candidate.provider:
                if names is None:
                    names = _provider_names(record)
                if candidate.provider not in names:
                    continue
            return candidate
    return None


class Pricer:
    """Prices usage records. Safe to share between threads."""

    def __init__(self, overrides: Sequence[PriceOverride] = ()) -> None:
        self._lock = threading.Lock()
        self._overrides = _index(overrides)
        self._version = catalog_version()

    def set_overrides(self, overrides: Sequence[PriceOverride]) -> None:
        """Replace the operator overrides; prices computed from now on use the new ones."""
        index = _index(overrides)
        with self._lock:
            # One reference swap: a concurrent price() sees the old or the new set, whole.
            self._overrides = index

    def _override_for(
        self, index: dict[str, tuple[_Override, ...]], record: UsageRecord, at: datetime
    ) -> _Override | None:
        return _override_in(index, record, at)

    def price(self, record: UsageRecord) -> PriceResult:
        if record.kind != "llm":
            return _UNKNOWN
        if record.cost_source == "reported" and record.cost_usd is not None:
            reported = _quantize(record.cost_usd)
            result = PriceResult(
                reported if reported is not None else record.cost_usd, "reported", ""
            )
            if record.cost_usd or record.source != "otlp" or not record.total_tokens:
                return result
            # A span's reported 0 for a call with tokens is what instrumentations (OpenLIT)
            # write when they know no price: the catalog prices it if it can.
            priced = self._unreported(record)
            return priced if priced.cost_source != "unknown" else result
        return self._unreported(record)

    def _unreported(self, record: UsageRecord) -> PriceResult:
        model = record.model
        if not model:
            return _UNKNOWN
        inp, out = record.input_tokens, record.output_tokens
        cache_read, cache_write = record.cache_read_tokens, record.cache_write_tokens
        reasoning = record.reasoning_tokens
        if (
            min(inp, out, cache_read, cache_write, reasoning) < 0
            or cache_read + cache_write > inp
            or reasoning > out
        ):
            # Inconsistent counts (genai-prices refuses them too): keep the tokens, no cost.
            return _UNKNOWN
        at = _utc(record.start_time)
        index = self._overrides
        if index:
            override = self._override_for(index, record, at)
            if override is not None:
                rule = override.rule
                needs_catalog = None in (
                    rule.input_mtok,
                    rule.output_mtok,
                    rule.cache_read_mtok,
                    rule.cache_write_mtok,
                )
                rates = rates_at(record.provider, model, at) if needs_catalog else None
                cost = _override_cost(rule, rates, inp, out, cache_read, cache_write)
                rounded = None if cost is None else _quantize(cost)
                if rounded is None:
                    return _UNKNOWN
                return PriceResult(rounded, "override", override.version)
        rates = rates_at(record.provider, model, at)
        if rates is None:
            return _UNKNOWN
        rounded = _quantize(catalog_cost(rates, inp, out, cache_read, cache_write, reasoning))
        if rounded is None:
            return _UNKNOWN
        return PriceResult(rounded, "catalog", self._version)

    def apply(self, record: UsageRecord) -> None:
        """Set the record's cost, cost_source and price_version from ``price``."""
        result = self.price(record)
        record.cost_usd = result.cost_usd
        record.cost_source = result.cost_source
        record.price_version = result.price_version
