"""The limiter over real stores, with its clocks in the test's hands: decisions,
reservations settled by stored records, expiry, period resets across month ends and time
zones, soft thresholds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from tenantscope import semconv
from tenantscope.errors import NotFound
from tenantscope.limits.definitions import check_limit
from tenantscope.limits.figures import Call
from tenantscope.limits.limiter import Limiter
from tenantscope.query.params import TimeRange
from tenantscope.query.scope import Scope
from tenantscope.records import UsageRecord
from tenantscope.server.services import Services
from tests.conftest import make_settings


class Clocks:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.mono = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    s = Services.open(make_settings(tmp_path / "data", ingest_workers=0, alerts=False))
    s.limiter.stop()  # the tests drive their own limiter with their own clocks
    try:
        yield s
    finally:
        s.close()


def limiter_of(svc: Services, clocks: Clocks, **kw: object) -> Limiter:
    lim = Limiter(
        svc.events,
        svc.config,
        svc.writer,
        svc.price,
        clock=clocks.wall,
        monotonic=clocks.monotonic,
        **kw,  # type: ignore[arg-type]
    )
    svc.writer.on_stored = lim.on_stored
    return lim


def add(svc: Services, **fields: object) -> None:
    svc.config.limits.add_limit(check_limit(fields))


def record_of(lim: Limiter, rid: str, cost: str, at: datetime, status: str = "ok") -> UsageRecord:
    r = lim.reservation(rid)
    assert r is not None
    return UsageRecord(
        event_id=f"call-{rid}",
        trace_id=rid,
        span_id="s",
        kind="llm",
        tenant_id=r.tenant_id,
        feature=r.feature,
        model="gpt-4o-mini",
        input_tokens=10,
        output_tokens=5,
        cost_usd=Decimal(cost),
        cost_source="reported",
        start_time=at,
        end_time=at,
        status=status,  # type: ignore[arg-type]
        attributes={semconv.RESERVATION_ID: rid},
    )


def call(tenant: str, cost: str = "0.10", **kw: object) -> Call:
    return Call(tenant_id=tenant, model="gpt-4o-mini", estimated_cost_usd=Decimal(cost), **kw)  # type: ignore[arg-type]


NOW = datetime(2026, 12, 3, 12, tzinfo=timezone.utc)


def test_rate_limit_counts_a_sliding_minute_and_says_when_to_retry(svc: Services) -> None:
    add(svc, name="starter", kind="rate", tier="starter", requests_per_minute=10)
    svc.config.set_tenant("s", tier="starter")
    clocks = Clocks(NOW)
    lim = limiter_of(svc, clocks)
    for i in range(10):
        assert lim.check(call("s")).allowed, i
        clocks.advance(1)
    refused = lim.check(call("s"))
    assert not refused.allowed
    assert refused.decided_by is not None and refused.decided_by.ref == "L1"
    assert refused.retry_after == 50  # the first call leaves the window 60 s after it
    assert "10 requests/min" in refused.message and "retry in 50 s" in refused.message
    clocks.advance(49.9)
    assert not lim.check(call("s")).allowed
    clocks.advance(0.1)
    assert lim.check(call("s")).allowed
    # a call that never happened gives its place back
    clocks.advance(5)
    held = [d for d in (lim.check(call("s")) for _ in range(10)) if d.allowed]
    assert held and not lim.check(call("s")).allowed
    assert held[-1].reservation is not None and lim.release(held[-1].reservation.id)
    assert lim.check(call("s")).allowed
    assert not lim.check(call("s")).allowed
    # one that ran (nothing will report it) keeps its place
    clocks.advance(61)
    ran = [d for d in (lim.check(call("s")) for _ in range(10)) if d.allowed]
    assert ran[-1].reservation is not None
    assert lim.release(ran[-1].reservation.id, happened=True)
    assert not lim.check(call("s")).allowed
    # a tenant of no tier has no limit here
    assert all(lim.check(call("other")).allowed for _ in range(30))


def test_tokens_per_minute_per_feature_and_release_returns_the_tokens(svc: Services) -> None:
    add(svc, name="export", kind="rate", per="feature", subject="export", tokens_per_minute=1000)
    lim = limiter_of(svc, Clocks(NOW))
    a = lim.check(Call("t", feature="export", input_tokens=300, max_tokens=300))
    assert a.allowed and a.reservation is not None
    b = lim.check(Call("t", feature="export", input_tokens=300, max_tokens=300))
    assert not b.allowed and b.decided_by is not None
    assert b.decided_by.measure == "tokens_per_minute" and b.decided_by.remaining == 400
    # other features, other tenants: their own counters
    assert lim.check(Call("t", feature="chat", input_tokens=900, max_tokens=900)).allowed
    assert lim.check(Call("u", feature="export", input_tokens=300, max_tokens=300)).allowed
    assert lim.release(a.reservation.id)
    assert lim.check(Call("t", feature="export", input_tokens=300, max_tokens=300)).allowed
    # larger than the limit itself: never, so no retry time
    never = lim.check(Call("t", feature="export", input_tokens=2000))
    assert not never.allowed and never.retry_after is None


def test_a_budget_holds_reservations_until_their_records_are_stored(svc: Services) -> None:
    add(svc, name="b", kind="budget", amount_usd="1")
    lim = limiter_of(svc, Clocks(NOW))
    held = [lim.check(call("t", "0.30")) for _ in range(4)]
    assert [d.allowed for d in held] == [True, True, True, False]
    refused = held[3]
    assert refused.retry_after == 1  # only calls in flight stand in the way
    # the calls cost less than reserved: their records settle them at the real cost
    svc.writer.write_sync([record_of(lim, d.reservation.id, "0.05", NOW) for d in held[:3]])  # type: ignore[union-attr]
    assert lim.ledger.reservations == {} and lim.ledger.held == {}
    status = lim.status(["t"])["t"][0]
    assert status.used == Decimal("0.15")
    lim.refresh()  # the store's figure now includes them: the settled costs go
    assert lim.ledger.settled == {}
    (budget,) = lim.status(["t"])["t"]
    assert budget.used == Decimal("0.15")
    # 2.5 of December's 31 days passed: a straight line ends at 0.15 * 31 / 2.5
    assert budget.projected == Decimal("1.86") and budget.as_json()["projected"] == "1.86"
    # 0.85 left: two more of 0.30, not three
    assert [lim.check(call("t", "0.30")).allowed for _ in range(3)] == [True, True, False]


def test_the_same_figure_survives_a_restart(svc: Services) -> None:
    add(svc, name="b", kind="budget", amount_usd="1")
    clocks = Clocks(NOW)
    lim = limiter_of(svc, clocks)
    d = lim.check(call("t", "0.60"))
    svc.writer.write_sync([record_of(lim, d.reservation.id, "0.60", NOW)])  # type: ignore[union-attr]
    # a new limiter (a restarted server) reads the month-to-date spend from the store
    again = limiter_of(svc, clocks)
    assert again.status(["t"])["t"][0].used == Decimal("0.60")
    assert not again.check(call("t", "0.50")).allowed
    assert again.check(call("t", "0.40")).allowed


def test_failed_calls_are_settled_at_their_real_cost(svc: Services) -> None:
    add(svc, name="b", kind="budget", amount_usd="1")
    lim = limiter_of(svc, Clocks(NOW))
    d = lim.check(call("t", "0.50"))
    svc.writer.write_sync([record_of(lim, d.reservation.id, "0.20", NOW, status="error")])  # type: ignore[union-attr]
    assert lim.status(["t"])["t"][0].used == Decimal("0.20")


def test_expired_reservations_release_their_hold(svc: Services) -> None:
    add(svc, name="b", kind="budget", amount_usd="1")
    clocks = Clocks(NOW)
    lim = limiter_of(svc, clocks)
    assert lim.check(call("t", "0.90", ttl_s=30)).allowed
    assert not lim.check(call("t", "0.20")).allowed
    clocks.advance(31)
    assert lim.expire() == 1
    assert lim.ledger.held == {}
    assert lim.check(call("t", "0.20")).allowed


def test_extend_holds_more_until_the_cap(svc: Services) -> None:
    add(svc, name="b", kind="budget", amount_usd="0.001")
    lim = limiter_of(svc, Clocks(NOW))
    # gpt-4o-mini: $0.15 / $0.60 per million input / output tokens
    d = lim.check(Call("t", model="gpt-4o-mini", input_tokens=100, max_tokens=None))
    assert d.allowed and d.reservation is not None
    assert d.reservation.output_tokens == lim.default_output_tokens
    assert lim.extend(d.reservation.id, 200).allowed
    assert d.reservation.output_tokens == lim.default_output_tokens + 200
    refused = lim.extend(d.reservation.id, 10_000)
    assert not refused.allowed and "stream may not go on" in refused.message
    with pytest.raises(NotFound):
        lim.extend("r_nope", 10)


@pytest.mark.parametrize(
    ("tz", "boundary"),
    [
        ("UTC", datetime(2027, 1, 1, tzinfo=timezone.utc)),
        ("Europe/Berlin", datetime(2026, 12, 31, 23, tzinfo=timezone.utc)),
        ("America/Los_Angeles", datetime(2027, 1, 1, 8, tzinfo=timezone.utc)),
    ],
)
def test_the_budget_resets_exactly_at_the_period_boundary(
    svc: Services, tz: str, boundary: datetime
) -> None:
    add(svc, name="b", kind="budget", amount_usd="1", timezone=tz)
    clocks = Clocks(boundary - timedelta(seconds=5))
    lim = limiter_of(svc, clocks)
    spent = lim.check(call("t", "0.70"))
    svc.writer.write_sync([record_of(lim, spent.reservation.id, "0.70", clocks.now)])  # type: ignore[union-attr]
    in_flight = lim.check(call("t", "0.25"))  # reserved in the old period, not yet settled
    assert in_flight.allowed
    assert not lim.check(call("t", "0.10")).allowed
    clocks.advance(4.999)  # a millisecond before the boundary: still the old period
    assert not lim.check(call("t", "0.10")).allowed
    clocks.advance(0.001)  # the boundary: a new period, neither spend nor stale holds count
    fresh = lim.check(call("t", "0.95"))
    assert fresh.allowed and fresh.decided_by is not None
    assert fresh.decided_by.period_start == boundary
    # the old period's call settles late: it leaks nothing into either period
    late = record_of(lim, in_flight.reservation.id, "0.20", boundary - timedelta(seconds=1))  # type: ignore[union-attr]
    svc.writer.write_sync([late])
    lim.refresh()
    keys = set(lim.ledger.held) | set(lim.ledger.settled)
    assert all(k[3] == boundary for k in keys), keys
    assert lim.status(["t"])["t"][0].used == Decimal("0.95")
    assert not lim.check(call("t", "0.10")).allowed


def test_a_soft_budget_warns_and_never_blocks(svc: Services) -> None:
    add(svc, name="soft", kind="budget", amount_usd="1", mode="soft", thresholds="80,100")
    seen: list[tuple[str, int]] = []
    lim = limiter_of(
        svc, Clocks(NOW), on_notice=lambda eff, t, s, start, th, spent, cap: seen.append((t, th))
    )
    for _ in range(3):
        d = lim.check(call("t", "0.45"))
        assert d.allowed
        svc.writer.write_sync([record_of(lim, d.reservation.id, "0.45", NOW)])  # type: ignore[union-attr]
    assert d.warnings and "soft budget" in d.warnings[0]
    lim.notice_thresholds(NOW)
    assert sorted(seen) == [("t", 80), ("t", 100)]


def test_blocked_calls_are_recorded_through_ingest(svc: Services) -> None:
    add(svc, name="tiny", kind="rate", requests_per_minute=1)
    lim = limiter_of(svc, Clocks(NOW))
    assert lim.check(call("t")).allowed
    assert not lim.check(call("t", feature="search")).allowed  # type: ignore[arg-type]
    assert lim.flush_blocked() == 1  # the background round does this each second
    hour = TimeRange(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    deadline = time.monotonic() + 10
    while not (blocks := svc.queries.windows.blocks(Scope.all(), hour)):
        assert time.monotonic() < deadline, "the blocked record was not stored"
        time.sleep(0.05)
    assert blocks == {"t": {"L1": 1}}
    # never counted as a call, never billed
    assert svc.queries.windows.cost_by_tenant(Scope.all(), hour).get("t", 0) == 0


def test_concurrent_checks_never_take_more_than_the_cap(svc: Services) -> None:
    """64 threads race for a $1 budget of $0.01 calls: exactly 100 get through."""
    add(svc, name="b", kind="budget", amount_usd="1")
    lim = limiter_of(svc, Clocks(NOW))
    allowed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(64)

    def caller() -> None:
        start.wait()
        while True:
            d = lim.check(call("t", "0.01"))
            if not d.allowed:
                return
            with lock:
                allowed.append(d.reservation.id)  # type: ignore[union-attr]

    threads = [threading.Thread(target=caller) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 100
