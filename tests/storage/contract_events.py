"""The EventStore contract: every backend must pass these tests.

A backend's test module subclasses ``EventStoreContract`` (named ``Test...``) and provides a
``make_event_store`` fixture: a callable returning a *new handle on the same store*, which
starts empty for each test. Reopening through it is how durability is checked.
"""

from __future__ import annotations

import csv
import random
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tenantscope import errors
from tenantscope.records import RECORD_FIELDS, UsageRecord
from tenantscope.storage.base import EventStore

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)

MakeStore = Callable[[], EventStore]


def make_record(i: int, **changes: Any) -> UsageRecord:
    """A record with every field set to something other than its default."""
    start = T0 + timedelta(seconds=i)
    rec = UsageRecord(
        event_id=f"trace{i // 3:04d}:span{i:06d}",
        trace_id=f"trace{i // 3:04d}",
        span_id=f"span{i:06d}",
        parent_span_id=f"span{i - 1:06d}" if i % 3 else "",
        name=f"chat gpt-4o #{i}",
        kind="llm",
        tenant_id=f"tenant-{i % 4}",
        workspace_id="ws-1",
        user_id=f"user-{i % 7}",
        session_id=f"sess-{i % 5}",
        feature="summarise",
        billable_action="meeting.summary",
        customer_visible_label="Meeting summary",
        environment="prod",
        service="api",
        provider="openai",
        model="gpt-4o",
        operation="chat",
        response_id=f"chatcmpl-{i}",
        input_tokens=1000 + i,
        output_tokens=200 + i,
        cache_read_tokens=100,
        cache_write_tokens=50,
        reasoning_tokens=20,
        cost_usd=Decimal("0.004512345678") + Decimal(i).scaleb(-12),
        cost_source="catalog",
        price_version="genai-prices 0.0.30",
        start_time=start,
        end_time=start + timedelta(milliseconds=1500),
        duration_ms=1500.25,
        ttft_ms=310.5,
        status="ok",
        error_type="",
        error_message="",
        billable_state="billable",
        shadowed=False,
        inherited=("tenant_id", "user_id"),
        attributes={"gen_ai.request.temperature": 0.2, "nested": {"k": [1, "two", None]}},
        events=[{"name": "sla-breach", "time_ns": 1, "attributes": {"target_ms": 2000}}],
        source="otlp",
        received_at=start + timedelta(seconds=2),
        customer_id="cust-1",
        usage_convention="otel",
    )
    return rec.replace(**changes) if changes else rec


def make_records(n: int, offset: int = 0) -> list[UsageRecord]:
    return [make_record(offset + i) for i in range(n)]


def _by_event_id(records: list[UsageRecord]) -> dict[str, UsageRecord]:
    return {r.event_id: r for r in records}


def _all(store: EventStore) -> list[UsageRecord]:
    return [
        r
        for batch in store.iter_records(T0 - timedelta(days=3650), T0 + timedelta(days=3650))
        for r in batch
    ]


