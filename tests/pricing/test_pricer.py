from __future__ import annotations

import warnings
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from genai_prices import Usage

from tenantscope.pricing import catalog
from tenantscope.pricing.pricer import Pricer, PriceResult
from tenantscope.records import MONEY_QUANTUM, UsageRecord
from tenantscope.storage.base import PriceOverride

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=timezone.utc)


def llm(model: str, provider: str = "", *, at: datetime = WHEN, **fields: Any) -> UsageRecord:
    return UsageRecord(
        event_id="e1", kind="llm", provider=provider, model=model, start_time=at, **fields
    )


# --- the catalog arithmetic is genai-prices' own, over the whole catalog -----------------------

USAGES = [
    # (input incl. cache, cache read, cache write, output incl. reasoning, reasoning)
    (1_000, 300, 200, 500, 100),
    (310_000, 50_000, 20_000, 9_000, 4_000),  # above every long-context threshold
    (0, 0, 0, 0, 0),
]
TIMES = [utc(2024, 6, 1, 2), utc(2025, 6, 10, 12), utc(2026, 3, 13, 20), utc(2027, 1, 2, 3)]


def test_matches_genai_prices_for_every_catalog_model() -> None:
    pricer = Pricer()
    compared = 0
    for provider in catalog._providers():
        for model in provider.models:
            entry = catalog._resolve(provider.id, model.id)
            if entry is None or entry.model is not model:
                continue  # an id that another model's match claims first
            for at in TIMES:
                for inp, read, write, out, reasoning in USAGES:
                    record = llm(
                        model.id,
                        provider.id,
                        at=at,
                        input_tokens=inp,
                        cache_read_tokens=read,
                        cache_write_tokens=write,
                        output_tokens=out,
                        reasoning_tokens=reasoning,
                    )
                    ours = pricer.price(record)
                    usage = Usage(
                        input_tokens=inp,
                        cache_read_tokens=read,
                        cache_write_tokens=write,
                        output_tokens=out,
                        output_reasoning_tokens=reasoning,
                    )
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        reference = model.calc_price(
                            usage, provider, genai_request_timestamp=at
                        ).total_price
                    if ours.cost_source == "unknown":
                        # only models the catalog prices in other units than tokens
                        prices = model.get_prices(at)
                        assert prices.input_mtok is None and prices.output_mtok is None
                        continue
                    assert ours.cost_source == "catalog"
                    expected = reference.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)
                    assert ours.cost_usd == expected, (provider.id, model.id, at, inp)
                    compared += 1
    assert compared > 20_000


# --- rules --------------------------------------------------------------------------------------


def test_non_llm_spans_are_not_priced() -> None:
    span = UsageRecord(event_id="e1", kind="span", model="gpt-4o", input_tokens=100)
    assert Pricer().price(span) == PriceResult(None, "unknown", "")


def test_no_model_is_unknown() -> None:
    assert Pricer().price(llm("", "openai", input_tokens=100)) == PriceResult(None, "unknown", "")


@pytest.mark.parametrize(
    "tokens",
    [
        {"input_tokens": 100, "cache_read_tokens": 80, "cache_write_tokens": 30},
        {"input_tokens": 100, "output_tokens": 10, "reasoning_tokens": 11},
        {"input_tokens": -1},
    ],
)
def test_inconsistent_counts_are_unknown(tokens: dict[str, Any]) -> None:
    assert Pricer().price(llm("gpt-4o", "openai", **tokens)).cost_source == "unknown"


def test_money_is_quantized_half_even_to_12_places() -> None:
    result = Pricer().price(llm("gpt-4o", "openai", input_tokens=1))
    assert result.cost_usd is not None
    assert result.cost_usd.as_tuple().exponent == -12
    assert result.cost_usd == Decimal("0.0000025")
    # $0.0000005 per MTok: 1 token = 5e-13 (a tie, rounds to even 0); 3 tokens = 1.5e-12 -> 2e-12
    tiny = PriceOverride(
        model="m", effective_from=utc(2020, 1, 1), input_mtok=Decimal("0.0000005"), id=9
    )
    pricer = Pricer([tiny])
    assert pricer.price(llm("m", input_tokens=1)).cost_usd == Decimal("0E-12")
    assert pricer.price(llm("m", input_tokens=3)).cost_usd == Decimal("2E-12")


