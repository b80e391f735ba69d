"""Cost and usage anomalies of one tenant, hour by hour, against its own hour-of-week baseline.

Method. An hour is judged metric by metric (``ANOMALY_METRICS``: cost, requests, tokens per
request, error rate) against the same hour of the week in each of the previous ``weeks``
(4) weeks, with the ``neighbours`` (1) hours either side of it: up to 12 earlier hours,
never the hour itself nor anything after it. The expected value is their median and the
spread their MAD (x 1.4826, a standard deviation's worth), so an incident in one earlier
week of four, or a spike in one hour of twelve, moves neither. Hour of the week (in UTC)
follows each tenant's working days and weekends whatever its time zone; the neighbours
give 6 points from two weeks. Four scores on one scale, a metric's score the smallest:

- seasonal: the deviation from the median in robust standard deviations (MAD);
- noise: how far the hour's count lies in the tail of counting noise at the baseline's
  volume (the normal z of its Poisson tail, Wilson-Hilferty): requests as Poisson with
  ``requests_dispersion`` (2) times the variance (calls come in sessions), errors as
  Poisson at the baseline's error rate, cost and tokens per request as sums of calls as
  variable as the tenant's own calls were over the weeks read (at least ``call_cv``): a
  tenant mixing a $0.0004 model with a $0.02 one has a far noisier hourly cost than its
  count of calls, and five calls at three times the usual cost are no event while five
  hundred are;
- size: ``threshold * log(ratio) / log(min_ratio)``, so a change of ``min_ratio`` (2.5x,
  or down to 1/2.5) scores the threshold;
- floor: ``threshold * |deviation| / floor`` for the metric's absolute floor.

Defaults, and why. A metric is an anomaly from a score of ``threshold`` (5): with one
tenant judged on four metrics every hour, rarer than one in 10^5 by noise is still a few
false pages a week over hundreds of tenants. ``min_ratio`` 2.5: in the benchmark's traffic
(bench/anomaly.py) a busy hour of a busy day reaches 2x its seasonal median, and at 2.0
false events went from 10 to 31 over four runs without finding more 3x anomalies. Floors:
$1 an hour of cost (one 100k-token prompt to a frontier model can cost that much), 20
requests an hour, 500 tokens per request and 2 points of error rate; tokens per request and
error rate are judged only in an hour of at least ``min_requests`` (20) calls, and error
rate only upwards. So a tenant going from $0.01 to $0.04, or from 1 to 3 requests, never
pages whatever the ratio. ``score`` is the largest metric score of the hour, for alert
rules to compare with the threshold.

Minimum history: the same hour ``min_weeks`` (2) weeks before must be within the history
(which starts at its earliest hour; hours without a row after that are zero): every hour
of the week seen twice, so a Monday morning is never judged against a Sunday night, and
no single earlier hour sets the baseline (6 points; an odd week still pulls the median
halfway, from 3 weeks on it is outvoted). The benchmark meets its goals with 2 weeks.
With less, ``detect`` finds nothing and ``score`` is None.

``explain`` names what drove an anomaly: the key of a dimension (model, feature, user,
workspace) whose share of the cost (or requests) moved most in the anomaly's direction.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal

# one tenant's counted LLM calls in one hour (an hour without a row is all zero), as the
# query layer reads them from the rollups
from tenantscope.query.windows import HourFigures

Direction = Literal["up", "down"]
ANOMALY_METRICS: tuple[str, ...] = ("cost", "requests", "tokens_per_request", "error_rate")
EXPLAIN_DIMENSIONS: tuple[str, ...] = ("model", "feature", "user", "workspace")
HOUR = timedelta(hours=1)
WEEK = timedelta(weeks=1)
MAD_TO_SD = 1.4826  # a normal distribution's standard deviation per MAD
_INF = math.inf


@dataclass(frozen=True)
class AnomalyConfig:
    weeks: int = 4  # weeks of history the baseline reads
    min_weeks: int = 2  # the same hour this many weeks before must be in the history
    neighbours: int = 1  # hours on either side of the same hour, in each week
    threshold: float = 5.0  # score from which a metric is an anomaly
    min_ratio: float = 2.5  # the least change (up, or down to 1/min_ratio) that pages
    cost_floor: float = 1.0  # USD per hour
    requests_floor: float = 20.0  # requests per hour
    tokens_per_request_floor: float = 500.0  # tokens per request
    error_rate_floor: float = 0.02  # share of calls failed
    min_requests: int = 20  # calls in the hour for tokens per request and error rate
    requests_dispersion: float = 2.0  # hourly requests' variance / mean beyond seasonality
    call_cv: float = 1.0  # the least one call's cost (tokens) varies: std dev / mean

    def __post_init__(self) -> None:
        if not 1 <= self.min_weeks <= self.weeks:
            raise ValueError("need 1 <= min_weeks <= weeks")
        if not 0 <= self.neighbours < 84:
            raise ValueError("need 0 <= neighbours < 84")
        if self.threshold <= 0 or self.min_ratio <= 1:
            raise ValueError("need threshold > 0 and min_ratio > 1")
        if min(self.cost_floor, self.requests_floor, self.tokens_per_request_floor) <= 0:
            raise ValueError("floors must be > 0")
        if self.error_rate_floor <= 0 or self.min_requests < 1:
            raise ValueError("need error_rate_floor > 0 and min_requests >= 1")
        if self.requests_dispersion < 1 or self.call_cv < 0:
            raise ValueError("need requests_dispersion >= 1 and call_cv >= 0")


DEFAULT = AnomalyConfig()


@dataclass(frozen=True)
class Anomaly:
    metric: str  # one of ANOMALY_METRICS
    hour: datetime
    actual: float
    expected: float  # the baseline's median
    score: float  # >= the config's threshold
    ratio: float | None  # actual / expected; None when expected is 0
    direction: Direction


@dataclass(frozen=True)
class Driver:
    """The key that drove a change: its share of the total before (baseline) and now, and
    its own change (now - before, in the units given)."""

    dimension: str
    key: str
    share_before: float
    share_now: float
    delta: float


def baseline_hours(hour: datetime, config: AnomalyConfig = DEFAULT) -> list[datetime]:
    """The earlier hours an hour is compared with (same hour of the week and its
    neighbours, in each of the previous ``weeks`` weeks), for ``explain``'s baseline too."""
    hour = _utc_hour(hour)
    n = config.neighbours
    return [
        hour - w * WEEK + d * HOUR for w in range(1, config.weeks + 1) for d in range(-n, n + 1)
    ]


