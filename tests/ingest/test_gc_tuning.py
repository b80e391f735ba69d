"""Decode workers run with the ingest collector settings; the test process keeps its own."""

from __future__ import annotations

import gc

from tenantscope.ingest import gc_tuning
from tenantscope.ingest.pool import DecodePool


def _collector_state() -> tuple[tuple[int, int, int], int]:
    return gc.get_threshold(), gc.get_freeze_count()


def test_decode_workers_tune_their_collector_and_only_theirs() -> None:
    before = gc.get_threshold()
    pool = DecodePool(workers=1)
    try:
        assert pool._executor is not None
        threshold, frozen = pool._executor.submit(_collector_state).result(timeout=60)
    finally:
        pool.close()
    assert threshold == gc_tuning.THRESHOLD
    assert frozen > 10_000  # the modules and the price catalog, out of every collection
    assert gc.get_threshold() == before
