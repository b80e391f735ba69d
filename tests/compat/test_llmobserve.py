"""The llmobserve facade: ``observe(collector_url=, tenant_id=, api_key=)`` and
``set_customer_id`` against a real tenantscope server, with the real ``openai`` client and
the local fake provider."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Any

import openai
import pytest

import tenantscope.compat.llmobserve as llmobserve
from tenantscope import get_context, semconv
from tenantscope.compat.llmobserve import set_customer_id
from tenantscope.sdk import current_config
from tenantscope.testing import FakeProvider
from tests.conftest import RunningServer

MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the meeting."}]
USAGE = {"x-fake-usage": "input=1000,output=200"}
# gpt-4o-mini, per 1M tokens: 1000 input x 0.15 + 200 output x 0.60
CALL_COST = Decimal("0.00015") + Decimal("0.00012")


def customer_of(span: dict[str, Any]) -> str:
    # the SDK sends tenantscope.customer_id; the server keeps it as a column (customer_id)
    # once ingest knows it, else among the span's attributes
    return str(span.get("customer_id") or span["attributes"].get(semconv.CUSTOMER_ID, ""))


def tenantscope_usage(server: RunningServer, tenant_id: str) -> dict[str, Any]:
    body: dict[str, Any] = server.client.get(f"/api/tenants/{tenant_id}/usage").json()
    return body


def test_observe_sets_the_default_tenant_and_customers_are_per_context(
    server: RunningServer, fake: FakeProvider
) -> None:
    llmobserve.observe(
        collector_url=server.url,
        tenant_id="acme_corp",
        api_key=server.admin_key,
    )
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test", default_headers=USAGE)

    def call() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    call()  # no customer yet
    set_customer_id("end_user_42")
    call()
    call()
    # another thread starts from an empty context: the default tenant, no customer
    worker = threading.Thread(target=call)
    worker.start()
    worker.join()
    llmobserve.set_tenant_id("globex_inc")  # a tenant in the context wins over the default
    call()
    llmobserve.set_tenant_id(None)
    assert llmobserve.flush()

    usage = tenantscope_usage(server, "acme_corp")
    assert (usage["request_count"], usage["token_count"]) == (4, 4 * 1200)
    assert Decimal(usage["total_cost"]) == 4 * CALL_COST
    other = tenantscope_usage(server, "globex_inc")
    assert (other["request_count"], Decimal(other["total_cost"])) == (1, CALL_COST)

    customers: list[str] = []
    for tenant in ("acme_corp", "globex_inc"):
        items = server.client.get("/api/traces", params={"tenant_id": tenant}).json()["items"]
        for item in items:
            (span,) = server.client.get(f"/api/traces/{item['trace_id']}").json()["roots"]
            customers.append(f"{span['tenant_id']}/{customer_of(span)}")
    assert sorted(customers) == sorted(
        [
            "acme_corp/",
            "acme_corp/end_user_42",
            "acme_corp/end_user_42",
            "acme_corp/",  # the thread's call
            "globex_inc/end_user_42",
        ]
    )


def test_observe_reads_llmobserve_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOBSERVE_COLLECTOR_URL", "http://collector-env:8000")
    monkeypatch.setenv("LLMOBSERVE_API_KEY", "llmo_sk_env")
    monkeypatch.setenv("LLMOBSERVE_TENANT_ID", "tenant_from_env")
    monkeypatch.setenv("LLMOBSERVE_CUSTOMER_ID", "customer-123")
    monkeypatch.setenv("LLMOBSERVE_FLUSH_INTERVAL_MS", "250")
    llmobserve.observe()
    config = current_config()
    assert config is not None
    assert (config.endpoint, config.api_key) == ("http://collector-env:8000", "llmo_sk_env")
    assert (config.tenant_id, config.export_interval) == ("tenant_from_env", 0.25)
    assert not config.disabled
    assert get_context() == {"customer_id": "customer-123"}  # in the caller's context

    # arguments win over the environment
    llmobserve.observe(collector_url="http://arg:1", tenant_id="t-arg", flush_interval_ms=100)
    config = current_config()
    assert config is not None
    assert (config.endpoint, config.tenant_id, config.export_interval) == (
        "http://arg:1",
        "t-arg",
        0.1,
    )

    monkeypatch.setenv("LLMOBSERVE_DISABLED", "1")
    llmobserve.observe()
    config = current_config()
    assert config is not None and config.disabled


def test_observe_options(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(TypeError, match="nonsense"):
        llmobserve.observe(collector_url="http://127.0.0.1:9", nonsense=1)
    with caplog.at_level(logging.WARNING, logger="tenantscope"):
        llmobserve.observe(
            collector_url="http://127.0.0.1:9",
            proxy_url="http://127.0.0.1:9000",
            auto_start_proxy=False,  # a flag left off asks for nothing
        )
    assert "proxy_url not supported" in caplog.text
    assert "auto_start_proxy" not in caplog.text