def detect(
    history: Mapping[datetime, HourFigures], hour: datetime, config: AnomalyConfig = DEFAULT
) -> list[Anomaly]:
    """The metrics of ``hour`` that are anomalies for this tenant (largest score first);
    empty without the minimum history."""
    found = [a for a in _assess(history, hour, config) or [] if a.score >= config.threshold]
    return sorted(found, key=lambda a: -a.score)


def score(
    history: Mapping[datetime, HourFigures], hour: datetime, config: AnomalyConfig = DEFAULT
) -> float | None:
    """The hour's anomaly score (the largest among its metrics, 0 when nothing moved;
    anomalies from ``config.threshold``); None without the minimum history."""
    assessed = _assess(history, hour, config)
    if assessed is None:
        return None
    return max((a.score for a in assessed), default=0.0)


def explain(
    current: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]],
    min_share_change: float = 0.05,
) -> Driver | None:
    """What drove a change: ``current`` and ``baseline`` map a dimension ("model",
    "feature", "user", "workspace") to key -> cost (or requests) in the anomalous hour and
    in an average baseline hour. Within each dimension shares are of that dimension's
    total. The driver is the key whose share moved most in the direction the total moved
    (rose most when the total rose, fell most when it fell): a new model or a runaway user
    gains share while a tenant that grows evenly changes no share. A workspace moves with
    the user in it that drove the change (nearly as much when that user is most of it), so
    it is named only when its share moved 5 points more than any user's, model's or
    feature's. Ties go to the larger own change, then to the first dimension given. None
    when no share moved by ``min_share_change`` (the change is even across keys) or there
    is nothing to compare."""
    best: tuple[float, float] | None = None
    driver: Driver | None = None
    for dimension in dict.fromkeys([*current, *baseline]):
        now_keys = current.get(dimension, {})
        before_keys = baseline.get(dimension, {})
        total_now = sum(now_keys.values())
        total_before = sum(before_keys.values())
        if total_now <= 0 and total_before <= 0:
            continue
        sign = 1.0 if total_now >= total_before else -1.0
        handicap = _COARSE.get(dimension, 0.0)
        for key in sorted(set(now_keys) | set(before_keys)):
            now = now_keys.get(key, 0.0)
            before = before_keys.get(key, 0.0)
            share_now = now / total_now if total_now > 0 else 0.0
            share_before = before / total_before if total_before > 0 else 0.0
            moved = sign * (share_now - share_before)
            rank = (moved - handicap, sign * (now - before))
            if moved >= min_share_change and (best is None or rank > best):
                best = rank
                driver = Driver(dimension, key, share_before, share_now, now - before)
    return driver


