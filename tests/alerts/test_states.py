"""The state machine of one rule instance (alerts/states.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from tenantscope.alerts.states import silenced, step
from tenantscope.storage.alert_state import AlertInstance, AlertRule

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _rule(**given: object) -> AlertRule:
    base: dict[str, object] = {
        "id": 1,
        "name": "p95",
        "metric": "latency_p95",
        "comparator": ">",
        "threshold": Decimal(2000),
    }
    return AlertRule(**{**base, **given})  # type: ignore[arg-type]


def _run(
    rule: AlertRule, values: list[int | None], every_s: int = 60
) -> list[tuple[str, str | None]]:
    inst = AlertInstance(rule_id=1, key="apex", since=T0)
    out = []
    for n, v in enumerate(values):
        s = step(
            rule, inst, None if v is None else Decimal(v), 10, T0 + timedelta(seconds=n * every_s)
        )
        inst = s.instance
        out.append((inst.state, s.notify))
    return out


def test_a_breach_fires_at_once_without_a_pending_period_and_notifies_once() -> None:
    assert _run(_rule(), [100, 2500, 2600, 100]) == [
        ("ok", None),
        ("firing", "firing"),
        ("firing", None),
        ("ok", "resolved"),
    ]


def test_a_pending_period_must_hold_before_firing_and_a_short_breach_sends_nothing() -> None:
    rule = _rule(pending_s=120)
    assert _run(rule, [2500, 2500, 100]) == [("pending", None), ("pending", None), ("ok", None)]
    assert _run(rule, [2500, 2500, 2500])[-1] == ("firing", "firing")


def test_keep_firing_for_holds_a_firing_alert_after_it_clears() -> None:
    rule = _rule(keep_firing_s=150)
    assert [s for s, _ in _run(rule, [2500, 100, 100, 100])] == ["firing", "firing", "firing", "ok"]


def test_the_warning_threshold_warns_once_and_a_breach_still_fires() -> None:
    rule = _rule(warning=Decimal(1500))
    assert _run(rule, [1600, 1700, 2500, 1600, 100]) == [
        ("warning", "warning"),
        ("warning", None),
        ("firing", "firing"),
        ("warning", "resolved"),
        ("ok", None),
    ]


def test_below_comparators_fire_when_the_figure_drops() -> None:
    rule = _rule(metric="sla_compliance", comparator="<", threshold=Decimal(95))
    assert _run(rule, [99, 90, 97]) == [("ok", None), ("firing", "firing"), ("ok", "resolved")]


def test_no_data_while_firing_is_said_and_otherwise_quiet() -> None:
    assert _run(_rule(), [None, 2500, None, 100]) == [
        ("no_data", None),
        ("firing", "firing"),
        ("no_data", "no_data"),
        ("ok", None),
    ]


def test_each_notification_gets_the_next_sequence_number() -> None:
    rule = _rule()
    inst = AlertInstance(rule_id=1, key="apex", since=T0)
    seqs = []
    for n, v in enumerate([2500, 100, 2500]):
        inst = step(rule, inst, Decimal(v), 10, T0 + timedelta(minutes=n)).instance
        seqs.append(inst.seq)
    assert seqs == [1, 2, 3]


def test_a_silence_covers_the_rule_or_one_instance_until_its_time() -> None:
    inst = AlertInstance(rule_id=1, key="apex")
    assert not silenced(_rule(), inst, T0)
    assert silenced(_rule(silenced_until=T0 + timedelta(hours=1)), inst, T0)
    assert not silenced(_rule(silenced_until=T0 - timedelta(seconds=1)), inst, T0)
    inst.silenced_until = T0 + timedelta(minutes=5)
    assert silenced(_rule(), inst, T0)
