"""The objects one server (or one CLI command) works with, opened and closed together."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from tenantscope.alerts.delivery import Deliverer
from tenantscope.alerts.evaluator import Evaluator
from tenantscope.ingest.coalesce import Coalescer
from tenantscope.ingest.pool import DecodePool
from tenantscope.ingest.wal import WriteAheadLog
from tenantscope.ingest.writer import BatchWriter
from tenantscope.limits.limiter import Limiter
from tenantscope.limits.notices import Notifier
from tenantscope.pricing.pricer import Pricer
from tenantscope.query.queries import Queries
from tenantscope.records import UsageRecord
from tenantscope.server.jwt_auth import JwtVerifier
from tenantscope.server.keys import KeyChecker
from tenantscope.server.sessions import REVOKED_FILE, SessionSigner, load_secret
from tenantscope.server.settings import Settings
from tenantscope.storage.base import ConfigStore, EventStore, PriceOverride
from tenantscope.storage.duckdb_events import DuckDBEventStore
from tenantscope.storage.sqlite_config import SQLiteConfigStore

if TYPE_CHECKING:
    from starlette.requests import HTTPConnection

# Price overrides may be changed by the CLI while the server runs; re-read them this often.
OVERRIDES_TTL_S = 5.0


class LivePricer:
    """Prices records with the operator's overrides as they are now: the CLI may change
    them while the server runs, so they are re-read every ``OVERRIDES_TTL_S``."""

    def __init__(self, config: ConfigStore) -> None:
        self._config = config
        self._overrides = tuple(config.list_price_overrides())
        self._generation = 0
        self.pricer = Pricer(self._overrides)
        self._read_at = time.monotonic()
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._read_at > OVERRIDES_TTL_S:
            with self._lock:
                if now - self._read_at > OVERRIDES_TTL_S:
                    current = tuple(self._config.list_price_overrides())
                    if current != self._overrides:
                        self._overrides = current
                        self._generation += 1
                        self.pricer.set_overrides(current)
                    self._read_at = now

    def __call__(self, record: UsageRecord) -> None:
        self._refresh()
        self.pricer.apply(record)

    def snapshot(self) -> tuple[int, tuple[PriceOverride, ...]]:
        """The overrides now and their generation, for pricing in the decode workers."""
        self._refresh()
        return self._generation, self._overrides


@dataclass
class Services:
    settings: Settings
    events: EventStore
    config: ConfigStore
    pricer: Pricer
    queries: Queries
    writer: BatchWriter
    decoder: DecodePool
    price: LivePricer
    keys: KeyChecker
    sessions: SessionSigner
    limiter: Limiter
    settlements: Coalescer  # explicit limit settlements, written in groups
    evaluator: Evaluator | None = None
    deliverer: Deliverer | None = None
    jwt: JwtVerifier | None = None  # sign-in with the identity provider's tokens, when on
    _closed: bool = False

    @classmethod
    def open(cls, settings: Settings, *, start_writer: bool = True) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        config = SQLiteConfigStore(settings.config_path)
        events = DuckDBEventStore(
            settings.events_path,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads or None,
            checkpoint_threshold=settings.duckdb_checkpoint_threshold,
        )
        price = LivePricer(config)
        writer = BatchWriter(
            events,
            price,
            trace_window=timedelta(hours=settings.trace_window_hours),
            wal=WriteAheadLog(settings.wal_path),
            linger=settings.ingest_linger_ms / 1000.0,
        )
        svc = cls(
            settings=settings,
            events=events,
            config=config,
            pricer=price.pricer,
            queries=Queries(events, config),
            writer=writer,
            decoder=DecodePool(settings.ingest_workers),
            price=price,
            keys=KeyChecker(config),
            jwt=JwtVerifier.from_settings(settings),
            sessions=SessionSigner(
                load_secret(settings.data_dir), settings.data_dir / REVOKED_FILE
            ),
            settlements=Coalescer(writer),
            limiter=Limiter(
                events,
                config,
                writer,
                price,
                default_output_tokens=settings.limits_default_output_tokens,
                refresh_s=settings.limits_refresh_ms / 1000.0,
                on_notice=Notifier(config, settings.dashboard_url),
            ),
        )
        if start_writer:
            try:
                writer.start()  # first stores what a stopped server left in its log
                svc.limiter.start()
                if settings.alerts:
                    svc.start_alerts()
            except BaseException:
                svc.close()
                raise
        return svc

    def start_alerts(self) -> None:
        """The alert evaluator and its delivery thread (they act only while this process
        holds the evaluator lease of the config store)."""
        self.evaluator = Evaluator(
            self.queries, self.config, dashboard_url=self.settings.dashboard_url
        )
        self.deliverer = Deliverer(self.config.alerts, self.evaluator)
        self.evaluator.start()
        self.deliverer.start()

    def close(self) -> None:
        """Idempotent: the app's shutdown and the command that opened these both call it."""
        if self._closed:
            return
        self._closed = True
        if self.deliverer is not None:
            self.deliverer.stop()
        if self.evaluator is not None:
            self.evaluator.stop()
        self.limiter.stop()
        self.decoder.close()
        self.writer.stop()
        self.events.close()
        self.config.close()


def services_of(request: HTTPConnection) -> Services:
    """The services of the app serving ``request`` (``app.state.services``)."""
    svc: Services = request.app.state.services
    return svc