class EventStoreContract:
    @pytest.fixture
    def event_store(self, make_event_store: MakeStore) -> Iterator[EventStore]:
        store = make_event_store()
        yield store
        store.close()

    # -- round trip --------------------------------------------------------------------

    def test_every_field_round_trips_exactly(self, event_store: EventStore) -> None:
        plus_0530 = timezone(timedelta(hours=5, minutes=30))
        odd = [
            make_record(0),
            make_record(
                1,
                event_id="<script>alert('x')</script>",
                trace_id="trace0000",
                tenant_id="Ünïcødé 租户 🚀",
                user_id="",
                session_id="",
                feature="",
                name="'; DROP TABLE records; --",
                cost_usd=None,
                cost_source="unknown",
                ttft_ms=None,
                status="error",
                error_type="RateLimitError",
                error_message='He said "no" \\ and left\n second line',
                billable_state="ignored",
                shadowed=True,
                inherited=(),
                attributes={},
                events=[],
                # a non-UTC offset must come back as the same instant, in UTC
                start_time=datetime(2026, 3, 1, 17, 30, 1, 123456, tzinfo=plus_0530),
                end_time=datetime(2026, 3, 1, 17, 30, 2, 999999, tzinfo=plus_0530),
            ),
            make_record(2, cost_usd=Decimal("0.000000000001"), input_tokens=2**40),
            make_record(3, cost_usd=Decimal("123456789.123456789012")),
            make_record(4, cost_usd=Decimal("0"), attributes={"emoji": "😀", "q": "a'b\"c"}),
        ]
        event_store.write(odd)
        back = _by_event_id(
            event_store.trace_records(["trace0000", "trace0001"], T0, T0 + timedelta(seconds=10))
        )
        assert set(back) == {r.event_id for r in odd}
        for original in odd:
            got = back[original.event_id]
            for name in RECORD_FIELDS:
                assert getattr(got, name) == getattr(original, name), name
            for name in ("start_time", "end_time", "received_at"):
                assert getattr(got, name).utcoffset() == timedelta(0), name
            assert isinstance(got.inherited, tuple)
        assert back["<script>alert('x')</script>"].cost_usd is None
        # the same through iter_records
        assert _by_event_id(_all(event_store)) == back

    def test_cost_is_kept_to_twelve_places(self, event_store: EventStore) -> None:
        event_store.write(
            [
                make_record(0, cost_usd=Decimal("0.0000000000015")),  # half-even -> 2e-12
                make_record(1, cost_usd=Decimal("0.0000000000025")),  # half-even -> 2e-12
                make_record(2, cost_usd=Decimal("1.1")),
            ]
        )
        got = {r.event_id: r.cost_usd for r in _all(event_store)}
        assert got[make_record(0).event_id] == Decimal("0.000000000002")
        assert got[make_record(1).event_id] == Decimal("0.000000000002")
        assert got[make_record(2).event_id] == Decimal("1.1")
        rows = event_store.fetch("SELECT sum(cost_usd) AS total FROM records")
        assert rows[0]["total"] == Decimal("1.100000000004")
        assert isinstance(rows[0]["total"], Decimal)

    def test_empty_write_is_a_no_op(self, event_store: EventStore) -> None:
        event_store.write([])
        event_store.write([], [])
        assert event_store.count() == 0

    # -- updates -----------------------------------------------------------------------

    def test_updates_replace_whole_rows_with_the_inserts(self, event_store: EventStore) -> None:
        first = make_records(3)
        event_store.write(first)
        changed = first[1].replace(
            cost_usd=Decimal("9.000000000001"),
            cost_source="override",
            shadowed=True,
            tenant_id="moved",
            attributes={"v": 2},
        )
        new = make_record(10)
        event_store.write([new], [changed])
        stored = _all(event_store)
        assert len(stored) == 4
        assert [r.event_id for r in stored].count(changed.event_id) == 1
        assert _by_event_id(stored)[changed.event_id] == changed
        assert _by_event_id(stored)[first[0].event_id] == first[0]
        assert _by_event_id(stored)[new.event_id] == new

    def test_update_of_an_unknown_record_stores_it(self, event_store: EventStore) -> None:
        rec = make_record(5)
        event_store.write([], [rec])
        assert _all(event_store) == [rec]

    def test_a_failed_write_stores_nothing(self, event_store: EventStore) -> None:
        base = make_records(3)
        event_store.write(base)
        good_update = base[0].replace(cost_usd=Decimal("5"))
        bad = make_record(20, cost_usd=Decimal("NaN"))
        with pytest.raises((ValueError, TypeError, errors.TenantscopeError)):
            event_store.write([make_record(21), bad], [good_update])
        assert _all(event_store) == base
        too_big = make_record(22, input_tokens=2**70)
        with pytest.raises((ValueError, TypeError, OverflowError, errors.TenantscopeError)):
            event_store.write([make_record(23), too_big], [good_update])
        assert _all(event_store) == base

    # -- look-ups ----------------------------------------------------------------------

    def test_existing_event_keys_respects_the_time_range(self, event_store: EventStore) -> None:
        early = make_record(0)
        late = make_record(3600)
        event_store.write([early, late])
        ids = [early.event_id, late.event_id, "never-stored"]
        e, lt = (early.tenant_id, early.event_id), (late.tenant_id, late.event_id)
        assert event_store.existing_event_keys(ids, T0, T0 + timedelta(minutes=30)) == {e}
        # both bounds are inclusive
        assert event_store.existing_event_keys(ids, late.start_time, late.start_time) == {lt}
        wide = event_store.existing_event_keys(ids, T0 - timedelta(days=1), T0 + timedelta(days=1))
        assert wide == {e, lt}
        later = event_store.existing_event_keys(ids, T0 + timedelta(days=1), T0 + timedelta(days=2))
        assert later == set()
        assert event_store.existing_event_keys([], T0, T0 + timedelta(days=1)) == set()

    def test_existing_event_keys_name_each_tenant_of_an_id(self, event_store: EventStore) -> None:
        a = make_record(0, event_id="inv-1", tenant_id="a")
        b = make_record(1, event_id="inv-1", tenant_id="b", trace_id="other")
        event_store.write([a, b])
        found = event_store.existing_event_keys(["inv-1"], T0, T0 + timedelta(hours=1))
        assert found == {("a", "inv-1"), ("b", "inv-1")}

    def test_existing_event_keys_with_a_large_batch(self, event_store: EventStore) -> None:
        stored = make_records(1500)
        event_store.write(stored)
        asked = [r.event_id for r in stored[::2]] + [f"missing-{i}" for i in range(500)]
        found = event_store.existing_event_keys(asked, T0, T0 + timedelta(hours=1))
        assert found == {(r.tenant_id, r.event_id) for r in stored[::2]}

    def test_trace_records(self, event_store: EventStore) -> None:
        recs = make_records(12)  # traces 0..3, three spans each
        shuffled = recs[:]
        random.Random(7).shuffle(shuffled)
        event_store.write(shuffled)
        got = event_store.trace_records(
            ["trace0001", "trace0003", "nope"], T0, T0 + timedelta(hours=1)
        )
        assert got == [r for r in recs if r.trace_id in ("trace0001", "trace0003")]
        # the range bounds the look-up: trace0003 starts at T0+9s
        narrow = event_store.trace_records(
            ["trace0001", "trace0003"], T0, T0 + timedelta(seconds=8)
        )
        assert [r.trace_id for r in narrow] == ["trace0001"] * 3
        assert event_store.trace_records([], T0, T0 + timedelta(hours=1)) == []

    def test_trace_bounds(self, event_store: EventStore) -> None:
        recs = make_records(12)  # traces 0..3, three spans each, a second apart
        for r in recs:  # one write per span: the trace's bounds span several writes
            event_store.write([r])
        assert event_store.trace_bounds("trace0001") == (
            recs[3].start_time.replace(tzinfo=None),
            recs[5].start_time.replace(tzinfo=None),
        )
        assert event_store.trace_bounds("nope") is None
        # a rewrite of stored spans keeps them findable
        event_store.write([], [recs[4].replace(user_id="changed")])
        bounds = event_store.trace_bounds("trace0001")
        assert bounds is not None and bounds[0] <= recs[4].start_time.replace(tzinfo=None)

    def test_response_records(self, event_store: EventStore) -> None:
        recs = make_records(6)
        recs[4] = recs[4].replace(response_id="chatcmpl-1", trace_id="other")  # a copy
        recs[5] = recs[5].replace(response_id="chatcmpl-1", kind="span")  # not a call
        event_store.write(recs)
        got = event_store.response_records(
            ["chatcmpl-1", "chatcmpl-3", "nope"], T0, T0 + timedelta(hours=1)
        )
        assert got == [recs[1], recs[3], recs[4]]
        # the range bounds the look-up: recs[4] starts at T0+4s
        narrow = event_store.response_records(["chatcmpl-1"], T0, T0 + timedelta(seconds=3))
        assert narrow == [recs[1]]
        assert event_store.response_records([], T0, T0 + timedelta(hours=1)) == []

    def test_trace_and_response_look_ups_equal_a_scan(self, event_store: EventStore) -> None:
        # spans of one trace and copies of one response written in many batches, hours
        # apart, some rewritten later: a look-up finds exactly what a scan of every
        # record in the range finds, whatever the range
        rng = random.Random(3)
        recs = [
            make_record(
                i,
                trace_id=f"t{rng.randint(0, 30)}",
                response_id=rng.choice(["", f"resp-{rng.randint(0, 20)}"]),
                kind=rng.choice(["llm", "llm", "span"]),
                start_time=T0 + timedelta(minutes=rng.randint(0, 600)),
            )
            for i in range(300)
        ]
        for i in range(0, 300, 25):
            event_store.write(recs[i : i + 25])
        event_store.write([], [r.replace(user_id="changed") for r in recs[::7]])
        stored = _all(event_store)
        for _ in range(25):
            lo = T0 + timedelta(minutes=rng.randint(-60, 600))
            hi = lo + timedelta(minutes=rng.randint(0, 300))
            traces = [f"t{rng.randint(0, 40)}" for _ in range(5)]
            responses = [f"resp-{rng.randint(0, 25)}" for _ in range(5)]
            inside = [r for r in stored if lo <= r.start_time <= hi]
            key = lambda r: (r.start_time, r.event_id)  # noqa: E731
            assert sorted(event_store.trace_records(traces, lo, hi), key=key) == sorted(
                (r for r in inside if r.trace_id in traces), key=key
            )
            assert sorted(event_store.response_records(responses, lo, hi), key=key) == sorted(
                (r for r in inside if r.response_id in responses and r.kind == "llm"), key=key
            )

    def test_reads_in_a_snapshot_see_one_moment(self, event_store: EventStore) -> None:
        count = "SELECT count(*) AS n FROM records"
        event_store.write(make_records(3))
        with event_store.snapshot():
            assert event_store.fetch(count) == [{"n": 3}]
            writer = threading.Thread(target=event_store.write, args=(make_records(2, 10),))
            writer.start()
            writer.join()
            with event_store.snapshot():  # nested: still the same moment
                assert event_store.fetch(count) == [{"n": 3}]
            assert event_store.fetch(count) == [{"n": 3}]
        assert event_store.fetch(count) == [{"n": 5}]

    # -- fetch -------------------------------------------------------------------------

    def test_fetch_with_named_params(self, event_store: EventStore) -> None:
        recs = make_records(8)
        event_store.write(recs)
        rows = event_store.fetch(
            "SELECT tenant_id, count(*) AS n, sum(cost_usd) AS cost, sum(input_tokens) AS tokens "
            "FROM records WHERE tenant_id = :tenant AND start_time >= :start "
            "GROUP BY tenant_id",
            {"tenant": "tenant-1", "start": T0},
        )
        expected = [r for r in recs if r.tenant_id == "tenant-1"]
        assert len(rows) == 1
        assert rows[0]["tenant_id"] == "tenant-1"
        assert rows[0]["n"] == len(expected)
        assert rows[0]["cost"] == sum((r.cost_usd or Decimal(0) for r in expected), Decimal(0))
        assert rows[0]["tokens"] == sum(r.input_tokens for r in expected)

    def test_fetch_params_accept_aware_times_in_any_zone(self, event_store: EventStore) -> None:
        event_store.write(make_records(10))
        tokyo = timezone(timedelta(hours=9))
        start = (T0 + timedelta(seconds=5)).astimezone(tokyo)
        rows = event_store.fetch(
            "SELECT count(*) AS n FROM records WHERE start_time >= :start", {"start": start}
        )
        assert rows[0]["n"] == 5

    def test_fetch_leaves_string_literals_alone(self, event_store: EventStore) -> None:
        event_store.write([make_record(0)])
        rows = event_store.fetch(
            "SELECT ':tenant' AS lit, tenant_id FROM records WHERE tenant_id = :tenant",
            {"tenant": "tenant-0"},
        )
        assert rows == [{"lit": ":tenant", "tenant_id": "tenant-0"}]

    @pytest.mark.parametrize(
        "payload",
        [
            "' OR '1'='1",
            "tenant-0' --",
            "'; DROP TABLE records; --",
            "tenant-0\\'; DELETE FROM records; --",
        ],
    )
    def test_fetch_treats_params_as_data(self, event_store: EventStore, payload: str) -> None:
        event_store.write(make_records(4) + [make_record(9, tenant_id=payload)])
        rows = event_store.fetch(
            "SELECT event_id, tenant_id FROM records WHERE tenant_id = :tenant", {"tenant": payload}
        )
        assert rows == [{"event_id": make_record(9).event_id, "tenant_id": payload}]
        assert event_store.fetch(
            "SELECT count(*) AS n FROM records WHERE tenant_id = :t", {"t": payload + "x"}
        ) == [{"n": 0}]
        assert event_store.count() == 5

    # -- iteration, count, export ------------------------------------------------------

    def test_iter_records_batches_oldest_first(self, event_store: EventStore) -> None:
        recs = make_records(25)
        shuffled = recs[:]
        random.Random(3).shuffle(shuffled)
        for i in range(0, 25, 6):
            event_store.write(shuffled[i : i + 6])
        batches = list(event_store.iter_records(T0, T0 + timedelta(seconds=25), batch_size=10))
        assert [len(b) for b in batches] == [10, 10, 5]
        assert [r for b in batches for r in b] == recs
        # start inclusive, end exclusive
        window = [
            r for b in event_store.iter_records(recs[3].start_time, recs[7].start_time) for r in b
        ]
        assert window == recs[3:7]
        assert list(event_store.iter_records(T0 + timedelta(days=1), T0 + timedelta(days=2))) == []

    def test_iter_records_survives_writes_between_batches(self, event_store: EventStore) -> None:
        """The reprice pattern: read a batch, write its updates, read the next."""
        recs = make_records(30)
        event_store.write(recs)
        seen: list[str] = []
        for batch in event_store.iter_records(T0, T0 + timedelta(hours=1), batch_size=7):
            seen.extend(r.event_id for r in batch)
            event_store.write([], [r.replace(cost_usd=Decimal("1")) for r in batch])
        assert seen == [r.event_id for r in recs]
        assert {r.cost_usd for r in _all(event_store)} == {Decimal("1")}
        assert event_store.count() == 30

    def test_count(self, event_store: EventStore) -> None:
        assert event_store.count() == 0
        event_store.write(make_records(20))
        assert event_store.count() == 20
        assert event_store.count(T0 + timedelta(seconds=5)) == 15
        assert event_store.count(None, T0 + timedelta(seconds=5)) == 5
        assert event_store.count(T0 + timedelta(seconds=5), T0 + timedelta(seconds=8)) == 3

    def test_export_csv(self, event_store: EventStore, tmp_path: Path) -> None:
        recs = make_records(10) + [make_record(10, tenant_id='quote " and, comma', cost_usd=None)]
        event_store.write(recs)
        target = tmp_path / "it's an export.csv"
        n = event_store.export(
            str(target), "csv", T0 + timedelta(seconds=2), T0 + timedelta(seconds=20)
        )
        assert n == 9
        with target.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert list(rows[0]) == list(RECORD_FIELDS)
        assert [r["event_id"] for r in rows] == [r.event_id for r in recs[2:]]
        assert Decimal(rows[0]["cost_usd"]) == recs[2].cost_usd
        assert rows[-1]["tenant_id"] == 'quote " and, comma'
        assert rows[-1]["cost_usd"] == ""

    def test_export_parquet(self, event_store: EventStore, tmp_path: Path) -> None:
        recs = make_records(10)
        event_store.write(recs)
        target = tmp_path / "export.parquet"
        assert event_store.export(str(target), "parquet", T0, T0 + timedelta(seconds=6)) == 6
        table = pq.read_table(target)
        assert table.column_names == list(RECORD_FIELDS)
        assert table.column("event_id").to_pylist() == [r.event_id for r in recs[:6]]
        assert table.column("cost_usd").to_pylist() == [r.cost_usd for r in recs[:6]]
        starts = table.column("start_time").to_pylist()
        assert [
            s.astimezone(timezone.utc) if s.tzinfo else s.replace(tzinfo=timezone.utc)
            for s in starts
        ] == [r.start_time for r in recs[:6]]

    def test_export_rejects_unknown_format(self, event_store: EventStore, tmp_path: Path) -> None:
        with pytest.raises(errors.BadRequest):
            event_store.export(str(tmp_path / "x.json"), "json", T0, T0 + timedelta(days=1))

    # -- concurrency and durability ----------------------------------------------------

    def test_readers_never_see_half_a_write(self, event_store: EventStore) -> None:
        batch = 40
        rounds = 15
        event_store.write(make_records(batch))
        stop = threading.Event()
        failures: list[str] = []
        observed: list[int] = []

        def reader() -> None:
            last = 0
            try:
                while not stop.is_set():
                    row = event_store.fetch(
                        "SELECT count(*) AS n, count(DISTINCT event_id) AS d, "
                        "sum(cost_usd) AS c FROM records"
                    )[0]
                    n, d = row["n"], row["d"]
                    if n != d:
                        failures.append(f"duplicates visible: {n} rows, {d} ids")
                    if n % batch:
                        failures.append(f"partial batch visible: {n}")
                    if n < last:
                        failures.append(f"count went back from {last} to {n}")
                    last = n
                    observed.append(n)
            except Exception as exc:  # pragma: no cover - reported below
                failures.append(repr(exc))

        def writer() -> None:
            try:
                for k in range(1, rounds + 1):
                    # each round: a new batch, plus replacing the previous round's rows
                    prev = make_records(batch, offset=(k - 1) * batch)
                    event_store.write(
                        make_records(batch, offset=k * batch),
                        [r.replace(cost_usd=Decimal(k)) for r in prev],
                    )
            except Exception as exc:  # pragma: no cover - reported below
                failures.append(repr(exc))
            finally:
                stop.set()

        readers = [threading.Thread(target=reader) for _ in range(4)]
        w = threading.Thread(target=writer)
        for t in readers:
            t.start()
        w.start()
        w.join(60)
        for t in readers:
            t.join(60)
        assert not failures, failures[:5]
        assert observed
        assert event_store.count() == batch * (rounds + 1)

    def test_data_survives_reopen(self, make_event_store: MakeStore) -> None:
        recs = make_records(50)
        store = make_event_store()
        store.write(recs[:30])
        store.write(recs[30:], [recs[0].replace(cost_usd=Decimal("7"))])
        store.close()
        again = make_event_store()
        try:
            got = _all(again)
            assert len(got) == 50
            assert _by_event_id(got)[recs[0].event_id].cost_usd == Decimal("7")
            assert _by_event_id(got)[recs[49].event_id] == recs[49]
        finally:
            again.close()

    def test_ping_and_close(self, make_event_store: MakeStore) -> None:
        store = make_event_store()
        store.ping()
        store.close()
        store.close()  # closing twice is harmless
        with pytest.raises(errors.TenantscopeError):
            store.ping()
