"""Test helpers shipped with tenantscope (need the ``server`` extra: Starlette and uvicorn).

- :class:`~tenantscope.testing.fake_provider.FakeProvider`: a local fake LLM provider
  speaking the OpenAI and Anthropic wire formats, for tests, examples and benchmarks.

Not imported by ``import tenantscope``.
"""

from __future__ import annotations

from tenantscope.testing.fake_provider import FakeProvider, FakeUsage, RecordedRequest

__all__ = ["FakeProvider", "FakeUsage", "RecordedRequest"]
