"""With a spool, batches are POSTed from a thread of their own: the export thread only
encodes and hands a body over (or, while the collector is down or this thread is busy,
writes it to the spool), so a collector that never answers holds up no one. The export
thread reads the outcomes back (``take``) and does what each calls for: count, mark a
spooled batch delivered, or spool a batch that failed.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from tenantscope.sdk._spool import Record

# bodies waiting for the POST thread: enough to keep it busy between export rounds
INBOX_MAX = 4


@dataclass(frozen=True)
class Job:
    body: bytes
    spans: int
    record: Record | None  # None: a live batch (not in the spool)


@dataclass(frozen=True)
class Outcome:
    job: Job
    result: str  # the sender's OK / REJECTED / REFUSED / FAILED, or "skipped"


class Poster:
    def __init__(self, sender: Any, on_failure: Callable[[], None], wake: Callable[[], None]):
        self._sender = sender
        self._on_failure = on_failure
        self._wake_export = wake
        self._inbox: collections.deque[Job] = collections.deque()
        self._outcomes: collections.deque[Outcome] = collections.deque()
        self._event = threading.Event()
        self._stop = False
        self.busy = False
        self._thread = threading.Thread(target=self._run, name="tenantscope-post", daemon=True)
        self._thread.start()

    def has_room(self) -> bool:
        return len(self._inbox) < INBOX_MAX

    def submit(self, job: Job) -> None:
        self._inbox.append(job)
        self._event.set()

    def idle(self) -> bool:
        return not self._inbox and not self.busy and not self._outcomes

    def take(self) -> list[Outcome]:
        out = []
        while self._outcomes:
            out.append(self._outcomes.popleft())
        return out

    def skip_waiting(self) -> None:
        """Hand every job not yet posted back (the collector is down: spool them)."""
        while self._inbox:
            try:
                job = self._inbox.popleft()
            except IndexError:
                break
            self._outcomes.append(Outcome(job, "skipped"))

    def _run(self) -> None:
        otel_context.attach(otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        while True:
            self._event.wait()
            self._event.clear()
            while self._inbox:
                self.busy = True  # before the job leaves the inbox: never seen idle between
                try:
                    job = self._inbox.popleft()
                except IndexError:
                    self.busy = False
                    break
                try:
                    result = self._sender.post(job.body)
                except Exception:  # the sender promises not to raise
                    result = "failed"
                self._outcomes.append(Outcome(job, result))
                self.busy = False
                if result in ("failed", "refused"):
                    self._on_failure()
                    self.skip_waiting()
                self._wake_export()
            if self._stop:
                return

    def join(self, timeout: float) -> bool:
        """Finish what was submitted (within ``timeout``); True when done."""
        self._stop = True
        self._event.set()
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()