def test_reported_cost_is_only_kept_when_present() -> None:
    record = llm("gpt-4o", "openai", input_tokens=1_000_000, cost_source="reported")
    result = Pricer().price(record)  # "reported" with no figure: price it from the catalog
    assert (result.cost_usd, result.cost_source) == (Decimal("2.5"), "catalog")


def test_a_spans_reported_zero_for_a_call_with_tokens_is_priced_by_the_catalog() -> None:
    """OpenLIT writes gen_ai.usage.cost = 0 when it knows no price: not a free call."""
    tokens: dict[str, Any] = {"input_tokens": 1_000_000, "source": "otlp"}
    zero = {"cost_usd": Decimal(0), "cost_source": "reported"}
    priced = Pricer().price(llm("gpt-4o", "openai", **tokens, **zero))
    assert (priced.cost_usd, priced.cost_source) == (Decimal("2.5"), "catalog")
    # a model the catalog cannot price keeps the reported figure
    unknown = Pricer().price(llm("in-house-model", "acme", **tokens, **zero))
    assert (unknown.cost_usd, unknown.cost_source) == (Decimal(0), "reported")
    # a positive reported cost still wins, and a native event's 0 is taken as said
    paid = Pricer().price(
        llm("gpt-4o", "openai", **tokens, cost_usd=Decimal("0.1"), cost_source="reported")
    )
    assert (paid.cost_usd, paid.cost_source) == (Decimal("0.1"), "reported")
    event = Pricer().price(llm("gpt-4o", "openai", input_tokens=1_000_000, source="event", **zero))
    assert (event.cost_usd, event.cost_source) == (Decimal(0), "reported")
    # no tokens: nothing to price, the 0 stands
    empty = Pricer().price(llm("gpt-4o", "openai", source="otlp", **zero))
    assert empty.cost_source == "reported"


# --- overrides ----------------------------------------------------------------------------------


def override(**fields: Any) -> PriceOverride:
    fields.setdefault("effective_from", utc(2025, 1, 1))
    return PriceOverride(**fields)


def test_override_provider_matching() -> None:
    pricer = Pricer(
        [
            override(model="gpt-4o", provider="Azure", input_mtok=Decimal(1), id=1),
            override(model="gemini-1.5-pro", provider="google", input_mtok=Decimal(1), id=2),
            override(model="claude-3-5-sonnet-20241022", provider="anthropic", id=3),
        ]
    )
    tokens: dict[str, Any] = {"input_tokens": 1_000_000}
    # a different provider's negotiated rate does not apply
    assert pricer.price(llm("gpt-4o", "openai", **tokens)).cost_source == "catalog"
    azure = pricer.price(llm("gpt-4o", "azure.ai.openai", **tokens))
    assert (azure.cost_source, azure.cost_usd) == ("override", Decimal(1))
    # OTel provider names match the catalog id; an absent provider is inferred from the model
    vertex = pricer.price(llm("gemini-1.5-pro", "gcp.vertex_ai", **tokens))
    assert vertex.price_version == "override:2"
    unnamed = pricer.price(llm("Gemini-1.5-Pro", "", **tokens))
    assert unnamed.price_version == "override:2"
    # an override with no prices at all falls back to the catalog for every kind
    claude = pricer.price(llm("claude-3-5-sonnet-20241022", "anthropic", **tokens))
    assert (claude.cost_source, claude.cost_usd) == ("override", Decimal(3))


def test_override_fallbacks_to_catalog_and_input_price() -> None:
    pricer = Pricer(
        [override(model="gpt-4o", output_mtok=Decimal(6), id=1)],
    )
    record = llm(
        "gpt-4o",
        "openai",
        input_tokens=10_000,
        cache_read_tokens=4_000,
        cache_write_tokens=1_000,
        output_tokens=2_000,
    )
    # input, cache read from the catalog ($2.50, $1.25); the catalog has no cache-write price
    # for gpt-4o, so writes cost the input price: 5,000 x 2.5 + 4,000 x 1.25 + 1,000 x 2.5
    # + 2,000 x 6 = 12,500 + 5,000 + 2,500 + 12,000 = 32,000 / 1e6
    assert pricer.price(record).cost_usd == Decimal("0.032")


