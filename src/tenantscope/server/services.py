"""The objects one server (or one CLI command) works with, opened and closed together."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

from tenantscope.ingest.pool import DecodePool
from tenantscope.ingest.writer import BatchWriter
from tenantscope.pricing.pricer import Pricer
from tenantscope.query.queries import Queries
from tenantscope.records import UsageRecord
from tenantscope.server.settings import Settings
from tenantscope.storage.base import ConfigStore, EventStore
from tenantscope.storage.duckdb_events import DuckDBEventStore
from tenantscope.storage.sqlite_config import SQLiteConfigStore

# Price overrides may be changed by the CLI while the server runs; re-read them this often.
OVERRIDES_TTL_S = 5.0


@dataclass
class Services:
    settings: Settings
    events: EventStore
    config: ConfigStore
    pricer: Pricer
    queries: Queries
    writer: BatchWriter
    decoder: DecodePool
    _overrides_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    @classmethod
    def open(cls, settings: Settings, *, start_writer: bool = True) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        config = SQLiteConfigStore(settings.config_path)
        events = DuckDBEventStore(
            settings.events_path,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads or None,
        )
        pricer = Pricer(config.list_price_overrides())
        holder: list[Services] = []
        writer = BatchWriter(
            events,
            lambda r: holder[0].price(r),
            trace_window=timedelta(hours=settings.trace_window_hours),
        )
        svc = cls(
            settings=settings,
            events=events,
            config=config,
            pricer=pricer,
            queries=Queries(events, config),
            writer=writer,
            decoder=DecodePool(settings.ingest_workers),
            _overrides_at=time.monotonic(),
        )
        holder.append(svc)
        if start_writer:
            writer.start()
        return svc

    def price(self, record: UsageRecord) -> None:
        now = time.monotonic()
        if now - self._overrides_at > OVERRIDES_TTL_S:
            with self._lock:
                if now - self._overrides_at > OVERRIDES_TTL_S:
                    self.pricer.set_overrides(self.config.list_price_overrides())
                    self._overrides_at = now
        self.pricer.apply(record)

    def close(self) -> None:
        """Idempotent: the app's shutdown and the command that opened these both call it."""
        if self._closed:
            return
        self._closed = True
        self.decoder.close()
        self.writer.stop()
        self.events.close()
        self.config.close()
