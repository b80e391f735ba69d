"""Counters of what the SDK had to give up on, and log-once.

After ``init`` the SDK never raises into the host app; what goes wrong is counted here and
logged once per kind of problem (at WARNING on the ``tenantscope`` logger, whose handlers
and level belong to the app), so a collector that is down for an hour is one line, not a
flood.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

logger = logging.getLogger("tenantscope")


@dataclass(frozen=True)
class ExportStats:
    """A snapshot of the export counters since ``init`` (or the last fork)."""

    queued: int = 0
    exported: int = 0
    dropped_queue_full: int = 0
    dropped_export_failed: int = 0
    failed_exports: int = 0
    internal_errors: int = 0
    # the disk spool: spans written to it, delivered from it, and given up on because it
    # was full or they were older than its limit; corrupt spool files skipped
    spooled: int = 0
    spool_delivered: int = 0
    dropped_spool_full: int = 0
    dropped_spool_expired: int = 0
    spool_corrupt: int = 0
    # limit enforcement: checks asked (instrumented calls and guards), calls refused by a
    # limit (checks and stream extensions), requests to the limit service that got no
    # usable answer (down, timeout, 5xx, key refused: the policy decided), stream holds
    # extended, and streams cut off by a limit
    limit_checks: int = 0
    limit_denied: int = 0
    limit_unreachable: int = 0
    limit_extends: int = 0
    limit_streams_cut: int = 0

    @property
    def dropped(self) -> int:
        return (
            self.dropped_queue_full
            + self.dropped_export_failed
            + self.dropped_spool_full
            + self.dropped_spool_expired
        )


class Counters:
    """Mutable counters. Increments happen under a lock only on rare paths; ``queued`` is
    bumped without one (a lost increment under a race costs accuracy, not correctness)."""

    def __init__(self) -> None:
        self.queued = 0
        self.exported = 0
        self.dropped_queue_full = 0
        self.dropped_export_failed = 0
        self.failed_exports = 0
        self.internal_errors = 0
        self.spooled = 0
        self.spool_delivered = 0
        self.dropped_spool_full = 0
        self.dropped_spool_expired = 0
        self.spool_corrupt = 0
        self.limit_checks = 0
        self.limit_denied = 0
        self.limit_unreachable = 0
        self.limit_extends = 0
        self.limit_streams_cut = 0
        self.lock = threading.Lock()

    def snapshot(self) -> ExportStats:
        return ExportStats(
            queued=self.queued,
            exported=self.exported,
            dropped_queue_full=self.dropped_queue_full,
            dropped_export_failed=self.dropped_export_failed,
            failed_exports=self.failed_exports,
            internal_errors=self.internal_errors,
            spooled=self.spooled,
            spool_delivered=self.spool_delivered,
            dropped_spool_full=self.dropped_spool_full,
            dropped_spool_expired=self.dropped_spool_expired,
            spool_corrupt=self.spool_corrupt,
            limit_checks=self.limit_checks,
            limit_denied=self.limit_denied,
            limit_unreachable=self.limit_unreachable,
            limit_extends=self.limit_extends,
            limit_streams_cut=self.limit_streams_cut,
        )


_logged: set[str] = set()
_logged_lock = threading.Lock()


def log_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` at WARNING the first time ``key`` is seen in this process."""
    with _logged_lock:
        if key in _logged:
            return
        _logged.add(key)
    logger.warning(message, *args)


def reset_logged() -> None:
    """Forget what was logged (a new ``init`` starts a new story)."""
    with _logged_lock:
        _logged.clear()


def reset_after_fork() -> None:
    global _logged_lock
    _logged_lock = threading.Lock()


# counters of the SDK's own failures outside the export (span helpers, middleware)
internal = Counters()


def internal_error(where: str, exc: BaseException) -> None:
    with internal.lock:
        internal.internal_errors += 1
    log_once(
        "internal:" + where,
        "tenantscope: ignored an error in %s (%s: %s); further ones are counted, not logged",
        where,
        type(exc).__name__,
        exc,
    )