_COARSE = {"workspace": 0.05}  # dimensions holding another's keys: share points they yield


# -- the assessment -------------------------------------------------------------------------


def _utc_hour(hour: datetime) -> datetime:
    """The hour in UTC (so weeks back are 168 hours whatever the zone's daylight saving)."""
    if hour.tzinfo is None or hour.utcoffset() is None:
        raise ValueError("hour must be an aware datetime")
    if (hour.minute, hour.second, hour.microsecond) != (0, 0, 0):
        raise ValueError("hour must be the start of an hour")
    return hour.astimezone(timezone.utc)


_ZERO = HourFigures(0, 0, 0, Decimal(0))


def _assess(
    history: Mapping[datetime, HourFigures], hour: datetime, config: AnomalyConfig
) -> list[Anomaly] | None:
    """Every metric of the hour that can be judged, each with its score (also below the
    threshold); None without the minimum history."""
    hour = _utc_hour(hour)
    hours = baseline_hours(hour, config)
    if not history:
        return None
    start = min(history)
    if hour - config.min_weeks * WEEK < start:
        return None
    base = [history.get(h, _ZERO) for h in hours if h >= start]
    now = history.get(hour, _ZERO)
    out: list[Anomaly] = []

    # requests: Poisson with dispersion
    reqs = [float(f.requests) for f in base]
    exp_n = statistics.median(reqs)
    lam = max(exp_n, statistics.fmean(reqs), 0.5) / config.requests_dispersion
    noise = _poisson_z(now.requests / config.requests_dispersion, lam)
    out.append(_judge("requests", hour, now.requests, reqs, noise, config.requests_floor, config))

    # cost: a sum of calls whose cost varies as the tenant's calls did (quasi-Poisson)
    cost_phi, tokens_phi = _dispersions(history, hour - config.weeks * WEEK, hour, config)
    costs = [float(f.cost) for f in base]
    ref = max(statistics.median(costs), statistics.fmean(costs))
    calls = max(exp_n, 1.0) / cost_phi
    actual_cost = float(now.cost)
    noise = _poisson_z(calls * actual_cost / ref, calls) if ref > 0 else _INF
    out.append(_judge("cost", hour, actual_cost, costs, noise, config.cost_floor, config))

    if now.requests >= config.min_requests:
        served = [f for f in base if f.requests > 0]
        tpr = [f.tokens / f.requests for f in served]
        actual_tpr = now.tokens / now.requests
        if tpr:
            ref = max(statistics.median(tpr), statistics.fmean(tpr))
            calls = now.requests / tokens_phi
            noise = _poisson_z(calls * actual_tpr / ref, calls) if ref > 0 else _INF
            floor = config.tokens_per_request_floor
            out.append(_judge("tokens_per_request", hour, actual_tpr, tpr, noise, floor, config))
        rates = [f.errors / f.requests for f in served]
        if rates:
            # errors as Poisson at the baseline's rate (pooled, or one error in all of it)
            total = sum(f.requests for f in served)
            p0 = max(statistics.median(rates), sum(f.errors for f in served) / total, 1 / total)
            noise = _poisson_z(now.errors, now.requests * p0)
            rate = now.errors / now.requests
            found = _judge("error_rate", hour, rate, rates, noise, config.error_rate_floor, config)
            if found.direction == "up":
                out.append(found)
    return out


