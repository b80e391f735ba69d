from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage, calc_price, data_snapshot, update_prices
from genai_prices import types as gp

from tenantscope.pricing import catalog
from tenantscope.pricing.catalog import (
    canonical_provider,
    catalog_price,
    catalog_version,
    infer_provider,
)
from tenantscope.pricing.pricer import Pricer
from tenantscope.records import UsageRecord

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_catalog_version_names_the_package_data() -> None:
    assert catalog_version() == f"genai-prices {genai_prices.__version__}"


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"),
        ("gpt-4o-mini-2024-07-18", "openai"),
        ("o3-mini", "openai"),
        ("claude-3-5-sonnet-20241022", "anthropic"),
        ("Claude-Sonnet-4-20250514", "anthropic"),
        ("gemini-1.5-pro", "google"),
        ("gemini-2.5-flash", "google"),
        ("deepseek-chat", "deepseek"),
        ("mistral-large-latest", "mistral"),
        ("grok-3", "x-ai"),
        ("acme-inhouse-7b", None),
        ("", None),
    ],
)
def test_infer_provider(model: str, provider: str | None) -> None:
    assert infer_provider(model) == provider


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("openai", "openai"),
        ("OpenAI", "openai"),
        ("anthropic", "anthropic"),
        ("gcp.gemini", "google"),
        ("gcp.vertex_ai", "google"),
        ("aws.bedrock", "aws"),
        ("azure.ai.openai", "azure"),
        ("x_ai", "x-ai"),
        ("mistral_ai", "mistral"),
        ("vllm", None),
        ("", None),
    ],
)
def test_canonical_provider(name: str, expected: str | None) -> None:
    assert canonical_provider(name) == expected


def test_catalog_price_resolves_aliases_to_the_catalog_model() -> None:
    price = catalog_price(None, "claude-3-5-sonnet-20241022", WHEN)
    assert price is not None
    assert (price.provider, price.model) == ("anthropic", "claude-3-5-sonnet")
    assert price.tiered is False
    assert catalog_price("acme", "acme-inhouse-7b", WHEN) is None
    assert catalog_price(None, "", WHEN) is None


def test_catalog_price_with_otel_provider_names() -> None:
    vertex = catalog_price("gcp.vertex_ai", "gemini-1.5-pro", WHEN)
    assert vertex is not None and vertex.provider == "google" and vertex.tiered
    assert vertex.input_mtok == Decimal("1.25")  # base tier


def test_gateway_provider_falls_back_to_the_model_name() -> None:
    # The openai client against an OpenAI-compatible gateway reports gen_ai.system=openai.
    via_gateway = catalog_price("openai", "claude-3-5-sonnet-20241022", WHEN)
    direct = catalog_price("anthropic", "claude-3-5-sonnet-20241022", WHEN)
    assert via_gateway is not None and via_gateway == direct
    litellm = catalog_price("litellm", "anthropic/claude-3-5-sonnet-20241022", WHEN)
    assert litellm == direct


def test_price_history_o3_cut_on_2025_06_10() -> None:
    # o3 was $10 in / $40 out per MTok until OpenAI cut it to $2 / $8 on 2025-06-10.
    before = catalog_price("openai", "o3", datetime(2025, 6, 9, 23, 59, tzinfo=timezone.utc))
    after = catalog_price("openai", "o3", datetime(2025, 6, 10, 0, 0, tzinfo=timezone.utc))
    assert before is not None and after is not None
    assert (before.input_mtok, before.output_mtok) == (Decimal("10"), Decimal("40"))
    assert (after.input_mtok, after.output_mtok) == (Decimal("2"), Decimal("8"))
    # 01:00 at UTC+2 is still 2025-06-09 in UTC: the old price.
    local = datetime(2025, 6, 10, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert catalog_price("openai", "o3", local) == before


def test_pricer_uses_the_call_timestamp() -> None:
    pricer = Pricer()

    def cost(at: datetime) -> Decimal | None:
        record = UsageRecord(
            event_id="e1",
            kind="llm",
            provider="openai",
            model="o3",
            input_tokens=1_000,
            output_tokens=1_000,
            start_time=at,
        )
        return pricer.price(record).cost_usd

    # 1,000 x 10 + 1,000 x 40 = 50,000 / 1e6 before; 1,000 x 2 + 1,000 x 8 = 10,000 / 1e6 after
    assert cost(datetime(2025, 6, 9, 12, tzinfo=timezone.utc)) == Decimal("0.05")
    assert cost(datetime(2025, 6, 10, 12, tzinfo=timezone.utc)) == Decimal("0.01")
    # naive timestamps are taken as UTC
    assert cost(datetime(2025, 6, 9, 23, 59)) == Decimal("0.05")


def test_time_of_day_prices_are_not_cached_per_day() -> None:
    model = next(
        m
        for p in catalog._providers()
        if p.id == "deepseek"
        for m in p.models
        if m.id == "deepseek-chat"
    )
    assert isinstance(model.prices, list)
    day = datetime(2025, 3, 1, tzinfo=timezone.utc)
    seen = set()
    for hour in (2, 12, 20):
        at = day + timedelta(hours=hour)
        price = catalog_price("deepseek", "deepseek-chat", at)
        assert price is not None
        expected = model.get_prices(at)
        assert price.input_mtok == expected.input_mtok
        assert price.output_mtok == expected.output_mtok
        seen.add(price.input_mtok)
    assert len(seen) == 2  # peak and off-peak within one UTC day


def test_never_uses_a_fetched_snapshot_nor_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("pricing tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    catalog._resolve.cache_clear()
    # What genai-prices' UpdatePrices would install after fetching: a different gpt-4o price.
    fetched = data_snapshot.DataSnapshot(
        providers=[
            gp.Provider(
                id="openai",
                name="OpenAI",
                api_pattern="https://api\\.openai\\.com",
                model_match=gp.ClauseStartsWith(starts_with="gpt-"),
                models=[
                    gp.ModelInfo(
                        id="gpt-4o",
                        match=gp.ClauseEquals(equals="gpt-4o"),
                        prices=gp.ModelPrice(input_mtok=Decimal(999), output_mtok=Decimal(999)),
                    )
                ],
            )
        ],
        from_auto_update=True,
    )
    record = UsageRecord(
        event_id="e1",
        kind="llm",
        provider="openai",
        model="gpt-4o",
        input_tokens=1_000_000,
        start_time=WHEN,
    )
    data_snapshot.set_custom_snapshot(fetched)
    try:
        fetched_total = calc_price(Usage(input_tokens=1_000_000), "gpt-4o", provider_id="openai")
        assert fetched_total.total_price == Decimal(999)  # genai-prices itself switched
        assert Pricer().price(record).cost_usd == Decimal("2.5")  # we did not
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert update_prices._shared_updater.thread is None  # no background updater running
