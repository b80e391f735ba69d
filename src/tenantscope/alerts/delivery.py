"""Delivers the notifications the evaluator stored (the outbox), on a thread of its own:
a slow or failing contact point never holds up evaluation.

Each notification is tried (with the notifier's quick retries) and, when that fails,
tried again later on ``RETRY_AFTER`` (30 s, 2 min, 10 min, 30 min, 1 h), then given up;
the contact point is marked failing with the error, shown on the Alerts page, and ok
again after its next success. A notification is marked sent right after its receiver
answered: a crash in between sends it once more, with the same id
(``X-Tenantscope-Delivery``) so a receiver can drop the copy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from tenantscope.alerts.evaluator import Evaluator, notification_of
from tenantscope.alerts.notifiers import DeliveryFailed, deliver
from tenantscope.storage.alert_state import AlertStore, OutboxItem

log = logging.getLogger("tenantscope.alerts")
RETRY_AFTER = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(minutes=30),
    timedelta(hours=1),
)


class Deliverer:
    def __init__(
        self,
        store: AlertStore,
        evaluator: Evaluator,
        *,
        tick_s: float = 1.0,
        retry_after: tuple[timedelta, ...] = RETRY_AFTER,
        send: Callable[..., None] = deliver,
    ) -> None:
        self.store = store
        self.evaluator = evaluator
        self.tick_s = tick_s
        self.retry_after = retry_after
        self._send = send
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tenantscope-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.evaluator.leading:
                    self.run_once()
            except Exception:  # log, don't raise: the server goes on
                log.exception("notification delivery failed; retrying next tick")
            self._wake.wait(self.tick_s)
            self._wake.clear()

    def run_once(self, now: datetime | None = None) -> int:
        """Deliver what is due; how many were sent."""
        sent = 0
        while not self._stop.is_set():
            now = self.evaluator.clock() if now is None else now
            due = self.store.due_notifications(now)
            if not due:
                break
            for item in due:
                sent += self._one(item)
            now = None
        return sent

    def _one(self, item: OutboxItem) -> int:
        assert item.id is not None
        contact = self.store.get_contact(item.contact_id)
        at = self.evaluator.clock()
        if contact is None:  # removed since: nothing to send to
            self.store.notification_failed(item.id, "contact point removed", None, at)
            return 0
        try:
            self._send(contact, notification_of(item.payload))
        except DeliveryFailed as exc:
            retry = (
                at + self.retry_after[item.attempts]
                if item.attempts < len(self.retry_after)
                else None
            )
            self.store.notification_failed(item.id, str(exc), retry, at)
            assert contact.id is not None
            self.store.set_contact_status(contact.id, "failing", str(exc), at)
            return 0
        self.store.notification_sent(item.id, at)
        assert contact.id is not None
        if contact.status != "ok":
            self.store.set_contact_status(contact.id, "ok", "", at)
        return 1