def test_override_fallback_uses_the_catalog_tier() -> None:
    pricer = Pricer([override(model="gemini-1.5-pro", output_mtok=Decimal(4), id=1)])
    long_prompt = llm("gemini-1.5-pro", "google", input_tokens=200_000, output_tokens=1_000)
    # catalog input at the long tier ($2.50): 200,000 x 2.5 + 1,000 x 4 = 504,000 / 1e6
    assert pricer.price(long_prompt).cost_usd == Decimal("0.504")


def test_override_for_a_model_the_catalog_does_not_know() -> None:
    full = override(model="acme-7b", input_mtok=Decimal("0.5"), output_mtok=Decimal("1.5"))
    result = Pricer([full]).price(llm("acme-7b", input_tokens=2_000, output_tokens=1_000))
    # 2,000 x 0.5 + 1,000 x 1.5 = 2,500 / 1e6; no id yet: version names the effective date
    assert result == PriceResult(
        Decimal("0.0025"), "override", "override:2025-01-01T00:00:00+00:00"
    )
    input_only = Pricer([override(model="acme-7b", input_mtok=Decimal("0.5"))])
    embedding = llm("acme-7b", input_tokens=2_000)
    assert input_only.price(embedding).cost_usd == Decimal("0.001")
    chat = llm("acme-7b", input_tokens=2_000, output_tokens=10)
    assert input_only.price(chat).cost_source == "unknown"  # no output price anywhere


def test_same_effective_date_later_created_wins() -> None:
    rules = [
        override(model="gpt-4o", input_mtok=Decimal(2), id=7),
        override(model="gpt-4o", input_mtok=Decimal(1), id=8),
    ]
    result = Pricer(list(reversed(rules))).price(llm("gpt-4o", input_tokens=1_000_000))
    assert (result.cost_usd, result.price_version) == (Decimal(1), "override:8")


def test_set_overrides_replaces_them_and_apply_reprices() -> None:
    pricer = Pricer([override(model="gpt-4o", input_mtok=Decimal(1), id=1)])
    record = llm("gpt-4o", "openai", input_tokens=1_000_000)
    pricer.apply(record)
    assert (record.cost_usd, record.cost_source, record.price_version) == (
        Decimal(1),
        "override",
        "override:1",
    )
    pricer.set_overrides([])
    pricer.apply(record)
    assert (record.cost_usd, record.cost_source) == (Decimal("2.5"), "catalog")
    assert record.price_version == catalog.catalog_version()


def test_an_override_prices_the_names_the_catalog_prices_as_its_model() -> None:
    """Issue 11.16: a negotiated price for gpt-4o applies to the snapshot the provider
    reports (gpt-4o-2024-08-06), as the catalog's own price does."""
    pricer = Pricer([override(model="gpt-4o", input_mtok=Decimal(1), output_mtok=Decimal(1), id=1)])
    tokens: dict[str, Any] = {"input_tokens": 1_000_000}
    for provider, model in (
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-2024-08-06"),
        ("", "GPT-4o-2024-08-06"),
        ("", "openai/gpt-4o"),
    ):
        result = pricer.price(llm(model, provider, **tokens))
        assert (result.cost_source, result.cost_usd) == ("override", Decimal(1)), model
    # a snapshot the catalog prices as a model of its own keeps its catalog price
    other = pricer.price(llm("gpt-4o-2024-05-13", "openai", **tokens))
    assert other.cost_source == "catalog"
    # an override for the exact snapshot wins over the family's
    exact = override(model="gpt-4o-2024-08-06", input_mtok=Decimal(3), id=2)
    both = Pricer([exact, override(model="gpt-4o", input_mtok=Decimal(1), id=1)])
    assert both.price(llm("gpt-4o-2024-08-06", "openai", **tokens)).cost_usd == Decimal(3)
    assert both.price(llm("gpt-4o", "openai", **tokens)).cost_usd == Decimal(1)


def test_override_covers_says_which_models_an_override_prices() -> None:
    from tenantscope.pricing.pricer import override_covers

    rule = override(model="claude-sonnet-4-5", provider="anthropic", id=3)
    assert override_covers(rule, "anthropic", "claude-sonnet-4-5-20250929")
    assert not override_covers(rule, "aws", "claude-sonnet-4-5-20250929")
    assert not override_covers(rule, "anthropic", "claude-haiku-4-5")
