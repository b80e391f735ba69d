"""Anomaly detection: are injected cost and usage anomalies found, and little else?

    python bench/anomaly.py                        # 600 tenants, 4 weeks of history + 1
    python bench/anomaly.py --tenants 300 --seed 7
    python bench/anomaly.py --weeks 2              # the detector's minimum history
    python bench/anomaly.py --min-ratio 2.0        # also --threshold, --cost-floor, ...

Generates hourly LLM traffic for ``--tenants`` tenants over ``--weeks`` weeks of history and
one evaluated week: Zipf sizes (a busy hour of 3,000 down to ~5 requests, in the same
proportions whatever ``--tenants``; two thirds under 20), each tenant in its own time
zone with its working hours, quiet nights and weekends, a day-to-day level (lognormal,
sigma 0.12), an hour-to-hour one (sigma 0.1) and a weekly growth; requests
Poisson around that, each call with lognormal tokens (sigma 0.5-1) priced by its model
(1-3 models a tenant), errors binomial at the tenant's rate (0.2-4%), and users (in
workspaces) and features sharing the calls. Into the evaluated week of ``--injected`` of
the tenants it puts one anomaly: a spike (1-3 h), a level shift (to the end), a new
expensive model (10-30x the tenant's cost per call, taking the share that makes the size,
to the end), a runaway user (2-8 h of one user's extra calls) or an error burst (1-4 h);
size 1.5x, 2x, 3x, 5x or 10x of the affected metric (requests; cost for the new model;
error rate for the burst). Every hour of the evaluated week of every tenant goes through
``detect`` (the default config, or the options' changes to it), and the figures are:

- an alert event is a run of consecutive flagged hours (any metric) of one tenant; it is
  true if it overlaps the tenant's injection, false otherwise (every event of a tenant
  without one is false). Precision = injections hit by an event / (those + false events):
  a level shift flagged on five working days counts once.
- an injection is detected if an hour within it is flagged on its metric (requests or
  cost for spikes, shifts and runaway users, cost for a new model, error rate for a
  burst); the delay is from its first hour to that hour. "Above the floors" are the
  injections whose expected extra, at some hour, reaches the config's floor (20 requests
  or $1 an hour; for error bursts 20 calls and 2 points): the ones the floors mean to page.
- explanation: for detected new-model and runaway-user injections, whether ``explain``
  over the cost by model, feature, user and workspace (the flagged hour against the mean
  of its baseline hours) names the injected model or user.

Prints recall by kind x size, precision, delays and the headline against the goals
(precision >= 0.9, recall >= 0.8 for 3x and more), and the detector's time per
tenant-hour. Always exits 0.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from tenantscope.alerts.anomaly import (
    DEFAULT,
    Anomaly,
    AnomalyConfig,
    HourFigures,
    baseline_hours,
    detect,
    explain,
)

START = datetime(2026, 1, 5, tzinfo=timezone.utc)  # a Monday
WEEK_H = 168
KINDS = ("spike", "level_shift", "new_model", "runaway_user", "error_burst")
SIZES = (1.5, 2.0, 3.0, 5.0, 10.0)
METRICS = {
    "spike": {"requests", "cost"},
    "level_shift": {"requests", "cost"},
    "new_model": {"cost"},
    "runaway_user": {"requests", "cost"},
    "error_burst": {"error_rate"},
}
# model -> (median cost of a call in USD, median tokens of a call)
CATALOGUE = {
    "small-model": (0.0004, 900.0),
    "mid-model": (0.004, 1500.0),
    "large-model": (0.02, 2500.0),
}
ZONES = (-8, -7, -6, -5, -4, -3, 0, 1, 2, 3, 5, 8, 9, 10)


@dataclass
class Model:
    name: str
    share: float
    per_token: float  # USD
    tokens: float  # median tokens of a call


@dataclass
class Injection:
    kind: str
    size: float
    start: int  # hour index
    end: int  # exclusive
    key: str = ""  # the new model or the runaway user
    pageable: bool = False  # its expected extra reaches a floor at some hour


@dataclass
class Tenant:
    index: int
    peak: float
    zone: int
    work: tuple[int, int]
    night: float
    weekend: float
    growth: float
    error_rate: float
    sigma: float  # of a call's tokens (so of its cost)
    models: list[Model]
    users: list[tuple[str, float, str]]  # name, share, workspace
    features: list[tuple[str, float]]
    levels: list[float] = field(default_factory=list)  # expected requests per hour
    injection: Injection | None = None


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 60:
        return sum(rng.random() < p for _ in range(n))
    mean = n * p
    if p < 0.1:
        return min(n, _poisson(rng, mean))
    return min(n, max(0, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))


def _tokens(rng: random.Random, n: int, median: float, sigma: float) -> float:
    """The tokens of n calls, each lognormal (a normal sum for many calls)."""
    if n <= 40:
        return sum(rng.lognormvariate(math.log(median), sigma) for _ in range(n))
    mean = median * math.exp(sigma**2 / 2)
    sd = mean * math.sqrt(math.exp(sigma**2) - 1)
    return max(0.0, rng.gauss(n * mean, math.sqrt(n) * sd))


def _shares(rng: random.Random, n: int, skew: float) -> list[float]:
    raw = [rng.gammavariate(1.0, 1.0) / (i + 1) ** skew for i in range(n)]
    return [r / sum(raw) for r in raw]


def make_tenant(rng: random.Random, index: int, position: float, hours: int) -> Tenant:
    names = rng.sample(list(CATALOGUE), rng.randint(1, 3))
    models = [
        Model(m, s, CATALOGUE[m][0] / CATALOGUE[m][1], CATALOGUE[m][1])
        for m, s in zip(names, _shares(rng, len(names), 1.0), strict=True)
    ]
    n_ws = rng.randint(1, 4)
    n_users = rng.randint(2, 15)
    users = [
        (f"user-{u + 1}", s, f"ws-{rng.randint(1, n_ws)}")
        for u, s in enumerate(_shares(rng, n_users, 0.8))
    ]
    n_feat = rng.randint(1, 5)
    features = [(f"feature-{f + 1}", s) for f, s in enumerate(_shares(rng, n_feat, 0.7))]
    start = rng.choice((7, 8, 9, 10))
    t = Tenant(
        index=index,
        peak=3000.0 / position**1.1,  # Zipf: 3,000 down to ~5.6 an hour
        zone=rng.choice(ZONES),
        work=(start, start + rng.randint(8, 11)),
        night=rng.uniform(0.04, 0.35),
        weekend=rng.uniform(0.1, 0.6),
        growth=rng.gauss(0.01, 0.04),
        error_rate=math.exp(rng.uniform(math.log(0.002), math.log(0.04))),
        sigma=rng.uniform(0.5, 1.0),
        models=models,
        users=users,
        features=features,
    )
    days = [rng.lognormvariate(0.0, 0.12) for _ in range(hours // 24 + 2)]
    for i in range(hours):
        local = i + t.zone
        day, hour = divmod(local, 24)
        weekday = (day % 7) < 5
        a, b = t.work
        business = min(1.0, max(0.0, (hour - a + 2) / 2)) * min(1.0, max(0.0, (b + 2 - hour) / 3))
        level = t.night + (1 - t.night) * business
        if not weekday:
            level *= t.weekend
        level *= days[day + 1] * math.exp(t.growth * i / WEEK_H) * rng.lognormvariate(0, 0.1)
        t.levels.append(t.peak * level)
    return t


def inject(rng: random.Random, t: Tenant, hours: int, config: AnomalyConfig) -> Injection:
    kind, size = rng.choice(KINDS), rng.choice(SIZES)
    first = hours - WEEK_H
    if kind in ("level_shift", "new_model"):
        start, end = rng.randrange(first, hours - 24), hours
    else:
        span = {"spike": (1, 3), "runaway_user": (2, 8), "error_burst": (1, 4)}[kind]
        duration = rng.randint(*span)
        start = rng.randrange(first, hours - duration + 1)
        end = start + duration
    inj = Injection(kind, size, start, end)
    cost_call = sum(m.share * m.per_token * m.tokens * math.exp(t.sigma**2 / 2) for m in t.models)
    if kind == "new_model":
        k = rng.uniform(10, 30)
        share = (size - 1) / (k - 1)
        for m in t.models:
            m.share *= 1 - share  # applied from the start only, see hour()
        inj.key = "premium-model"
        t.models.append(
            Model(inj.key, share, k * cost_call / 1500 / math.exp(t.sigma**2 / 2), 1500.0)
        )
    elif kind == "runaway_user":
        inj.key = rng.choice(t.users)[0]
    for i in range(start, end):
        lam = t.levels[i]
        if kind == "error_burst":
            p = min(0.95, t.error_rate * size)
            hit = lam >= config.min_requests and p - t.error_rate >= config.error_rate_floor
        else:
            extra = lam * (size - 1)
            hit = extra * cost_call >= config.cost_floor
            hit = hit or (kind != "new_model" and extra >= config.requests_floor)
        inj.pageable = inj.pageable or hit
    t.injection = inj
    return inj


@dataclass
class HourData:
    figures: HourFigures
    by_model: dict[str, float]
    extra_cost: float  # a runaway user's calls


def simulate(rng: random.Random, t: Tenant, hours: int) -> list[HourData]:
    inj = t.injection
    new_model = inj.key if inj and inj.kind == "new_model" else ""
    out = []
    for i in range(hours):
        lam = t.levels[i]
        rate = t.error_rate
        active = inj is not None and inj.start <= i < inj.end
        if active and inj is not None:
            if inj.kind in ("spike", "level_shift"):
                lam *= inj.size
            elif inj.kind == "error_burst":
                rate = min(0.95, rate * inj.size)
        extra = lam * (inj.size - 1) if active and inj and inj.kind == "runaway_user" else 0.0
        n_all = err_all = 0
        tok_all = cost_all = extra_cost = 0.0
        by_model: dict[str, float] = {}
        new_share = next((m.share for m in t.models if m.name == new_model), 0.0)
        for m in t.models:
            share = m.share
            if new_model and inj is not None and i < inj.start:
                share = 0.0 if m.name == new_model else share / (1 - new_share)
            for part, is_extra in ((lam * share, False), (extra * share, True)):
                n = _poisson(rng, part)
                if not n:
                    continue
                tok = _tokens(rng, n, m.tokens, t.sigma)
                cost = tok * m.per_token
                n_all += n
                err_all += _binomial(rng, n, rate)
                tok_all += tok
                cost_all += cost
                by_model[m.name] = by_model.get(m.name, 0.0) + cost
                if is_extra:
                    extra_cost += cost
        figures = HourFigures(n_all, err_all, round(tok_all), Decimal(f"{cost_all:.6f}"))
        out.append(HourData(figures, by_model, extra_cost))
    return out


def breakdown(seed: int, t: Tenant, i: int, d: HourData) -> dict[str, dict[str, float]]:
    """Cost by dimension in one hour: by model as simulated; by user, workspace and feature
    split (the calls' proportions drawn around the shares), the runaway user's calls its."""
    rng = random.Random(seed * 1_000_003 + t.index * 10_007 + i)
    n = max(1, d.figures.requests)
    base = sum(d.by_model.values()) - d.extra_cost

    def split(shares: Sequence[float]) -> list[float]:
        g = [rng.gammavariate(max(n * s, 1e-3), 1.0) for s in shares]
        return [base * x / sum(g) for x in g]

    users = dict(zip([u[0] for u in t.users], split([u[1] for u in t.users]), strict=True))
    inj = t.injection
    if d.extra_cost and inj is not None:
        users[inj.key] += d.extra_cost
    workspaces: dict[str, float] = {}
    for name, _, ws in t.users:
        workspaces[ws] = workspaces.get(ws, 0.0) + users[name]
    feats = split([f[1] for f in t.features])
    features = {f[0]: c + d.extra_cost * f[1] for f, c in zip(t.features, feats, strict=True)}
    return {"model": d.by_model, "feature": features, "user": users, "workspace": workspaces}


@dataclass
class Outcome:
    injection: Injection | None
    peak: float  # the tenant's expected requests in a busy hour
    flagged: dict[int, list[Anomaly]]
    first: int | None = None  # hour index the injection was detected
    hit: bool = False  # an event overlaps it
    false_events: int = 0
    explained: bool | None = None


def evaluate(
    seed: int, t: Tenant, data: list[HourData], config: AnomalyConfig
) -> tuple[Outcome, float, int]:
    history = {
        START + timedelta(hours=i): d.figures for i, d in enumerate(data) if d.figures.requests
    }
    hours = len(data)
    out = Outcome(t.injection, t.peak, {})
    began = time.perf_counter()
    for i in range(hours - WEEK_H, hours):
        found = detect(history, START + timedelta(hours=i), config)
        if found:
            out.flagged[i] = found
    spent = time.perf_counter() - began
    inj = t.injection
    # events: runs of consecutive flagged hours
    run_start: int | None = None
    for i in range(hours - WEEK_H, hours + 1):
        if i in out.flagged:
            run_start = i if run_start is None else run_start
            continue
        if run_start is not None:
            if inj is not None and run_start < inj.end and i > inj.start:
                out.hit = True
            else:
                out.false_events += 1
            run_start = None
    if inj is not None:
        for i in range(inj.start, inj.end):
            if any(a.metric in METRICS[inj.kind] for a in out.flagged.get(i, [])):
                out.first = i
                break
        if out.first is not None and inj.kind in ("new_model", "runaway_user"):
            now = breakdown(seed, t, out.first, data[out.first])
            hour = START + timedelta(hours=out.first)
            idx = [(h - START) // timedelta(hours=1) for h in baseline_hours(hour, config)]
            idx = [j for j in idx if j >= 0]  # within the history
            before: dict[str, dict[str, float]] = {}
            for j in idx:
                for dim, keys in breakdown(seed, t, j, data[j]).items():
                    for key, cost in keys.items():
                        before.setdefault(dim, {})
                        before[dim][key] = before[dim].get(key, 0.0) + cost / len(idx)
            driver = explain(now, before)
            out.explained = driver is not None and driver.key == inj.key
    return out, spent, WEEK_H


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=600)
    parser.add_argument("--weeks", type=int, default=4, help="weeks of history (>= 2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--injected", type=float, default=0.6, help="share of tenants")
    parser.add_argument("--threshold", type=float, default=DEFAULT.threshold)
    parser.add_argument("--min-ratio", type=float, default=DEFAULT.min_ratio)
    parser.add_argument("--cost-floor", type=float, default=DEFAULT.cost_floor)
    parser.add_argument("--requests-floor", type=float, default=DEFAULT.requests_floor)
    args = parser.parse_args(argv)
    config = AnomalyConfig(
        threshold=args.threshold,
        min_ratio=args.min_ratio,
        cost_floor=args.cost_floor,
        requests_floor=args.requests_floor,
    )
    hours = (args.weeks + 1) * WEEK_H
    rng = random.Random(args.seed)
    ranks = list(range(1, args.tenants + 1))
    rng.shuffle(ranks)
    began = time.perf_counter()
    outcomes: list[Outcome] = []
    detect_s = 0.0
    evaluated = 0
    for index, rank in enumerate(ranks):
        position = 1 + 299 * (rank - 1) / max(1, args.tenants - 1)  # as ranks 1-300
        t = make_tenant(rng, index, position, hours)
        if rng.random() < args.injected:
            inject(rng, t, hours, config)
        data = simulate(rng, t, hours)
        outcome, spent, n = evaluate(args.seed, t, data, config)
        outcomes.append(outcome)
        detect_s += spent
        evaluated += n
    report(outcomes, args, detect_s, evaluated, time.perf_counter() - began)
    return 0


def _found(group: Sequence[Outcome]) -> str:
    """detected/injected (detected/injected above the floors)"""
    up = [o for o in group if o.injection and o.injection.pageable]
    det = sum(o.first is not None for o in group)
    det_up = sum(o.first is not None for o in up)
    return f"{det}/{len(group)} ({det_up}/{len(up)})"


def _recall(group: Sequence[Outcome]) -> float:
    return sum(o.first is not None for o in group) / len(group) if group else 0.0


def report(
    outcomes: list[Outcome],
    args: argparse.Namespace,
    detect_s: float,
    evaluated: int,
    total_s: float,
) -> None:
    injected = [o for o in outcomes if o.injection is not None]

    def sized(lo: float, hi: float, kind: str = "") -> list[Outcome]:
        return [
            o
            for o in injected
            if o.injection and lo <= o.injection.size < hi and kind in ("", o.injection.kind)
        ]

    print(
        f"{args.tenants} tenants, {args.weeks} weeks of history + 1 evaluated, seed {args.seed}:"
        f" {len(injected)} injections, {len(outcomes) - len(injected)} tenants without\n"
    )
    print("recall by kind x size: detected/injected (detected/injected above the floors)")
    print(f"{'':12}" + "".join(f"{f'{s:g}x':>15}" for s in SIZES) + f"{'>= 3x':>16}")
    for kind in KINDS:
        cells = [_found(sized(size, size + 0.01, kind)) for size in SIZES]
        print(f"{kind:12}" + "".join(f"{c:>15}" for c in cells), end="")
        print(f"{_found(sized(3, math.inf, kind)):>16}")
    print()
    for label, lo, hi in (("< 3x ", 0.0, 3.0), (">= 3x", 3.0, math.inf)):
        group = sized(lo, hi)
        up = [o for o in group if o.injection and o.injection.pageable]
        delays = [
            float(o.first - o.injection.start) for o in group if o.injection and o.first is not None
        ]
        delay = f"median {pct(delays, 0.5):.0f} h, p90 {pct(delays, 0.9):.0f} h" if delays else "-"
        print(
            f"recall {label}: {_recall(up):.2f} above the floors, {_recall(group):.2f} of all"
            f" {_found(group)}; delay {delay}"
        )
    print("recall >= 3x by tenant size (requests in a busy hour):", end="")
    for lo, hi in ((0, 20), (20, 100), (100, 500), (500, math.inf)):
        group = [o for o in sized(3, math.inf) if lo <= o.peak < hi]
        det = sum(o.first is not None for o in group)
        print(f"  {lo}-{hi if hi < math.inf else ''}: {det}/{len(group)}", end="")
    print()
    explained = [o.explained for o in injected if o.explained is not None]
    print(
        f"explanation  : {sum(explained)}/{len(explained)} detected new-model and runaway-user"
        " injections name the injected key"
    )
    hits = sum(o.hit for o in injected)
    false = sum(o.false_events for o in outcomes)
    false_neg = sum(o.false_events for o in outcomes if o.injection is None)
    precision = hits / (hits + false) if hits + false else 1.0
    print(
        f"precision    : {precision:.3f} ({hits} injections hit, {false} false events,"
        f" {false_neg} of them on the {len(outcomes) - len(injected)} tenants without)"
    )
    big = sized(3, math.inf)
    recall_up = _recall([o for o in big if o.injection and o.injection.pageable])
    ok_p = "ok" if precision >= 0.9 else "MISSED"
    ok_r = "ok" if recall_up >= 0.8 else "MISSED"
    print(
        f"\nheadline: precision {precision:.2f} (goal >= 0.9 {ok_p}); recall >= 3x"
        f" {recall_up:.2f} above the floors (goal >= 0.8 {ok_r}), {_recall(big):.2f} of all"
    )
    print(
        f"runtime : detect {detect_s / evaluated * 1e6:.0f} us per tenant-hour"
        f" ({evaluated} tenant-hours); whole run {total_s:.1f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
