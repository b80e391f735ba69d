"""Golden costs: each checked to 1e-9 USD against a hand calculation from published prices.

Published per-MTok prices are written out as literals below, and each test also asserts the
catalog still carries exactly those prices, so a data change fails loudly here instead of
silently moving the expected figures.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from genai_prices import Usage, calc_price, extract_usage

from tenantscope.pricing.catalog import catalog_price, catalog_version
from tenantscope.pricing.pricer import Pricer
from tenantscope.records import UsageRecord
from tenantscope.storage.base import PriceOverride

MTOK = Decimal(1_000_000)
TOLERANCE = Decimal("1e-9")
WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


def llm(model: str, provider: str = "", *, at: datetime = WHEN, **tokens: Any) -> UsageRecord:
    return UsageRecord(
        event_id="e1", kind="llm", provider=provider, model=model, start_time=at, **tokens
    )


def assert_close(actual: Decimal | None, expected: Decimal) -> None:
    assert actual is not None
    assert abs(actual - expected) <= TOLERANCE, (actual, expected)


# --- 1. OpenAI: cached input + reasoning output ---------------------------------------------

# gpt-4o: $2.50 input / $1.25 cached input / $10.00 output per MTok (openai.com/api/pricing)
GPT4O_IN, GPT4O_CACHED, GPT4O_OUT = Decimal("2.50"), Decimal("1.25"), Decimal("10.00")
# o4-mini: $1.10 input / $0.275 cached input / $4.40 output per MTok
O4MINI_IN, O4MINI_CACHED, O4MINI_OUT = Decimal("1.10"), Decimal("0.275"), Decimal("4.40")


def test_openai_cached_and_reasoning_tokens() -> None:
    price = catalog_price("openai", "gpt-4o", WHEN)
    assert price is not None
    assert (price.input_mtok, price.cache_read_mtok, price.output_mtok) == (
        GPT4O_IN,
        GPT4O_CACHED,
        GPT4O_OUT,
    )
    # input 10,000 of which 4,000 cached; output 2,000 of which 1,500 reasoning.
    # Reasoning tokens are output tokens (billed at the output rate, already inside 2,000).
    record = llm(
        "gpt-4o",
        "openai",
        input_tokens=10_000,
        cache_read_tokens=4_000,
        output_tokens=2_000,
        reasoning_tokens=1_500,
    )
    # 6,000 x 2.50 + 4,000 x 1.25 + 2,000 x 10 = 15,000 + 5,000 + 20,000 = 40,000 / 1e6
    expected = (6_000 * GPT4O_IN + 4_000 * GPT4O_CACHED + 2_000 * GPT4O_OUT) / MTOK
    assert expected == Decimal("0.04")
    result = Pricer().price(record)
    assert result.cost_source == "catalog"
    assert result.price_version == catalog_version()
    assert_close(result.cost_usd, expected)


def test_openai_reasoning_model_o4_mini() -> None:
    price = catalog_price(None, "o4-mini-2025-04-16", WHEN)
    assert price is not None and price.provider == "openai"
    assert (price.input_mtok, price.cache_read_mtok, price.output_mtok) == (
        O4MINI_IN,
        O4MINI_CACHED,
        O4MINI_OUT,
    )
    record = llm(
        "o4-mini-2025-04-16",
        input_tokens=10_000,
        cache_read_tokens=4_000,
        output_tokens=2_000,
        reasoning_tokens=1_500,
    )
    # 6,000 x 1.10 + 4,000 x 0.275 + 2,000 x 4.40 = 6,600 + 1,100 + 8,800 = 16,500 / 1e6
    expected = (6_000 * O4MINI_IN + 4_000 * O4MINI_CACHED + 2_000 * O4MINI_OUT) / MTOK
    assert expected == Decimal("0.0165")
    assert_close(Pricer().price(record).cost_usd, expected)
    # genai-prices itself, fed OpenAI's own convention (completion_tokens incl. reasoning),
    # agrees: output tokens include reasoning there too.
    usage = Usage(
        input_tokens=10_000,
        cache_read_tokens=4_000,
        output_tokens=2_000,
        output_reasoning_tokens=1_500,
    )
    total = calc_price(
        usage, "o4-mini-2025-04-16", provider_id="openai", genai_request_timestamp=WHEN
    )
    assert_close(total.total_price, expected)


# --- 2. Anthropic: cache read + cache write, non-streaming and streaming shapes ---------------

# claude-3-5-sonnet: $3 input / $0.30 cache read / $3.75 cache write (5 min) / $15 output per MTok
SONNET_IN, SONNET_READ = Decimal("3"), Decimal("0.30")
SONNET_WRITE, SONNET_OUT = Decimal("3.75"), Decimal("15")

# Anthropic's Messages API: input_tokens EXCLUDES cache reads and writes (they are additive).
RESPONSE_USAGE: dict[str, int] = {
    "input_tokens": 1_200,
    "cache_creation_input_tokens": 2_000,
    "cache_read_input_tokens": 30_000,
    "output_tokens": 800,
}
NON_STREAMING: dict[str, Any] = {
    "id": "msg_01",
    "type": "message",
    "model": "claude-3-5-sonnet-20241022",
    "usage": RESPONSE_USAGE,
}
# Streaming: message_start carries the input side (its output_tokens is a placeholder),
# the final message_delta carries the cumulative output_tokens.
MESSAGE_START_USAGE: dict[str, int] = {**RESPONSE_USAGE, "output_tokens": 1}
MESSAGE_DELTA_USAGE: dict[str, int] = {"output_tokens": 800}


def normalised_anthropic(usage: dict[str, int], output_tokens: int) -> UsageRecord:
    """What ingest stores: OTel convention, input includes cache reads and writes."""
    read = usage.get("cache_read_input_tokens", 0)
    write = usage.get("cache_creation_input_tokens", 0)
    return llm(
        "claude-3-5-sonnet-20241022",
        "anthropic",
        input_tokens=usage["input_tokens"] + read + write,
        cache_read_tokens=read,
        cache_write_tokens=write,
        output_tokens=output_tokens,
    )


# 1,200 x 3 + 30,000 x 0.30 + 2,000 x 3.75 + 800 x 15 = 3,600 + 9,000 + 7,500 + 12,000
ANTHROPIC_EXPECTED = (
    1_200 * SONNET_IN + 30_000 * SONNET_READ + 2_000 * SONNET_WRITE + 800 * SONNET_OUT
) / MTOK


def test_anthropic_catalog_prices() -> None:
    assert ANTHROPIC_EXPECTED == Decimal("0.0321")
    for model in ("claude-3-5-sonnet-20241022", "claude-sonnet-4-20250514"):
        price = catalog_price("anthropic", model, WHEN)
        assert price is not None
        assert (
            price.input_mtok,
            price.cache_read_mtok,
            price.cache_write_mtok,
            price.output_mtok,
        ) == (SONNET_IN, SONNET_READ, SONNET_WRITE, SONNET_OUT)


def test_anthropic_non_streaming_shape() -> None:
    record = normalised_anthropic(RESPONSE_USAGE, RESPONSE_USAGE["output_tokens"])
    assert record.input_tokens == 33_200
    # genai-prices' own Anthropic extractor counts cache tokens inside input_tokens as well,
    # so the normalised record and genai-prices agree on what "input" means.
    extracted = extract_usage(NON_STREAMING, provider_id="anthropic")
    assert extracted.usage.input_tokens == record.input_tokens
    assert extracted.usage.cache_read_tokens == record.cache_read_tokens
    assert extracted.usage.cache_write_tokens == record.cache_write_tokens
    result = Pricer().price(record)
    assert result.cost_source == "catalog"
    assert_close(result.cost_usd, ANTHROPIC_EXPECTED)
    assert_close(extracted.calc_price(genai_request_timestamp=WHEN).total_price, ANTHROPIC_EXPECTED)


def test_anthropic_streaming_shape() -> None:
    record = normalised_anthropic(MESSAGE_START_USAGE, MESSAGE_DELTA_USAGE["output_tokens"])
    non_streaming = normalised_anthropic(RESPONSE_USAGE, RESPONSE_USAGE["output_tokens"])
    assert (record.input_tokens, record.output_tokens) == (33_200, 800)
    token_fields = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
    for name in token_fields:
        assert getattr(record, name) == getattr(non_streaming, name)
    assert_close(Pricer().price(record).cost_usd, ANTHROPIC_EXPECTED)


def test_anthropic_sonnet_4_same_rates() -> None:
    record = llm(
        "claude-sonnet-4-20250514",
        "anthropic",
        at=utc(2025, 8, 1),
        input_tokens=33_200,
        cache_read_tokens=30_000,
        cache_write_tokens=2_000,
        output_tokens=800,
    )
    assert_close(Pricer().price(record).cost_usd, ANTHROPIC_EXPECTED)


# --- 3. Gemini long-context tiers ---------------------------------------------------------------

# gemini-1.5-pro: prompts <= 128k: $1.25 in / $5 out; > 128k: $2.50 in / $10 out (whole prompt)
G15_IN, G15_OUT, G15_IN_LONG, G15_OUT_LONG = (
    Decimal("1.25"),
    Decimal("5"),
    Decimal("2.50"),
    Decimal("10"),
)
# gemini-2.5-pro: prompts <= 200k: $1.25 in / $0.125 cached / $10 out;
#                 > 200k: $2.50 in / $0.25 cached / $15 out
G25 = {"in": Decimal("1.25"), "cached": Decimal("0.125"), "out": Decimal("10")}
G25_LONG = {"in": Decimal("2.50"), "cached": Decimal("0.25"), "out": Decimal("15")}


def test_gemini_15_pro_tier_boundary() -> None:
    price = catalog_price("google", "gemini-1.5-pro", WHEN)
    assert price is not None and price.tiered
    assert (price.input_mtok, price.output_mtok) == (G15_IN, G15_OUT)
    pricer = Pricer()
    at_threshold = llm("gemini-1.5-pro", "gcp.gemini", input_tokens=128_000, output_tokens=1_000)
    # exactly 128,000 is not above the threshold: 128,000 x 1.25 + 1,000 x 5 = 165,000 / 1e6
    expected_low = (128_000 * G15_IN + 1_000 * G15_OUT) / MTOK
    assert expected_low == Decimal("0.165")
    assert_close(pricer.price(at_threshold).cost_usd, expected_low)
    above = llm("gemini-1.5-pro", "gcp.gemini", input_tokens=128_001, output_tokens=1_000)
    # the whole prompt moves to the long tier: 128,001 x 2.50 + 1,000 x 10 = 330,002.5 / 1e6
    expected_high = (128_001 * G15_IN_LONG + 1_000 * G15_OUT_LONG) / MTOK
    assert expected_high == Decimal("0.3300025")
    assert_close(pricer.price(above).cost_usd, expected_high)


def test_gemini_25_pro_tiers_count_cached_tokens() -> None:
    price = catalog_price("google", "gemini-2.5-pro", WHEN)
    assert price is not None and price.tiered
    assert (price.input_mtok, price.cache_read_mtok, price.output_mtok) == (
        G25["in"],
        G25["cached"],
        G25["out"],
    )
    pricer = Pricer()
    cases = [
        # (input incl. cached, cached, output, hand calculation, literal)
        (
            150_000,
            50_000,
            4_000,
            (100_000 * G25["in"] + 50_000 * G25["cached"] + 4_000 * G25["out"]) / MTOK,
            Decimal("0.17125"),
        ),
        (
            250_000,
            50_000,
            4_000,
            (200_000 * G25_LONG["in"] + 50_000 * G25_LONG["cached"] + 4_000 * G25_LONG["out"])
            / MTOK,
            Decimal("0.5725"),
        ),
        # only 190,000 uncached, but the prompt is 210,000 tokens: the long tier applies.
        (
            210_000,
            20_000,
            1_000,
            (190_000 * G25_LONG["in"] + 20_000 * G25_LONG["cached"] + 1_000 * G25_LONG["out"])
            / MTOK,
            Decimal("0.495"),
        ),
    ]
    for inp, cached, out, expected, literal in cases:
        assert expected == literal
        record = llm(
            "gemini-2.5-pro",
            "google",
            input_tokens=inp,
            cache_read_tokens=cached,
            output_tokens=out,
        )
        assert_close(pricer.price(record).cost_usd, expected)
        reference = calc_price(
            Usage(input_tokens=inp, cache_read_tokens=cached, output_tokens=out),
            "gemini-2.5-pro",
            provider_id="google",
            genai_request_timestamp=WHEN,
        )
        assert_close(reference.total_price, expected)


# --- 4. Operator override with effective dates --------------------------------------------------


def test_override_effective_dates_later_wins() -> None:
    overrides = [
        # negotiated gpt-4o rate from 2025-01-01: $2.00 in / $8.00 out, cached unset (catalog)
        PriceOverride(
            model="gpt-4o",
            provider="openai",
            effective_from=utc(2025, 1, 1),
            input_mtok=Decimal("2.00"),
            output_mtok=Decimal("8.00"),
            id=1,
        ),
        # renegotiated from 2025-06-01: $1.80 in / $0.90 cached / $7.20 out
        PriceOverride(
            model="gpt-4o",
            effective_from=utc(2025, 6, 1),
            input_mtok=Decimal("1.80"),
            cache_read_mtok=Decimal("0.90"),
            output_mtok=Decimal("7.20"),
            id=2,
        ),
    ]
    pricer = Pricer(overrides)
    tokens = {"input_tokens": 10_000, "cache_read_tokens": 4_000, "output_tokens": 2_000}

    before = pricer.price(llm("gpt-4o", "openai", at=utc(2024, 12, 31, 23, 59), **tokens))
    assert before.cost_source == "catalog"
    assert_close(before.cost_usd, Decimal("0.04"))  # the catalog figure of test 1

    first = pricer.price(llm("gpt-4o", "openai", at=utc(2025, 3, 1), **tokens))
    # 6,000 x 2.00 + 4,000 x 1.25 (catalog cached) + 2,000 x 8.00 = 12,000 + 5,000 + 16,000
    expected_first = 6_000 * Decimal("2.00") + 4_000 * GPT4O_CACHED + 2_000 * Decimal("8.00")
    assert expected_first / MTOK == Decimal("0.033")
    assert first.cost_source == "override"
    assert first.price_version == "override:1"
    assert_close(first.cost_usd, expected_first / MTOK)

    second = pricer.price(llm("GPT-4o", "openai", at=utc(2025, 7, 1), **tokens))
    # 6,000 x 1.80 + 4,000 x 0.90 + 2,000 x 7.20 = 10,800 + 3,600 + 14,400 = 28,800 / 1e6
    assert second.cost_source == "override"
    assert second.price_version == "override:2"
    assert_close(second.cost_usd, Decimal("0.0288"))


# --- 5. Unknown model -------------------------------------------------------------------------


def test_unknown_model_keeps_tokens_and_has_no_cost() -> None:
    record = llm(
        "acme-inhouse-llm-7b",
        "acme",
        input_tokens=1_234,
        cache_read_tokens=34,
        output_tokens=567,
        reasoning_tokens=7,
    )
    Pricer().apply(record)
    assert record.cost_usd is None
    assert record.cost_source == "unknown"
    assert record.price_version == ""
    assert (record.input_tokens, record.cache_read_tokens) == (1_234, 34)
    assert (record.output_tokens, record.reasoning_tokens) == (567, 7)


# --- 6. A reported cost wins --------------------------------------------------------------------


def test_reported_cost_wins_over_catalog_and_override() -> None:
    record = llm(
        "gpt-4o",
        "openai",
        input_tokens=10_000,
        output_tokens=2_000,
        cost_usd=Decimal("0.123456789"),
        cost_source="reported",
    )
    override = PriceOverride(model="gpt-4o", effective_from=utc(2020, 1, 1), input_mtok=Decimal(1))
    for pricer in (Pricer(), Pricer([override])):
        result = pricer.price(record)
        assert result.cost_source == "reported"
        assert result.price_version == ""
        assert_close(result.cost_usd, Decimal("0.123456789"))
    Pricer().apply(record)
    assert record.cost_usd == Decimal("0.123456789")
    assert record.cost_source == "reported"
