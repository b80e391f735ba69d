"""The anomaly detector on seeded synthetic traffic: seasonal traffic is quiet, injected
spikes, level shifts, new models and error bursts are found, tiny tenants never page,
minimum history, the hour never in its own baseline, and explain's driver."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tenantscope.alerts.anomaly import (
    DEFAULT,
    AnomalyConfig,
    Driver,
    HourFigures,
    baseline_hours,
    detect,
    explain,
    score,
)

START = datetime(2026, 3, 2, tzinfo=timezone.utc)  # a Monday
H = timedelta(hours=1)
WEEK_H = 168
History = dict[datetime, HourFigures]


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 40:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def expected(i: int, peak: float, zone: int = 0, weekend: float = 0.3) -> float:
    """Requests expected in hour i: working hours 9-18 local, quiet nights and weekends."""
    day, hour = divmod(i + zone, 24)
    level = 1.0 if 9 <= hour < 18 else 0.1
    return peak * level * (weekend if day % 7 >= 5 else 1.0)


def traffic(
    weeks: int,
    peak: float,
    seed: int,
    *,
    zone: int = 0,
    weekend: float = 0.3,
    cost_call: float = 0.004,
    error_rate: float = 0.01,
) -> History:
    """Poisson requests, lognormal (sigma 0.7) cost and tokens per call; no zero rows."""
    rng = random.Random(seed)
    out: History = {}
    for i in range(weeks * WEEK_H):
        n = _poisson(rng, expected(i, peak, zone, weekend))
        if n:
            out[START + i * H] = make(rng, n, cost_call, error_rate)
    return out


def make(rng: random.Random, n: int, cost_call: float, error_rate: float = 0.01) -> HourFigures:
    draws = [rng.lognormvariate(0.0, 0.7) for _ in range(min(n, 200))]
    factor = sum(draws) / len(draws) if draws else 0.0
    errors = sum(rng.random() < error_rate for _ in range(n))
    cost = Decimal(f"{n * factor * cost_call:.6f}")
    return HourFigures(n, errors, round(n * factor * 1000), cost)


def scaled(f: HourFigures, k: float) -> HourFigures:
    return HourFigures(
        round(f.requests * k), round(f.errors * k), round(f.tokens * k), f.cost * Decimal(k)
    )


def hours_of_week(week: int) -> list[datetime]:
    return [START + (week * WEEK_H + i) * H for i in range(WEEK_H)]


def busy_hour(week: int) -> datetime:
    return START + (week * WEEK_H + 2 * 24 + 11) * H  # Wednesday 11:00 UTC


def test_seasonal_traffic_has_no_anomaly() -> None:
    for seed, peak in ((1, 300.0), (2, 60.0), (3, 2000.0)):
        history = traffic(5, peak, seed)
        flagged = [a for h in hours_of_week(4) for a in detect(history, h)]
        assert flagged == [], (seed, flagged)
        scores = [score(history, h) for h in hours_of_week(4)]
        assert all(s is not None and s < DEFAULT.threshold for s in scores)


def test_weekends_and_time_zones_are_seasonal_not_anomalies() -> None:
    # a tenant 9 hours ahead of UTC, with weekends at 5% of weekdays: Monday's morning
    # starts on Sunday in UTC, and must not look like a jump from the weekend
    history = traffic(5, 400.0, 4, zone=9, weekend=0.05)
    for h in hours_of_week(4):
        assert detect(history, h) == [], h
    # the same Monday morning judged against the day before would be a 20x jump
    monday = START + (4 * WEEK_H + 10 - 9) * H  # 10:00 local on Monday, 01:00 UTC
    assert history[monday].requests > 10 * history[monday - 24 * H].requests


def test_a_5x_spike_is_found() -> None:
    history = traffic(5, 300.0, 5)
    hour = busy_hour(4)
    history[hour] = scaled(history[hour], 5)
    found = {a.metric: a for a in detect(history, hour)}
    assert set(found) == {"requests", "cost"}
    req = found["requests"]
    assert req.direction == "up" and req.hour == hour
    assert req.ratio is not None and 4 < req.ratio < 6
    assert req.score >= DEFAULT.threshold
    assert abs(req.expected - 300) < 30
    # the hours around it are quiet
    assert detect(history, hour - H) == [] and detect(history, hour + H) == []
    # and a bigger spike scores higher
    s5 = score(history, hour)
    history[hour] = scaled(history[hour], 2)
    s10 = score(history, hour)
    assert s5 is not None and s10 is not None and s10 > s5 >= DEFAULT.threshold


def test_a_level_shift_is_found_at_its_first_hour() -> None:
    history = traffic(5, 200.0, 6)
    first = busy_hour(4) - 2 * H  # Wednesday 09:00
    for h in hours_of_week(4):
        if h >= first and h in history:
            history[h] = scaled(history[h], 3)
    assert detect(history, first - H) == []
    assert {a.metric for a in detect(history, first)} >= {"requests", "cost"}
    # it stays anomalous through the working day
    assert all(detect(history, first + k * H) for k in range(9))


def test_changes_under_the_minimum_ratio_do_not_page() -> None:
    # a large tenant's 1.8x hour is far beyond noise and the floors, but not 2.5x
    history = traffic(5, 2000.0, 15)
    hour = busy_hour(4)
    history[hour] = scaled(history[hour], 1.8)
    assert detect(history, hour) == []
    s = score(history, hour)
    assert s is not None and 3 < s < DEFAULT.threshold  # log(1.8) / log(2.5) of the way
    assert {a.metric for a in detect(history, hour, replace(DEFAULT, min_ratio=1.5))} == {
        "requests",
        "cost",
    }


def test_a_new_expensive_model_is_found_on_cost_alone() -> None:
    history = traffic(5, 300.0, 7)
    hour = busy_hour(4)
    f = history[hour]
    history[hour] = HourFigures(f.requests, f.errors, f.tokens, f.cost * 5)
    assert [a.metric for a in detect(history, hour)] == ["cost"]


def test_cost_noise_is_the_tenants_own() -> None:
    # 20 calls every hour; tenant A's calls cost $0.025 each, tenant B's $0.0004 but for
    # about one call in twenty at $0.50 (a huge prompt). The hours compared with happen to
    # cost the same for both ($0.50); then an hour of $2.00 (B: four dear calls).
    hour = busy_hour(4)
    rng = random.Random(16)
    steady: History = {}
    lumpy: History = {}
    for i in range(5 * WEEK_H):
        h = START + i * H
        steady[h] = HourFigures(20, 0, 20_000, Decimal("0.5"))
        dear = 1 if h in baseline_hours(hour) else _poisson(rng, 1.0)
        lumpy[h] = HourFigures(20, 0, 20_000, Decimal("0.5") * dear + Decimal("0.0004") * 20)
    steady[hour] = HourFigures(20, 0, 20_000, Decimal("2.0"))
    lumpy[hour] = HourFigures(20, 0, 20_000, Decimal("2.0") + Decimal("0.0004") * 16)
    assert [a.metric for a in detect(steady, hour)] == ["cost"]  # a dearer model
    assert detect(lumpy, hour) == []  # three more dear calls than usual: noise


def test_a_drop_to_nothing_is_found_down() -> None:
    history = traffic(5, 300.0, 8)
    hour = busy_hour(4)
    del history[hour]  # no row: a silent hour
    found = {a.metric: a for a in detect(history, hour)}
    assert set(found) == {"requests", "cost"}
    assert found["requests"].direction == "down" and found["requests"].actual == 0
    assert found["requests"].ratio == 0


def test_error_bursts_need_calls_to_show() -> None:
    big = traffic(5, 500.0, 9)
    hour = busy_hour(4)
    f = big[hour]
    big[hour] = HourFigures(f.requests, f.requests // 10, f.tokens, f.cost)  # 1% -> 10%
    assert [a.metric for a in detect(big, hour)] == ["error_rate"]
    # 3 errors in 30 calls of a tenant at 1%: not beyond noise
    small = traffic(5, 30.0, 9)
    f = small[hour]
    small[hour] = HourFigures(30, 3, f.tokens, f.cost)
    assert detect(small, hour) == []
    # errors going away is no anomaly, even from 20%
    flaky = traffic(5, 500.0, 9, error_rate=0.2)
    f = flaky[hour]
    flaky[hour] = HourFigures(f.requests, 0, f.tokens, f.cost)
    assert detect(flaky, hour) == []
    flaky[hour] = HourFigures(f.requests, f.requests // 2, f.tokens, f.cost)  # 20% -> 50%
    assert [a.metric for a in detect(flaky, hour)] == ["error_rate"]


def test_tiny_tenants_under_the_floors_never_page() -> None:
    rng = random.Random(10)
    history = traffic(5, 2.0, 10, cost_call=0.005)
    # every hour of the last week multiplied 1x-5x at random (2 requests and $0.02 an
    # hour at most, 10 and $0.10 now): still under the floors
    for h in hours_of_week(4):
        k = rng.choice((1, 3, 5))
        n = _poisson(rng, expected(h.hour + 24 * h.weekday(), 2.0) * k)
        history[h] = make(rng, n, 0.005) if n else HourFigures(0, 0, 0, Decimal(0))
        assert detect(history, h) == [], (h, history[h])
    # $0.01 -> $0.04 and 1 -> 3 requests, the same hour every week before
    quiet: History = {START + w * WEEK_H * H: make(rng, 1, 0.01) for w in range(4)}
    hour = START + 4 * WEEK_H * H
    quiet[hour] = HourFigures(3, 1, 3000, Decimal("0.04"))
    assert detect(quiet, hour) == []
    s = score(quiet, hour)
    assert s is not None and s < DEFAULT.threshold


def test_not_enough_history_finds_nothing() -> None:
    history = traffic(3, 300.0, 11)
    first = min(history)
    early = first + 13 * 24 * H  # 13 days of history
    history[early] = scaled(history.get(early, make(random.Random(1), 300, 0.004)), 10)
    assert detect(history, early) == []
    assert score(history, early) is None
    assert score({}, early) is None
    enough = first + 14 * 24 * H
    assert score(history, enough) is not None
    # the minimum is the config's
    assert score(history, enough, replace(DEFAULT, min_weeks=3)) is None


def test_the_hour_is_never_in_its_own_baseline() -> None:
    hour = busy_hour(4)
    hours = baseline_hours(hour)
    assert hour not in hours and all(h < hour for h in hours)
    assert len(hours) == 12 and len(set(hours)) == 12
    assert {h.weekday() for h in hours} == {hour.weekday()}
    history = traffic(6, 300.0, 12)
    normal = {a.metric: a for a in detect(history, hour)}
    assert normal == {}
    expected_before = score(history, hour)
    history[hour] = scaled(history[hour], 8)
    spiked = {a.metric: a for a in detect(history, hour)}
    # the spike's own value does not move what it is compared with
    quiet = traffic(6, 300.0, 12)
    quiet.pop(hour)
    baseline_requests = sorted(float(quiet.get(h, HourFigures(0, 0, 0, Decimal(0))).requests)
                               for h in hours)  # fmt: skip
    mid = (baseline_requests[5] + baseline_requests[6]) / 2
    assert spiked["requests"].expected == mid
    # nor does anything after it (a later spike, a whole later week)
    for k in range(1, 24 * 7 + 1):
        if hour + k * H in history:
            history[hour + k * H] = scaled(history[hour + k * H], 20)
    assert {a.metric: a for a in detect(history, hour)} == spiked
    assert expected_before is not None and expected_before < DEFAULT.threshold


def test_earlier_anomalies_do_not_poison_the_baseline() -> None:
    history = traffic(5, 300.0, 13)
    hour = busy_hour(4)
    # the same hour a week before was a 10x incident: the median of 12 ignores it
    history[hour - WEEK_H * H] = scaled(history[hour - WEEK_H * H], 10)
    history[hour] = scaled(history[hour], 5)
    found = {a.metric: a for a in detect(history, hour)}
    assert "requests" in found and abs(found["requests"].expected - 300) < 40


def test_any_time_zone_gives_the_same_answer() -> None:
    history = traffic(5, 300.0, 14)
    hour = busy_hour(4)
    history[hour] = scaled(history[hour], 5)
    paris = hour.astimezone(ZoneInfo("Europe/Paris"))  # DST starts within the weeks read
    assert detect(history, paris) == detect(history, hour)
    assert detect(history, paris)[0].hour.tzinfo == timezone.utc
    with pytest.raises(ValueError):
        detect(history, hour.replace(tzinfo=None))
    with pytest.raises(ValueError):
        detect(history, hour + timedelta(minutes=30))


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        AnomalyConfig(weeks=2, min_weeks=3)
    with pytest.raises(ValueError):
        AnomalyConfig(min_ratio=1.0)
    with pytest.raises(ValueError):
        AnomalyConfig(cost_floor=0)


def test_explain_names_the_new_model() -> None:
    baseline = {
        "model": {"mid-model": 1.0, "small-model": 0.1},
        "user": {"ann": 0.5, "bob": 0.4, "cy": 0.2},
        "workspace": {"ws-1": 0.9, "ws-2": 0.2},
        "feature": {"chat": 0.8, "search": 0.3},
    }
    current = {
        "model": {"mid-model": 1.0, "small-model": 0.1, "premium-model": 4.4},
        "user": {"ann": 2.7, "bob": 2.2, "cy": 0.6},
        "workspace": {"ws-1": 4.7, "ws-2": 0.8},
        "feature": {"chat": 4.3, "search": 1.2},
    }
    d = explain(current, baseline)
    assert d is not None and (d.dimension, d.key) == ("model", "premium-model")
    assert d.share_before == 0 and d.share_now == pytest.approx(0.8)
    assert d.delta == pytest.approx(4.4)


def test_explain_names_the_runaway_user_not_its_workspace() -> None:
    baseline = {
        "model": {"mid-model": 1.0, "small-model": 0.2},
        "user": {"ann": 0.5, "bob": 0.4, "cy": 0.3},
        "workspace": {"ws-1": 0.9, "ws-2": 0.3},  # ann and bob in ws-1
    }
    current = {
        "model": {"mid-model": 3.6, "small-model": 0.7},
        "user": {"ann": 0.5, "bob": 3.5, "cy": 0.3},
        "workspace": {"ws-1": 4.0, "ws-2": 0.3},
    }
    d = explain(current, baseline)
    assert d == Driver("user", "bob", pytest.approx(1 / 3), pytest.approx(3.5 / 4.3), 3.1)


def test_explain_prefers_the_user_to_a_workspace_it_nearly_fills() -> None:
    # bob is most of ws-2; with dora's own noise ws-2's share rose a little more than his
    baseline = {
        "user": {"ann": 0.5, "bob": 0.1, "dora": 0.01},
        "workspace": {"ws-1": 0.5, "ws-2": 0.11},
    }
    current = {
        "user": {"ann": 0.5, "bob": 1.0, "dora": 0.05},
        "workspace": {"ws-1": 0.5, "ws-2": 1.05},
    }
    d = explain(current, baseline)
    assert d is not None and (d.dimension, d.key) == ("user", "bob")
    # a workspace whose users all grew is named
    grown = {
        "user": {"ann": 0.5, "bob": 0.3, "dora": 0.3},
        "workspace": {"ws-1": 0.5, "ws-2": 0.6},
    }
    d = explain(grown, baseline)
    assert d is not None and (d.dimension, d.key) == ("workspace", "ws-2")


def test_explain_even_growth_has_no_driver_and_drops_name_what_fell() -> None:
    baseline = {"model": {"a": 1.0, "b": 0.5}, "user": {"u": 1.0, "v": 0.5}}
    even = {"model": {"a": 3.0, "b": 1.5}, "user": {"u": 3.1, "v": 1.4}}
    assert explain(even, baseline) is None
    assert explain({}, {}) is None
    gone = {"model": {"a": 0.1, "b": 0.5}, "user": {"u": 0.4, "v": 0.2}}
    d = explain(gone, baseline)
    assert d is not None and (d.dimension, d.key) == ("model", "a") and d.delta < 0
