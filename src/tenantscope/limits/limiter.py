"""Decisions before the call: check (reserve), extend, settle, release.

One ``Limiter`` per server. A check finds the limits that apply to the call's attribution
(``definitions.Resolver``), and in one critical section over the ``Ledger`` either refuses
(naming the limit that decided, what remains and when to retry) or reserves: a place in
each rate window, and the call's estimated maximum cost on each budget. The reservation is
settled by the call's real record when ingest stores it (the span carries the reservation
id: ``semconv.RESERVATION_ID``), or released when it expires.

Month-to-date spend is the query layer's figure (``WindowQueries``: the same records and
rollups as the dashboard), re-read in the background as records arrive; reservations
bridge the time until a call's record is in that figure (see ``ledger.py``), so a restart
loses no spend (only the holds of calls in flight at that moment).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tenantscope import semconv
from tenantscope.errors import NotFound
from tenantscope.ingest.writer import BatchWriter, synthetic_ids
from tenantscope.limits.definitions import PER_COLUMN, Effective, Resolver
from tenantscope.limits.figures import (
    Call,
    Decision,
    Figure,
    Verdict,
    figure_of,
    refusal,
    warning,
)
from tenantscope.limits.ledger import BudgetKey, Group, Ledger, Reservation
from tenantscope.limits.periods import period, projected
from tenantscope.query.params import TimeRange
from tenantscope.query.scope import Scope
from tenantscope.query.windows import WindowQueries
from tenantscope.records import UsageRecord
from tenantscope.storage.base import ConfigStore, EventStore

log = logging.getLogger("tenantscope.limits")

MAX_TTL_S = 3600
DEFINITIONS_TTL_S = 5.0  # re-read limits, tenants and approvals at least this often
FULL_REFRESH_S = 30.0  # and the stored spend, even when no batch was stored
MAX_BLOCKED_BUFFER = 100_000  # refused calls waiting for the next round's write


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Limiter:
    def __init__(
        self,
        events: EventStore,
        config: ConfigStore,
        writer: BatchWriter,
        price: Callable[[UsageRecord], None],
        *,
        default_output_tokens: int = 1024,
        refresh_s: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        on_notice: Callable[[Effective, str, str, datetime, int, Decimal, Decimal], None]
        | None = None,
    ) -> None:
        self.events = events
        self.config = config
        self.writer = writer
        self.queries = WindowQueries(events, config)
        self.price = price
        self.default_output_tokens = default_output_tokens
        self.refresh_s = refresh_s
        self.clock = clock
        self.monotonic = monotonic
        self.on_notice = on_notice
        self.ledger = Ledger()
        self.lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._resolver: Resolver | None = None
        self._resolved_at = -math.inf
        self._version = -1
        self._periods: set[tuple[str, int, str]] = set()
        self._last_gen = -1
        self._last_full = -math.inf
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.checks = 0
        self.denials = 0
        self._blocked: list[UsageRecord] = []
        self._blocked_lock = threading.Lock()
        self.blocked_dropped = 0
        # reservation ids: unique per server run (a random prefix) and cheap to make (a
        # counter); a bound key acts on its own tenant's only (routes_limits._owned)
        self._id_prefix = secrets.token_urlsafe(6).replace("-", "x").replace("_", "y")
        self._ids = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Settle by stored records, and keep figures fresh in the background."""
        self.writer.on_stored = self.on_stored
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tenantscope-limits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.flush_blocked()
        if self.writer.on_stored == self.on_stored:
            self.writer.on_stored = None

    def _run(self) -> None:
        while not self._stop.wait(min(self.refresh_s, 1.0)):
            try:
                self.tick()
            except Exception:  # a failed round is logged; the next one tries again
                log.exception("the limiter's background round failed")

    def tick(self) -> None:
        """One background round: definitions, stored spend, expired reservations, old
        rate entries, soft thresholds."""
        now = self.clock()
        self.resolver(now, background=True)
        gen = self.writer.batches
        mono = self.monotonic()
        if gen != self._last_gen or mono - self._last_full >= FULL_REFRESH_S:
            self.refresh(now)
            self._last_full = mono
        self.flush_blocked()
        self.expire()
        with self.lock:
            self.ledger.prune_rates(mono)
        if self.on_notice is not None:
            self.notice_thresholds(now)

    # -- definitions -------------------------------------------------------------------
    def resolver(self, now: datetime | None = None, *, background: bool = False) -> Resolver:
        """The limits that apply, re-read when this process changed them, when an approval
        starts or ends, and (in the background round, off the request path) every
        ``DEFINITIONS_TTL_S`` for changes made by other processes (the CLI)."""
        now = now or self.clock()
        mono = self.monotonic()
        version = getattr(self.config.limits, "version", 0)
        r = self._resolver
        if (
            r is None
            or version != self._version
            or (background and mono - self._resolved_at >= DEFINITIONS_TTL_S)
            or (r.valid_until is not None and now >= r.valid_until)
        ):
            store = self.config.limits
            r = Resolver(
                store.list_limits(),
                self.config.list_tenants(),
                store.list_approvals(active_at=now),
                now,
            )
            self._resolver, self._resolved_at, self._version = r, mono, version
            self._note_periods(r)
        return r

    def _note_periods(self, r: Resolver) -> None:
        """The kinds of budget period in use: (time zone, anchor day, per)."""
        kinds = {
            (e.timezone, e.anchor_day, e.per)
            for tenant in [*r.tenants_with_config(), ""]
            for e in r.for_tenant(tenant)
            if e.kind == "budget"
        }
        kinds |= r.budget_periods()
        self._periods = kinds

    # -- stored spend ------------------------------------------------------------------
    def refresh(self, now: datetime | None = None) -> None:
        """Re-read the stored spend of every budget period in use now; forget periods
        that ended."""
        now = now or self.clock()
        current = {(period(now, tz, anchor)[0], per) for tz, anchor, per in self._periods}
        with self.lock:
            current |= {g for g in self.ledger.stored if g[0] > now - timedelta(days=27)}
        for group in current:
            self._load(group)
        oldest = min((g[0] for g in current), default=None)
        if oldest is not None:
            with self.lock:
                self.ledger.forget_before(oldest)

    def _load(self, group: Group) -> None:
        start, per = group
        end = start + timedelta(days=33)  # beyond any month: records are not in the future
        rng = TimeRange(start, end)
        with self._load_lock, self.events.snapshot():
            with self.writer.commit_lock:
                # the snapshot is pinned between two batches: it holds exactly the
                # batches numbered up to ``gen``
                gen = self.writer.batches
                self.events.fetch("SELECT count(*) AS n FROM records WHERE false")
            if per == "tenant":
                figures = {
                    (t, ""): c for t, c in self.queries.cost_by_tenant(Scope.all(), rng).items()
                }
            else:
                figures = self.queries.cost_by_subject(Scope.all(), rng, PER_COLUMN[per])
        with self.lock:
            self.ledger.set_stored(group, gen, figures)

    def _ensure(self, groups: set[Group]) -> None:
        for group in groups:
            if group not in self.ledger.stored:
                self._load(group)

    # -- decisions ---------------------------------------------------------------------
    def _estimate(self, call: Call, output_tokens: int) -> tuple[Decimal, bool]:
        if call.estimated_cost_usd is not None:
            return call.estimated_cost_usd, True
        if not call.model:
            return Decimal(0), False
        record = UsageRecord(
            event_id="estimate",
            kind="llm",
            provider=call.provider,
            model=call.model,
            input_tokens=call.input_tokens,
            output_tokens=output_tokens,
        )
        self.price(record)
        if record.cost_usd is None:
            return Decimal(0), False
        return record.cost_usd, True

    def _applying(self, call: Call, now: datetime) -> list[tuple[Effective, str, Any]]:
        """(limit, subject, counter key) of each limit that applies to ``call``."""
        out: list[tuple[Effective, str, Any]] = []
        for eff in self.resolver(now).for_tenant(call.tenant_id):
            subject = call.subject(eff.per)
            if not eff.applies(subject):
                continue
            if eff.kind == "rate":
                out.append((eff, subject, (eff.ref, call.tenant_id, subject)))
            else:
                start, end = period(now, eff.timezone, eff.anchor_day)
                key: BudgetKey = (eff.ref, call.tenant_id, subject, start, eff.per)
                out.append((eff, subject, (key, end)))
        return out

    def check(self, call: Call) -> Decision:
        now = self.clock()
        output = call.max_tokens if call.max_tokens is not None else self.default_output_tokens
        cost, priced = self._estimate(call, output)
        tokens = call.input_tokens + output
        applying = self._applying(call, now)
        self._ensure({(k[0][3], k[0][4]) for e, _, k in applying if e.kind == "budget"})
        ttl = max(1, min(call.ttl_s, MAX_TTL_S))
        with self.lock:
            mono = self.monotonic()
            verdicts = [self._judge(e, s, k, cost, tokens, mono, now) for e, s, k in applying]
            self.checks += 1
            refused = [v for v in verdicts if not v.fits and v.figure.mode == "block"]
            if refused:
                self.denials += 1
                # the limit that holds the call back longest decides
                v = max(refused, key=lambda v: math.inf if v.retry_after is None else v.retry_after)
                decision = Decision(
                    allowed=False,
                    message=refusal(v),
                    decided_by=v.figure,
                    retry_after=None if v.retry_after is None else max(1, math.ceil(v.retry_after)),
                )
            else:
                r = Reservation(
                    id=f"r_{self._id_prefix}{next(self._ids):x}",
                    tenant_id=call.tenant_id,
                    workspace_id=call.workspace_id,
                    feature=call.feature,
                    user_id=call.user_id,
                    provider=call.provider,
                    model=call.model,
                    input_tokens=call.input_tokens,
                    output_tokens=output,
                    cost=cost,
                    budgets=[k[0] for e, _, k in applying if e.kind == "budget"],
                    rates=[],
                    expires=mono + ttl,
                    expires_at=now + timedelta(seconds=ttl),
                    created_at=now,
                    priced=priced,
                )
                for e, _, k in applying:
                    if e.kind == "rate":
                        entry = [mono, float(tokens)]
                        w = self.ledger.window(k)
                        w.entries.append(entry)
                        w.tokens += tokens
                        r.rates.append((k, entry))
                self.ledger.hold(r, cost)
                self.ledger.reservations[r.id] = r
                tightest = max(verdicts, key=lambda v: v.figure.share, default=None)
                warnings = [warning(v) for v in verdicts if not v.fits]
                if not priced and any(e.kind == "budget" for e, _, _ in applying):
                    warnings.append(
                        f"model {call.model or '(none)'} has no price: its budget hold is 0"
                        " until the call's record is priced"
                    )
                decision = Decision(
                    allowed=True,
                    message="allowed" if not warnings else "allowed with warnings",
                    reservation=r,
                    decided_by=None if tightest is None else tightest.figure,
                    warnings=warnings,
                )
        if not decision.allowed:
            self._record_block(call, decision, now)
        return decision

    def _judge(
        self,
        eff: Effective,
        subject: str,
        key: Any,
        cost: Decimal,
        tokens: int,
        mono: float,
        now: datetime,
    ) -> Verdict:
        """Does a call of ``cost`` and ``tokens`` fit under ``eff`` now? (under the lock)"""
        usd, rpm, tpm = eff.raised(subject)
        if eff.kind == "rate":
            w = self.ledger.rates.get(key)
            if w is not None:
                w.prune(mono)
            count = len(w.entries) if w is not None else 0
            used_tokens = int(w.tokens) if w is not None else 0
            verdicts: list[Verdict] = []
            if rpm is not None:
                fits = count + 1 <= rpm
                verdicts.append(
                    Verdict(
                        figure_of(eff, subject, "requests_per_minute", rpm, count + int(fits)),
                        fits,
                        None if fits or w is None else w.retry_after_requests(rpm, mono),
                    )
                )
            if tpm is not None:
                fits = used_tokens + tokens <= tpm
                retry = None
                if not fits and tokens <= tpm and w is not None:
                    retry = w.retry_after_tokens(tpm, tokens, mono)
                verdicts.append(
                    Verdict(
                        figure_of(
                            eff,
                            subject,
                            "tokens_per_minute",
                            tpm,
                            used_tokens + (tokens if fits else 0),
                        ),
                        fits,
                        retry,
                    )
                )
            refused = [v for v in verdicts if not v.fits]
            if refused:
                return refused[0]
            return max(verdicts, key=lambda v: v.figure.share)
        budget_key, end = key
        assert usd is not None
        spent, held = self.ledger.spend(budget_key)
        fits = spent + held + cost <= usd
        wait: float | None = None
        if not fits:
            # only calls in flight stand in the way: they settle (or expire) soon
            wait = 1.0 if spent + cost <= usd else (end - now).total_seconds()
        used = spent + held + (cost if fits else 0)
        fig = Figure(
            ref=eff.ref,
            name=eff.name,
            kind="budget",
            per=eff.per,
            subject=subject,
            measure="usd_per_period",
            limit=usd,
            used=used,
            remaining=max(Decimal(0), usd - used),
            mode=eff.mode,
            source=eff.source,
            period_start=budget_key[3],
            period_end=end,
            held=held + (cost if fits else 0),
        )
        return Verdict(fig, fits, wait)

    def extend(self, rid: str, output_tokens: int) -> Decision:
        """Hold ``output_tokens`` more for a reservation (a stream that passed what it
        held), if every limit still allows it; else the stream must stop."""
        with self.lock:
            r = self.ledger.reservations.get(rid)
            if r is None:
                raise NotFound(f"no reservation {rid} (unknown, settled or expired)")
            call = Call(
                tenant_id=r.tenant_id,
                workspace_id=r.workspace_id,
                feature=r.feature,
                user_id=r.user_id,
                provider=r.provider,
                model=r.model,
                input_tokens=r.input_tokens,
            )
            held_output = r.output_tokens
        now = self.clock()
        before, _ = self._estimate(call, held_output)
        after, _ = self._estimate(call, held_output + output_tokens)
        extra = max(Decimal(0), after - before)
        applying = self._applying(call, now)
        with self.lock:
            r = self.ledger.reservations.get(rid)
            if r is None:
                raise NotFound(f"no reservation {rid} (unknown, settled or expired)")
            mono = self.monotonic()
            budgets = [
                (e, s, k) for e, s, k in applying if e.kind == "budget" and k[0] in r.budgets
            ]
            verdicts = [self._judge(e, s, k, extra, 0, mono, now) for e, s, k in budgets]
            refused = [v for v in verdicts if not v.fits and v.figure.mode == "block"]
            if refused:
                v = refused[0]
                self.denials += 1
                return Decision(
                    allowed=False,
                    message=refusal(v, extending=True),
                    decided_by=v.figure,
                    retry_after=None if v.retry_after is None else max(1, math.ceil(v.retry_after)),
                )
            for key in r.budgets:
                self.ledger.held[key] = self.ledger.held.get(key, Decimal(0)) + extra
            r.cost += extra
            r.output_tokens += output_tokens
            self.ledger.adjust(r, lambda held: held + output_tokens)
            tightest = max(verdicts, key=lambda v: v.figure.share, default=None)
            return Decision(
                allowed=True,
                message="extended",
                reservation=r,
                decided_by=None if tightest is None else tightest.figure,
            )

    def hold_actual(self, rid: str, cost: Decimal, tokens: int) -> None:
        """A reservation's real usage is known before its record is stored (an explicit
        settle): it holds that instead of its estimate until the record is stored."""
        with self.lock:
            r = self.ledger.reservations.get(rid)
            if r is None:
                return
            for key in r.budgets:
                self.ledger.held[key] = self.ledger.held.get(key, Decimal(0)) + cost - r.cost
            r.cost = cost
            self.ledger.adjust(r, lambda held: float(tokens))

    def release(self, rid: str, *, happened: bool = False) -> bool:
        """Drop a reservation's hold. A call that did not happen also gives back its place
        in the rate windows and its tokens; one that ran (``happened``) keeps them."""
        with self.lock:
            return self.ledger.release(rid, happened=happened) is not None

    def reservation(self, rid: str) -> Reservation | None:
        with self.lock:
            return self.ledger.reservations.get(rid)

    def expire(self) -> int:
        mono = self.monotonic()
        with self.lock:
            gone = [rid for rid, r in self.ledger.reservations.items() if r.expires <= mono]
            for rid in gone:
                self.ledger.release(rid)
        return len(gone)

    # -- settling by stored records ----------------------------------------------------
    def on_stored(self, records: list[UsageRecord], tables: list[pa.Table], gen: int) -> None:
        """The writer stored these new records in batch ``gen``: settle the reservations
        they name, at their real (counted) cost and tokens."""
        if not self.ledger.reservations:
            return
        found: list[tuple[str, Decimal, int]] = []
        for r in records:
            rid = r.attributes.get(semconv.RESERVATION_ID)
            if isinstance(rid, str):
                cost = (r.cost_usd or Decimal(0)) if r.counted else Decimal(0)
                found.append((rid, cost, r.input_tokens + r.output_tokens))
        for table in tables:
            found += _reserved_rows(table)
        if not found:
            return
        with self.lock:
            for rid, cost, tokens in found:
                self.ledger.settle(rid, gen, cost, tokens)

    def settle_record(
        self,
        rid: str,
        *,
        status: str,
        counts: dict[str, int],
        texts: dict[str, str],
        cost_usd: Decimal | None = None,
        duration_ms: float = 0.0,
    ) -> UsageRecord:
        """The record of a call settled explicitly (``/v1/limits/settle``): written through
        ingest, it settles the reservation when stored."""
        r = self.reservation(rid)
        if r is None:
            raise NotFound(f"no reservation {rid} (unknown, settled or expired)")
        # ids of its own per reservation, and the event id they make by default (a record
        # with default ids takes the writer's column-wise path): settling twice is one event
        trace_id, span_id = synthetic_ids(f"reservation:{rid}", r.tenant_id)
        event_id = f"{trace_id}:{span_id}"
        end = self.clock()
        return UsageRecord(
            event_id=event_id,
            trace_id=trace_id,
            span_id=span_id,
            name="guarded call",
            kind="llm",
            tenant_id=r.tenant_id,
            workspace_id=r.workspace_id,
            user_id=r.user_id,
            feature=r.feature,
            provider=r.provider,
            model=texts.get("model") or r.model,
            input_tokens=counts.get("input_tokens", 0),
            output_tokens=counts.get("output_tokens", 0),
            cache_read_tokens=counts.get("cache_read_tokens", 0),
            cache_write_tokens=counts.get("cache_write_tokens", 0),
            reasoning_tokens=counts.get("reasoning_tokens", 0),
            cost_usd=cost_usd,
            cost_source="reported" if cost_usd is not None else "unknown",
            start_time=r.created_at,
            end_time=max(end, r.created_at),
            duration_ms=duration_ms or max(0.0, (end - r.created_at).total_seconds() * 1000),
            status=status,  # type: ignore[arg-type]
            error_type=texts.get("error_type", ""),
            error_message=texts.get("error_message", ""),
            attributes={semconv.RESERVATION_ID: rid},
            source="limits",
        )

    # -- blocked calls -----------------------------------------------------------------
    def _record_block(self, call: Call, decision: Decision, now: datetime) -> None:
        """A refused call is recorded (status blocked, never counted or billed) through
        ingest, so blocks are counted per tenant and limit like any other figure."""
        fig = decision.decided_by
        assert fig is not None
        event_id = "blocked:" + secrets.token_hex(12)
        trace_id, span_id = synthetic_ids(event_id, call.tenant_id)
        record = UsageRecord(
            event_id=event_id,
            trace_id=trace_id,
            span_id=span_id,
            name="blocked by limit",
            kind="span",
            tenant_id=call.tenant_id,
            workspace_id=call.workspace_id,
            user_id=call.user_id,
            feature=call.feature,
            provider=call.provider,
            model=call.model,
            start_time=now,
            end_time=now,
            status="blocked",
            error_type=fig.ref,
            error_message=decision.message,
            billable_state="ignored",
            attributes={
                semconv.LIMIT_ID: fig.ref,
                "tenantscope.limit.name": fig.name,
                "tenantscope.limit.measure": fig.measure,
            },
            source="limits",
        )
        with self._blocked_lock:
            if len(self._blocked) < MAX_BLOCKED_BUFFER:
                self._blocked.append(record)
            else:
                self.blocked_dropped += 1

    def flush_blocked(self) -> int:
        """Write the refused calls recorded since the last flush, in one batch (a refusal
        costs a list append on the request path, not a store write)."""
        with self._blocked_lock:
            records, self._blocked = self._blocked, []
        if records and self.writer.running:
            self.writer.submit(records, resolved=True)
        return len(records)

    # -- figures for pages and the API ------------------------------------------------
    def status(self, tenant_ids: Sequence[str]) -> dict[str, list[Figure]]:
        """Every limit of each tenant as it stands now (per counter with usage: the
        tenant's, and each feature/user/workspace that has spent or called)."""
        now = self.clock()
        resolver = self.resolver(now)
        out: dict[str, list[Figure]] = {}
        groups: set[Group] = set()
        for tenant in tenant_ids:
            for eff in resolver.for_tenant(tenant):
                if eff.kind == "budget":
                    groups.add((period(now, eff.timezone, eff.anchor_day)[0], eff.per))
        self._ensure(groups)
        with self.lock:
            mono = self.monotonic()
            for tenant in tenant_ids:
                figures: list[Figure] = []
                for eff in resolver.for_tenant(tenant):
                    for subject in self._subjects(eff, tenant, now):
                        key: Any
                        if eff.kind == "rate":
                            key = (eff.ref, tenant, subject)
                        else:
                            start, end = period(now, eff.timezone, eff.anchor_day)
                            key = ((eff.ref, tenant, subject, start, eff.per), end)
                        v = self._judge(eff, subject, key, Decimal(0), 0, mono, now)
                        fig = v.figure
                        if fig.period_start is not None and fig.period_end is not None:
                            v.figure = replace(
                                fig,
                                projected=projected(
                                    fig.used - fig.held, fig.period_start, fig.period_end, now
                                ),
                            )
                        figures += self._both_rates(eff, subject, key, mono, now, v)
                out[tenant] = figures
        return out

    def _both_rates(
        self, eff: Effective, subject: str, key: Any, mono: float, now: datetime, v: Verdict
    ) -> list[Figure]:
        """A rate limit with requests and tokens per minute shows both figures."""
        if eff.kind != "rate":
            return [v.figure]
        _, rpm, tpm = eff.raised(subject)
        w = self.ledger.rates.get(key)
        count = len(w.entries) if w is not None else 0
        tokens = int(w.tokens) if w is not None else 0
        out = []
        if rpm is not None:
            out.append(figure_of(eff, subject, "requests_per_minute", rpm, count))
        if tpm is not None:
            out.append(figure_of(eff, subject, "tokens_per_minute", tpm, tokens))
        return out

    def _subjects(self, eff: Effective, tenant: str, now: datetime) -> list[str]:
        if eff.per == "tenant":
            return [""]
        if eff.subject:
            return [eff.subject]
        seen: set[str] = set()
        if eff.kind == "rate":
            seen |= {k[2] for k in self.ledger.rates if k[0] == eff.ref and k[1] == tenant}
        else:
            start, _ = period(now, eff.timezone, eff.anchor_day)
            stored = self.ledger.stored.get((start, eff.per), {})
            seen |= {s for (t, s) in stored if t == tenant}
            seen |= {k[2] for k in self.ledger.held if k[0] == eff.ref and k[1] == tenant}
        return sorted(seen)

    # -- soft thresholds ---------------------------------------------------------------
    def notice_thresholds(self, now: datetime) -> None:
        """Tell ``on_notice`` of each budget threshold crossed (by settled spend): the
        callee keeps each one to once per period (``LimitStore.add_notice``)."""
        assert self.on_notice is not None
        resolver = self.resolver(now)
        with self.lock:
            tenants = {t for g in self.ledger.stored.values() for (t, _) in g}
            tenants |= {k[1] for k in self.ledger.settled}
        crossings: list[tuple[Effective, str, str, datetime, int, Decimal, Decimal]] = []
        with self.lock:
            for tenant in tenants:
                for eff in resolver.for_tenant(tenant):
                    if eff.kind != "budget" or not eff.thresholds:
                        continue
                    start, _ = period(now, eff.timezone, eff.anchor_day)
                    for subject in self._subjects(eff, tenant, now):
                        usd, _, _ = eff.raised(subject)
                        if not usd:
                            continue
                        spent, _ = self.ledger.spend((eff.ref, tenant, subject, start, eff.per))
                        pct = spent * 100 / usd
                        for threshold in eff.thresholds:
                            if pct >= threshold:
                                crossings.append(
                                    (eff, tenant, subject, start, threshold, spent, usd)
                                )
        for crossing in crossings:
            self.on_notice(*crossing)


def _reserved_rows(table: pa.Table) -> list[tuple[str, Decimal, int]]:
    """(reservation id, counted cost, tokens) of the rows of an Arrow batch whose
    attributes name a reservation: a vectorised filter first, the few matches decoded."""
    if "attributes" not in table.column_names or table.num_rows == 0:
        return []
    mask = pc.match_substring(table.column("attributes"), semconv.RESERVATION_ID)
    if not pc.any(mask).as_py():
        return []
    rows = table.filter(mask).select(
        ["attributes", "cost_usd", "kind", "shadowed", "input_tokens", "output_tokens"]
    )
    out = []
    for row in rows.to_pylist():
        rid = json.loads(row["attributes"] or "{}").get(semconv.RESERVATION_ID)
        if not isinstance(rid, str):
            continue
        counted = row["kind"] == "llm" and not row["shadowed"]
        cost = (
            Decimal(str(row["cost_usd"])) if counted and row["cost_usd"] is not None else Decimal(0)
        )
        out.append((rid, cost, int(row["input_tokens"] or 0) + int(row["output_tokens"] or 0)))
    return out
