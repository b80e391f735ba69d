"""Record <-> Arrow conversion keeps attribute values orjson alone could not carry."""

from __future__ import annotations

from tenantscope.records import UsageRecord
from tenantscope.storage.serialize import arrow_to_records, records_to_arrow


def test_attributes_round_trip_including_huge_integers_and_unicode() -> None:
    attrs = {"big": 2**80, "neg": -(2**70), "text": "naïve ✓ <b>", "nested": {"a": [1, 2.5]}}
    rec = UsageRecord(event_id="e", attributes=attrs, events=[{"name": "x", "n": 2**65}])
    back = arrow_to_records(records_to_arrow([rec]))[0]
    assert back.attributes == attrs
    assert back.events == [{"name": "x", "n": 2**65}]