def _judge(
    metric: str,
    hour: datetime,
    actual: float,
    points: list[float],
    noise: float,
    floor: float,
    config: AnomalyConfig,
) -> Anomaly:
    """One metric's score: the weakest of its seasonal, noise, size and floor scores."""
    t = config.threshold
    expected = statistics.median(points)
    dev = actual - expected
    direction: Direction = "up" if dev >= 0 else "down"
    spread = MAD_TO_SD * statistics.median(abs(p - expected) for p in points)
    seasonal = abs(dev) / spread if spread > 0 else (_INF if dev else 0.0)
    ratio = actual / expected if expected > 0 else None
    if ratio is None:
        size = _INF
    elif ratio > 0:
        size = t * abs(math.log(ratio)) / math.log(config.min_ratio)
    else:
        size = _INF  # down to nothing
    noise = noise if direction == "up" else -noise
    s = max(0.0, min(seasonal, noise, size, t * abs(dev) / floor))
    return Anomaly(metric, hour, actual, expected, s, ratio, direction)


def _dispersions(
    history: Mapping[datetime, HourFigures], since: datetime, until: datetime, config: AnomalyConfig
) -> tuple[float, float]:
    """1 + cv^2 of one call's cost and of its tokens, as the tenant's hours in the window
    show them (an hour of n calls varies n times as much as one call), at least
    ``1 + call_cv^2``: a tenant mixing a cheap model with one 50x dearer has a cost per
    call far more variable than one call's tokens."""
    least = 1.0 + config.call_cv**2
    rows = [f for h, f in history.items() if f.requests and since <= h < until]
    n = float(sum(f.requests for f in rows))
    if n == 0:
        return least, least
    nn = float(sum(f.requests * f.requests for f in rows))
    out = []
    for xs in ([float(f.cost) for f in rows], [float(f.tokens) for f in rows]):
        mean = math.fsum(xs) / n  # per call
        squares = math.fsum(x * x for x in xs)
        cross = math.fsum(f.requests * x for f, x in zip(rows, xs, strict=True))
        var = (squares - 2 * mean * cross + mean * mean * nn) / n
        out.append(max(least, 1.0 + var / (mean * mean)) if mean > 0 else least)
    return out[0], out[1]


def _poisson_z(x: float, lam: float) -> float:
    """How many standard deviations a count ``x`` is from a Poisson mean ``lam``, from its
    tail probability (Wilson-Hilferty; positive above, negative below, slightly
    conservative). Counts need not be whole (quasi-Poisson)."""
    if lam <= 0:
        return _INF if x > 0 else 0.0
    if x > lam:  # P(X >= x) = P(chi2(2x) <= 2 lam)
        return 3 * math.sqrt(x) * (1 - 1 / (9 * x) - math.pow(lam / x, 1 / 3))
    if x < lam:  # P(X <= x) = P(chi2(2x + 2) >= 2 lam)
        k = x + 1
        return min(0.0, -3 * math.sqrt(k) * (math.pow(lam / k, 1 / 3) - 1 + 1 / (9 * k)))
    return 0.0
