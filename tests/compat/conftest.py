"""Compat tests: a fresh SDK per test (no settings leaking in from the machine, no context
left behind, clients uninstrumented), the local fake LLM provider."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import tenantscope
from tenantscope.compat.netra import Netra
from tenantscope.compat.netra._usage import Usage
from tenantscope.testing import FakeProvider

ENV_PREFIXES = ("TENANTSCOPE_", "OTEL_", "NETRA_", "LLMOBSERVE_", "OPENAI_", "ANTHROPIC_")


@pytest.fixture(autouse=True)
def _fresh_sdk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    # the test's own disk spool: spans one test left there never reach another's server
    monkeypatch.setenv("TENANTSCOPE_SPOOL_DIR", str(tmp_path / "spool"))
    yield
    tenantscope.shutdown()
    tenantscope.uninstrument_openai()
    tenantscope.uninstrument_anthropic()
    Netra.usage = Usage()
    # the facades' setters change the test thread's own context, as netra's do: clear it
    for setter in (
        tenantscope.set_tenant_id,
        tenantscope.set_user_id,
        tenantscope.set_session_id,
        tenantscope.set_customer_id,
    ):
        setter(None)
    assert tenantscope.get_context() == {}


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider.running() as provider:
        yield provider
