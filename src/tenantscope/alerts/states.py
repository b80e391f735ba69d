"""How one rule instance moves between states on each evaluation (pure: no I/O).

    ok ──breach──► pending ──held for `pending`──► firing ──clear (after keep_firing)──► ok
     ▲  ▲                                           │                                  (resolved)
     │  └──────────── clear ◄── warning ◄── warning threshold crossed
     └── no_data (fewer requests than min_requests, or nothing to measure)

Notifications go out when an instance starts firing, resolves, crosses the warning
threshold, or loses its data while firing (``no_data``); a pending breach that clears
before the pending period sends nothing. Being silenced changes states as usual and only
keeps notifications from being sent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from tenantscope.alerts.rules import breaches
from tenantscope.storage.alert_state import AlertInstance, AlertRule


@dataclass(frozen=True, slots=True)
class Step:
    instance: AlertInstance  # the instance after this evaluation
    # the notification event this evaluation sends (None: none), and the state change
    notify: str | None = None
    changed: bool = False
    note: str = ""


def step(
    rule: AlertRule,
    inst: AlertInstance,
    value: Decimal | None,
    requests: int,
    now: datetime,
) -> Step:
    before = inst.state
    new = replace(inst, value=value, requests=requests, evaluated_at=now)
    notify: str | None = None
    note = ""
    if value is None:
        if before != "no_data":
            new.state, new.since, new.pending_since = "no_data", now, None
            if before == "firing":
                notify, note = "no_data", "no data while firing"
    elif breaches(value, rule.comparator, rule.threshold):
        new.last_breach_at = now
        if before == "firing":
            pass
        elif before == "pending" and inst.pending_since is not None:
            if now - inst.pending_since >= timedelta(seconds=rule.pending_s):
                new.state, new.since, new.pending_since = "firing", now, None
                notify = "firing"
        elif rule.pending_s == 0:
            new.state, new.since, new.pending_since = "firing", now, None
            notify = "firing"
        else:
            new.state, new.since, new.pending_since = "pending", now, now
    else:
        warn = rule.warning is not None and breaches(value, rule.comparator, rule.warning)
        calm = "warning" if warn else "ok"
        if before == "firing":
            held = inst.last_breach_at is not None and now - inst.last_breach_at < timedelta(
                seconds=rule.keep_firing_s
            )
            if not held:
                new.state, new.since = calm, now
                notify, note = "resolved", "resolved"
        elif before != calm:
            new.state, new.since, new.pending_since = calm, now, None
            if calm == "warning":
                notify = "warning"
    if notify is not None:
        new.seq = inst.seq + 1
    return Step(instance=new, notify=notify, changed=new.state != before, note=note)


def silenced(rule: AlertRule, inst: AlertInstance, now: datetime) -> bool:
    return any(
        until is not None and until > now for until in (rule.silenced_until, inst.silenced_until)
    )
