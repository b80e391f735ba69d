"""The limiter's live state, in memory and under one lock: the calls each rate window
holds, the cost reserved by calls in flight, and the cost of settled calls not yet in
the figures read from the store.

Every decision reads and changes this state in one critical section, so two callers can
never both take the last of a limit (check-then-increment is one step). A budget's spend
is ``stored + held + settled``:

- ``stored``: the period's cost of counted LLM calls as the query layer reads it from the
  event store (``limits/spend.py``), as of writer batch ``gen``;
- ``held``: the estimated maximum cost of reservations not yet settled;
- ``settled``: the real cost of reservations whose records reached the store in batches
  after ``gen`` (dropped once a read at or after their batch includes them).

A record is thus counted exactly once at every moment: as a hold until its batch is
stored, then as settled until the figures include it.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

WINDOW_S = 60.0  # rate limits are per minute: a sliding window of the last 60 s
GONE = -1.0  # the time of an entry pruned from its window

RateKey = tuple[str, str, str]  # (limit ref, tenant, subject)
BudgetKey = tuple[str, str, str, datetime, str]  # (limit ref, tenant, subject, period start, per)
Group = tuple[datetime, str]  # (period start, per): one stored figure query


class RateWindow:
    """The calls of one rate-limit counter over the last minute: (time, tokens) each, in
    time order, with their token total kept (a check costs O(1) amortised)."""

    __slots__ = ("entries", "tokens")

    def __init__(self) -> None:
        self.entries: collections.deque[list[float]] = collections.deque()
        self.tokens = 0.0

    def prune(self, now: float) -> None:
        cutoff = now - WINDOW_S
        entries = self.entries
        while entries and entries[0][0] <= cutoff:
            gone = entries.popleft()
            self.tokens -= gone[1]
            gone[0] = GONE  # a reservation holding it must not change the total any more

    def retry_after_requests(self, limit: int, now: float) -> float:
        """Seconds until one more call fits under ``limit`` requests."""
        over = len(self.entries) - limit  # entries that must leave first, minus one
        return self.entries[over][0] + WINDOW_S - now

    def retry_after_tokens(self, limit: int, need: int, now: float) -> float:
        """Seconds until ``need`` more tokens fit under ``limit``."""
        excess = self.tokens + need - limit
        for t, tokens in self.entries:
            excess -= tokens
            if excess <= 0:
                return t + WINDOW_S - now
        return WINDOW_S


@dataclass(slots=True)
class Reservation:
    id: str
    tenant_id: str
    workspace_id: str
    feature: str
    user_id: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int  # held for (max_tokens or the default estimate, plus extensions)
    cost: Decimal  # held on each budget key
    budgets: list[BudgetKey]
    rates: list[tuple[RateKey, list[float]]]  # the window entries it added
    expires: float  # monotonic
    expires_at: datetime
    created_at: datetime
    priced: bool = True
    trace_id: str = ""
    span_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class Ledger:
    """The state; callers hold ``lock`` around every read-and-change."""

    def __init__(self) -> None:
        self.rates: dict[RateKey, RateWindow] = {}
        self.held: dict[BudgetKey, Decimal] = {}
        self.settled: dict[BudgetKey, list[tuple[int, Decimal]]] = {}
        self.stored: dict[Group, dict[tuple[str, str], Decimal]] = {}
        self.stored_gen: dict[Group, int] = {}
        self.reservations: dict[str, Reservation] = {}

    def window(self, key: RateKey) -> RateWindow:
        w = self.rates.get(key)
        if w is None:
            w = self.rates[key] = RateWindow()
        return w

    def spend(self, key: BudgetKey) -> tuple[Decimal, Decimal]:
        """(settled spend, held) of a budget counter: what the store and settled calls
        say, and what calls in flight may still add."""
        _, tenant, subject, start, per = key
        stored = self.stored.get((start, per), {}).get((tenant, subject), Decimal(0))
        settled = sum((c for _, c in self.settled.get(key, ())), Decimal(0))
        return stored + settled, self.held.get(key, Decimal(0))

    def hold(self, r: Reservation, cost: Decimal) -> None:
        for key in r.budgets:
            self.held[key] = self.held.get(key, Decimal(0)) + cost

    def unhold(self, r: Reservation) -> None:
        for key in r.budgets:
            left = self.held.get(key, Decimal(0)) - r.cost
            if left > 0:
                self.held[key] = left
            else:
                self.held.pop(key, None)

    def release(self, rid: str, *, happened: bool = True) -> Reservation | None:
        """Drop a reservation's hold. An expired one's call may have run: its place in
        the rate windows stays. A call that never happened (``happened=False``) gives its
        place and tokens back."""
        r = self.reservations.pop(rid, None)
        if r is None:
            return None
        self.unhold(r)
        if not happened:
            for rate_key, entry in r.rates:
                w = self.rates.get(rate_key)
                if w is not None and entry[0] != GONE:
                    w.tokens -= entry[1]
                    # by identity: another call's entry may hold the same time and tokens
                    at = next(i for i, e in enumerate(w.entries) if e is entry)
                    del w.entries[at]
                    entry[0] = GONE
        return r

    def settle(self, rid: str, gen: int, cost: Decimal, tokens: int) -> Reservation | None:
        """The reservation's record reached the store in batch ``gen``: its hold becomes
        its real cost (until a read of the store at or after ``gen`` includes it), its
        rate entries its real tokens."""
        r = self.reservations.pop(rid, None)
        if r is None:
            return None
        self.unhold(r)
        for key in r.budgets:
            # a read of the store at or after ``gen`` already holds this record
            if cost and self.stored_gen.get((key[3], key[4]), -1) < gen:
                self.settled.setdefault(key, []).append((gen, cost))
        self.adjust(r, lambda held: float(tokens))
        return r

    def adjust(self, r: Reservation, tokens: Callable[[float], float]) -> None:
        """Change the tokens a reservation's rate entries count (while in their window)."""
        for rate_key, entry in r.rates:
            w = self.rates.get(rate_key)
            if w is not None and entry[0] != GONE:
                new = tokens(entry[1])
                w.tokens += new - entry[1]
                entry[1] = new

    def set_stored(self, group: Group, gen: int, figures: dict[tuple[str, str], Decimal]) -> None:
        """A read of the store as of batch ``gen``: settled costs it includes go."""
        self.stored[group] = figures
        self.stored_gen[group] = gen
        for key in [k for k in self.settled if (k[3], k[4]) == group]:
            kept = [(g, c) for g, c in self.settled[key] if g > gen]
            if kept:
                self.settled[key] = kept
            else:
                del self.settled[key]

    def forget_before(self, start: datetime) -> None:
        """Periods that ended: their figures and settled costs go (holds go with their
        reservations)."""
        for group in [g for g in self.stored if g[0] < start]:
            del self.stored[group]
            self.stored_gen.pop(group, None)
        for key in [k for k in self.settled if k[3] < start]:
            del self.settled[key]

    def prune_rates(self, now: float) -> None:
        for key in list(self.rates):
            w = self.rates[key]
            w.prune(now)
            if not w.entries:
                del self.rates[key]
