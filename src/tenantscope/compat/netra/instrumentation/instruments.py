"""``InstrumentSet``, importable from the path netra's cookbook uses::

    from tenantscope.compat.netra.instrumentation.instruments import InstrumentSet

Only the libraries tenantscope instruments itself are members. Any other OpenTelemetry
instrumentation the app sets up on the same tracer provider still gets the tenant context
stamped on its spans.
"""

from __future__ import annotations

from enum import Enum


class InstrumentSet(Enum):
    """The client libraries ``Netra.init(instruments=...)`` can trace (netra's values)."""

    ALL = "__all__"
    ANTHROPIC = "anthropic"
    OPENAI = "openai"


# newer netra releases export the same enum under this name
NetraInstruments = InstrumentSet
