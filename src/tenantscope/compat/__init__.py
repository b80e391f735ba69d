"""Drop-in facades for the seeds' SDKs, over tenantscope's own SDK.

Code written for another SDK ports by changing its import line (and pointing it at a
tenantscope server); what runs underneath is ``tenantscope.init``, the tenant context and
the OpenAI/Anthropic instrumentation:

- ``tenantscope.compat.netra``: ``Netra``, ``SpanType``, ``UsageModel``, ``InstrumentSet``
  (the seeds' multi-tenant cookbook runs unchanged);
- ``tenantscope.compat.llmobserve``: ``observe`` and ``set_customer_id``.

Like the rest of the SDK they need no server dependency. docs/sdk.md lists what each
supports and what it does not.
"""
