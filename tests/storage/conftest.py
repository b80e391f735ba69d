"""Storage test setup.

The contract modules are not ``test_*.py`` files, so pytest would not rewrite their asserts
(and failures would show no values) unless told to before they are imported.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite(
    "tests.storage.contract_events",
    "tests.storage.contract_config",
    "tests.storage.contract_audit",
    "tests.storage.contract_plans",
)
