"""The alert evaluator: inside ``tenantscope serve``, one per config store (a lease), it
evaluates each enabled rule every ``interval`` on the query layer's figures, stores each
instance's state, history and notifications in one transaction, and hands notifications
to the delivery thread (``alerts/delivery.py``).

Restarts send nothing twice: a state change and its notifications are stored together,
and an instance already firing does not notify again. Two servers sharing a config store
evaluate once: the one holding the lease evaluates (and delivers), the other waits to
take over when the lease runs out.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from tenantscope.alerts import values
from tenantscope.alerts.notifications import Notification
from tenantscope.alerts.rules import METRICS, condition_text, format_duration, format_value
from tenantscope.alerts.states import silenced, step
from tenantscope.query.params import TimeRange
from tenantscope.query.queries import Queries
from tenantscope.storage.alert_state import AlertInstance, AlertRule, HistoryEntry, OutboxItem
from tenantscope.storage.base import ConfigStore

log = logging.getLogger("tenantscope.alerts")
LEASE = "alerts-evaluator"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(slots=True)
class RoundReport:
    rules: int = 0
    instances: int = 0
    notifications: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


class Evaluator:
    def __init__(
        self,
        queries: Queries,
        config: ConfigStore,
        *,
        dashboard_url: str = "",
        tick_s: float = 1.0,
        lease_ttl_s: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
        holder: str | None = None,
    ) -> None:
        self.queries = queries
        self.config = config
        self.store = config.alerts
        self.dashboard_url = dashboard_url.rstrip("/")
        self.tick_s = tick_s
        self.lease_ttl_s = lease_ttl_s
        self.clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._due: dict[int, datetime] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.leading = False
        self._lease_until = datetime.min.replace(tzinfo=timezone.utc)
        self.last_round: RoundReport | None = None

    # -- the loop --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tenantscope-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.leading:
            try:
                self.store.release_lease(LEASE, self.holder)
            except Exception:
                log.warning("could not release the alerts lease", exc_info=True)
            self.leading = False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("alert evaluation failed; retrying next tick")
            self._stop.wait(self.tick_s)

    def tick(self) -> RoundReport | None:
        """Evaluate the rules that are due now (None: another process holds the lease)."""
        now = self.clock()
        return self.run_once(now, only_due=True) if self._lead(now) else None

    def _lead(self, now: datetime) -> bool:
        """Take or keep the lease; renewed when half its time is gone, not a config store
        write every tick."""
        if not self.leading or now >= self._lease_until - timedelta(seconds=self.lease_ttl_s / 2):
            self.leading = self.store.acquire_lease(LEASE, self.holder, self.lease_ttl_s, now)
            if self.leading:
                self._lease_until = now + timedelta(seconds=self.lease_ttl_s)
            else:
                self._due.clear()  # when this process takes over, every rule is due at once
        return self.leading

    def run_once(self, now: datetime | None = None, *, only_due: bool = False) -> RoundReport:
        """Evaluate every enabled rule (or only those due) at ``now``, if this process
        holds the lease (an empty report otherwise)."""
        now = now or self.clock()
        began = time.perf_counter()
        report = RoundReport()
        if not self._lead(now):
            return report
        rules = [r for r in self.store.list_rules() if r.enabled and r.id is not None]
        known = {r.id for r in rules}
        for rule_id in list(self._due):
            if rule_id not in known:
                del self._due[rule_id]
        for rule in rules:
            assert rule.id is not None
            if only_due and self._due.get(rule.id, now) > now:
                continue
            self._due[rule.id] = now + timedelta(seconds=rule.interval_s)
            try:
                n, sent = self.evaluate(rule, now)
            except Exception as exc:
                log.exception("alert rule %s could not be evaluated", rule.id)
                report.errors.append(f"rule {rule.id}: {exc}")
                continue
            report.rules += 1
            report.instances += n
            report.notifications += sent
        report.seconds = time.perf_counter() - began
        self.last_round = report
        return report

    # -- one rule -------------------------------------------------------------------------
    def evaluate(self, rule: AlertRule, now: datetime) -> tuple[int, int]:
        """Evaluate ``rule`` at ``now`` and store the outcome: (instances, notifications)."""
        assert rule.id is not None
        window = TimeRange(now - timedelta(seconds=rule.window_s), now)
        measured = values.measure(self.queries, self.config, rule, window, now)
        old = {i.key: i for i in self.store.instances(rule.id)}
        keys = list(measured.values)
        silent: set[str] = set()
        if rule.per_tenant:
            # a tenant that stopped sending is evaluated (its cost, tokens and requests are
            # 0; the rest no data) until it has nothing to say: a "requests < 5" rule fires
            # when a tenant goes quiet, a firing p95 rule tells it lost its data
            silent = {
                k for k, i in old.items() if k not in measured.values and i.state != "no_data"
            }
            keys += sorted(silent)
        remove = [k for k in old if k not in keys]
        quiet = values.silent_value(rule)
        changed: list[AlertInstance] = []
        history: list[HistoryEntry] = []
        outbox: list[OutboxItem] = []
        for key in keys:
            inst = old.get(key) or AlertInstance(rule_id=rule.id, key=key, since=now)
            value, requests = measured.values.get(key, (quiet, 0))
            result = step(rule, inst, value, requests, now)
            if key in silent and result.instance.state == "ok" and not result.changed:
                remove.append(key)  # quiet and fine: no instance to keep
                continue
            changed.append(result.instance)
            if result.changed:
                muted = result.notify is not None and silenced(rule, inst, now)
                history.append(
                    HistoryEntry(
                        rule_id=rule.id,
                        key=key,
                        at=now,
                        from_state=inst.state,
                        to_state=result.instance.state,
                        value=value,
                        note="; ".join(
                            x for x in (result.note, "silenced: not notified" if muted else "") if x
                        ),
                    )
                )
            if result.notify is not None and not silenced(rule, inst, now):
                note = self._notification(rule, result.instance, result.notify, window)
                outbox += [
                    OutboxItem(
                        rule_id=rule.id,
                        key=key,
                        contact_id=contact_id,
                        payload=notification_payload(note),
                        created_at=now,
                        next_attempt_at=now,
                    )
                    for contact_id in rule.contact_ids
                ]
        stored = self.store.save_round(
            rule.id, changed, history, outbox, remove=remove, holder=self.holder, at=now
        )
        return len(changed), len(outbox) if stored else 0

    def _notification(
        self, rule: AlertRule, inst: AlertInstance, event: str, window: TimeRange
    ) -> Notification:
        assert rule.id is not None
        metric = METRICS[rule.metric]
        tenant = inst.key if rule.per_tenant else _single(rule)
        value = format_value(rule.metric, inst.value)
        threshold = condition_text(rule.metric, rule.comparator, rule.threshold)
        who = f"tenant {tenant}" if tenant is not None else "all selected tenants"
        summary = {
            "firing": f"{rule.name}: {metric.label} {value} for {who} ({threshold})",
            "warning": f"{rule.name}: {metric.label} {value} for {who} is near {threshold}",
            "resolved": f"{rule.name} resolved for {who}: {metric.label} {value}",
            "no_data": f"{rule.name}: no data for {who} while firing",
        }[event]
        return Notification(
            id=f"{rule.id}:{inst.key}:{inst.seq}",
            event=event,
            rule_id=rule.id,
            rule_name=rule.name,
            severity=rule.severity,
            tenant_id=tenant,
            metric=rule.metric,
            metric_label=metric.label + (" (traces)" if rule.scope == "trace" else ""),
            value=None if inst.value is None else value,
            threshold=threshold,
            window=format_duration(rule.window_s),
            window_start=window.start,
            window_end=window.end,
            link=self._link(tenant, window),
            summary=summary,
        )

    def _link(self, tenant: str | None, window: TimeRange) -> str:
        if not self.dashboard_url:
            return ""
        params = {
            "from": window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "to": (window.end + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if tenant is not None:
            params = {"tenant_id": tenant, **params}
        return f"{self.dashboard_url}/traces?{urlencode(params)}"


def _single(rule: AlertRule) -> str | None:
    return rule.tenant_ids[0] if len(rule.tenant_ids) == 1 and not rule.tier else None


def notification_payload(n: Notification) -> dict[str, object]:
    data = asdict(n)
    for name in ("window_start", "window_end"):
        data[name] = data[name].astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return data


def notification_of(payload: dict[str, object]) -> Notification:
    data = dict(payload)
    for name in ("window_start", "window_end"):
        data[name] = datetime.fromisoformat(str(data[name]).replace("Z", "+00:00"))
    return Notification(**data)  # type: ignore[arg-type]
