"""The embedded ConfigStore: SQLAlchemy Core over SQLite (or any SQLAlchemy URL).

One code path for SQLite and PostgreSQL: only the connection hooks below are SQLite
specific (WAL so the CLI can change config while the server runs, a busy timeout, and
explicit BEGIN / BEGIN IMMEDIATE because pysqlite's own transaction handling would start
write transactions too late to wait for the lock). The schema is created and upgraded by
Alembic on open.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from tenantscope import errors
from tenantscope.storage import audit
from tenantscope.storage.base import (
    SYSTEM,
    Actor,
    ApiKey,
    AuditEntry,
    ConfigStore,
    PriceOverride,
    TenantConfig,
)
from tenantscope.storage.sql_alerts import SqlAlertStore
from tenantscope.storage.sql_limits import SqlLimitStore
from tenantscope.storage.sql_plans import SqlPlanStore
from tenantscope.storage.validation import (
    MAX_LABEL,
    MAX_TENANT_ID,
    check_key_binding,
    check_override,
    check_tenant_fields,
    check_tenant_id,
    fail,
    utc,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 10_000
_WRITE = "tenantscope_write"
_IN_CHUNK = 500
MAX_AUDIT_PAGE = 1000

metadata = sa.MetaData()

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("tenant_id", sa.String(MAX_TENANT_ID), primary_key=True),
    sa.Column("display_name", sa.String(MAX_LABEL), nullable=False, server_default=""),
    sa.Column("tier", sa.String(MAX_LABEL), nullable=False, server_default=""),
    sa.Column("sla_p95_ms", sa.Integer(), nullable=True),
    sa.Column("rate_limit_rpm", sa.Integer(), nullable=True),
    sa.Column("monthly_budget_usd", sa.String(64), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

price_overrides = sa.Table(
    "price_overrides",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("provider", sa.String(MAX_LABEL), nullable=False, server_default=""),
    sa.Column("model", sa.String(MAX_LABEL), nullable=False),
    sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
    sa.Column("input_mtok", sa.String(64), nullable=True),
    sa.Column("output_mtok", sa.String(64), nullable=True),
    sa.Column("cache_read_mtok", sa.String(64), nullable=True),
    sa.Column("cache_write_mtok", sa.String(64), nullable=True),
    sa.Column("note", sa.Text(), nullable=False, server_default=""),
    sa.Column("extra", sa.Text(), nullable=False, server_default="{}"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_price_overrides_model_effective", "model", "effective_from"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.String(MAX_LABEL), nullable=False, server_default=""),
    sa.Column("tenant_id", sa.String(MAX_TENANT_ID), nullable=True),
    sa.Column("secret_hash", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor_kind", sa.String(16), nullable=False),
    sa.Column("actor_key_id", sa.String(64), nullable=True),
    sa.Column("actor_name", sa.String(MAX_LABEL), nullable=False, server_default=""),
    sa.Column("actor_role", sa.String(16), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(MAX_TENANT_ID), nullable=False),
    sa.Column("before", sa.Text(), nullable=True),
    sa.Column("after", sa.Text(), nullable=True),
    sa.Index("ix_audit_log_action", "action", "id"),
    sa.Index("ix_audit_log_target", "target", "id"),
    sa.Index("ix_audit_log_at", "at"),
)


def _engine_for(url_or_path: str | Path) -> Engine:
    text = str(url_or_path)
    if text in (":memory:", "sqlite://", "sqlite:///:memory:"):
        # One shared connection, or every pooled connection would see its own empty database.
        return sa.create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(sa.URL.create("sqlite", database=str(path)))
    url = sa.make_url(text)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, pool_pre_ping=True)


def _install_sqlite_hooks(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see module doc)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a read-then-write transaction that started
        # deferred would fail at once (SQLITE_BUSY) if another process wrote meanwhile.
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _alembic_config() -> Config:
    cfg = Config()
    # ConfigParser interpolation: a literal % in the install path must be doubled.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return cfg


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _money_value(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _tenant_from_row(row: sa.Row[Any]) -> TenantConfig:
    m = row._mapping
    return TenantConfig(
        tenant_id=m["tenant_id"],
        display_name=m["display_name"],
        tier=m["tier"],
        sla_p95_ms=m["sla_p95_ms"],
        rate_limit_rpm=m["rate_limit_rpm"],
        monthly_budget_usd=_money_value(m["monthly_budget_usd"]),
        created_at=utc(m["created_at"]),
        updated_at=utc(m["updated_at"]),
    )


def _key_from_row(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        role=row.role,
        name=row.name,
        tenant_id=row.tenant_id,
        secret_hash=row.secret_hash,
        created_at=utc(row.created_at),
        last_used_at=utc(row.last_used_at) if row.last_used_at else None,
        revoked_at=utc(row.revoked_at) if row.revoked_at else None,
    )


def _override_from_row(row: sa.Row[Any]) -> PriceOverride:
    m = row._mapping
    return PriceOverride(
        id=m["id"],
        provider=m["provider"],
        model=m["model"],
        effective_from=utc(m["effective_from"]),
        input_mtok=_money_value(m["input_mtok"]),
        output_mtok=_money_value(m["output_mtok"]),
        cache_read_mtok=_money_value(m["cache_read_mtok"]),
        cache_write_mtok=_money_value(m["cache_write_mtok"]),
        note=m["note"],
        extra=json.loads(m["extra"] or "{}"),
        created_at=utc(m["created_at"]),
    )


class SQLiteConfigStore(ConfigStore):
    """ConfigStore over SQLAlchemy Core; a path means a SQLite file, a URL any backend."""

    def __init__(self, url_or_path: str | Path) -> None:
        self._engine = _engine_for(url_or_path)
        if self._engine.dialect.name == "sqlite":
            _install_sqlite_hooks(self._engine)
        self._migrate()
        self._alerts = SqlAlertStore(self)
        self._limits = SqlLimitStore(self)
        self._plans = SqlPlanStore(self)

    @property
    def alerts(self) -> SqlAlertStore:
        return self._alerts

    @property
    def limits(self) -> SqlLimitStore:
        return self._limits

    @property
    def plans(self) -> SqlPlanStore:
        return self._plans

    def _migrate(self) -> None:
        cfg = _alembic_config()
        # One write transaction around the whole upgrade: two processes opening a fresh file
        # at once serialise here instead of both creating the tables.
        with self._write() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    # -- tenants -----------------------------------------------------------------------

    def get_tenant(self, tenant_id: str) -> TenantConfig | None:
        with self._read() as conn:
            row = conn.execute(sa.select(tenants).where(tenants.c.tenant_id == tenant_id)).first()
        return None if row is None else _tenant_from_row(row)

    def list_tenants(self) -> list[TenantConfig]:
        with self._read() as conn:
            rows = conn.execute(sa.select(tenants).order_by(tenants.c.tenant_id)).all()
        return [_tenant_from_row(r) for r in rows]

    def get_tenants(self, tenant_ids: Sequence[str]) -> dict[str, TenantConfig]:
        wanted = list(dict.fromkeys(tenant_ids))
        found: dict[str, TenantConfig] = {}
        with self._read() as conn:
            for i in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[i : i + _IN_CHUNK]
                for row in conn.execute(sa.select(tenants).where(tenants.c.tenant_id.in_(chunk))):
                    config = _tenant_from_row(row)
                    found[config.tenant_id] = config
        return found

    def set_tenant(self, tenant_id: str, *, actor: Actor = SYSTEM, **fields: Any) -> TenantConfig:
        check_tenant_id(tenant_id)
        values = check_tenant_fields(fields)
        now = _now()
        where = tenants.c.tenant_id == tenant_id
        with self._write() as conn:
            old = conn.execute(sa.select(tenants).where(where).with_for_update()).first()
            if old is None:
                conn.execute(
                    sa.insert(tenants).values(
                        tenant_id=tenant_id, created_at=now, updated_at=now, **values
                    )
                )
            else:
                conn.execute(sa.update(tenants).where(where).values(updated_at=now, **values))
            new = _tenant_from_row(conn.execute(sa.select(tenants).where(where)).one())
            before = None if old is None else _tenant_from_row(old)
            self._audit(
                conn,
                actor,
                "tenant.create" if before is None else "tenant.update",
                tenant_id,
                audit.tenant_snapshot(before),
                audit.tenant_snapshot(new),
                now,
            )
        self._limits._changed()  # a tier, rate limit or budget the limiter applies
        return new

    def delete_tenant(self, tenant_id: str, *, actor: Actor = SYSTEM) -> bool:
        where = tenants.c.tenant_id == tenant_id
        with self._write() as conn:
            old = conn.execute(sa.select(tenants).where(where).with_for_update()).first()
            if old is None:
                return False
            conn.execute(sa.delete(tenants).where(where))
            before = audit.tenant_snapshot(_tenant_from_row(old))
            self._audit(conn, actor, "tenant.delete", tenant_id, before, None, _now())
        self._limits._changed()
        return True

    # -- price overrides ---------------------------------------------------------------

    def list_price_overrides(self, model: str | None = None) -> list[PriceOverride]:
        query = sa.select(price_overrides).order_by(
            price_overrides.c.model, price_overrides.c.effective_from, price_overrides.c.id
        )
        if model is not None:
            query = query.where(price_overrides.c.model == model)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [_override_from_row(r) for r in rows]

    def add_price_override(
        self, override: PriceOverride, *, actor: Actor = SYSTEM
    ) -> PriceOverride:
        values = check_override(override)
        with self._write() as conn:
            added = self._insert_override(conn, values)
            snapshot = audit.override_snapshot(added)
            self._audit(conn, actor, "price_override.add", added.model, None, snapshot, _now())
        return added

    def replace_price_override(
        self, override_id: int, override: PriceOverride, *, actor: Actor = SYSTEM
    ) -> PriceOverride | None:
        values = check_override(override)
        where = price_overrides.c.id == override_id
        with self._write() as conn:
            old = conn.execute(sa.select(price_overrides).where(where).with_for_update()).first()
            if old is None:
                return None
            # in place: the override keeps its id (links and audit entries name it)
            conn.execute(sa.update(price_overrides).where(where).values(**values))
            new = _override_from_row(conn.execute(sa.select(price_overrides).where(where)).one())
            self._audit(
                conn,
                actor,
                "price_override.replace",
                new.model,
                audit.override_snapshot(_override_from_row(old)),
                audit.override_snapshot(new),
                _now(),
            )
        return new

    def delete_price_override(self, override_id: int, *, actor: Actor = SYSTEM) -> bool:
        where = price_overrides.c.id == override_id
        with self._write() as conn:
            old = conn.execute(sa.select(price_overrides).where(where).with_for_update()).first()
            if old is None:
                return False
            conn.execute(sa.delete(price_overrides).where(where))
            before = audit.override_snapshot(_override_from_row(old))
            self._audit(conn, actor, "price_override.delete", old.model, before, None, _now())
        return True

    @staticmethod
    def _insert_override(conn: Connection, values: dict[str, Any]) -> PriceOverride:
        result = conn.execute(sa.insert(price_overrides).values(created_at=_now(), **values))
        key = result.inserted_primary_key
        assert key is not None
        row = conn.execute(sa.select(price_overrides).where(price_overrides.c.id == key[0])).one()
        return _override_from_row(row)

    # -- API keys ----------------------------------------------------------------------

    def add_api_key(self, key: ApiKey, *, actor: Actor = SYSTEM) -> ApiKey:
        role, tenant, name = check_key_binding(key.role, key.tenant_id, key.name)
        if not key.key_id or not key.secret_hash:
            raise fail("key_id", "a key needs its id and the hash of its secret")
        now = _now()
        with self._write() as conn:
            conn.execute(
                sa.insert(api_keys).values(
                    key_id=key.key_id,
                    role=role,
                    name=name,
                    tenant_id=tenant,
                    secret_hash=key.secret_hash,
                    created_at=utc(key.created_at) if key.created_at else now,
                )
            )
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key.key_id)).one()
            added = _key_from_row(row)
            snapshot = audit.key_snapshot(added)
            self._audit(conn, actor, "key.create", added.key_id, None, snapshot, now)
        return added

    def get_api_key(self, key_id: str) -> ApiKey | None:
        with self._read() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
        return None if row is None else _key_from_row(row)

    def list_api_keys(self) -> list[ApiKey]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
            ).all()
        return [_key_from_row(r) for r in rows]

    def revoke_api_key(self, key_id: str, *, actor: Actor = SYSTEM) -> bool:
        active = api_keys.c.revoked_at.is_(None)
        this = api_keys.c.key_id == key_id
        with self._write() as conn:  # BEGIN IMMEDIATE on SQLite: one writer at a time
            old = conn.execute(sa.select(api_keys).where(this, active)).first()
            if old is None:
                return False
            if old.role == "admin":
                # FOR UPDATE: on a server database, a concurrent revocation waits here and
                # then sees this one's result (SQLite's write lock already does that)
                admins = conn.execute(
                    sa.select(api_keys.c.key_id)
                    .where(api_keys.c.role == "admin", active)
                    .with_for_update()
                ).all()
                if len(admins) <= 1:
                    raise errors.Conflict(
                        f"key {key_id} is the last active admin key: revoking it would leave"
                        " no key that can manage keys. Create another admin key first"
                        " (tenantscope keys create --role admin), then revoke this one"
                    )
            now = _now()
            conn.execute(sa.update(api_keys).where(this, active).values(revoked_at=now))
            new = _key_from_row(conn.execute(sa.select(api_keys).where(this)).one())
            self._audit(
                conn,
                actor,
                "key.revoke",
                key_id,
                audit.key_snapshot(_key_from_row(old)),
                audit.key_snapshot(new),
                now,
            )
        return True

    def touch_api_key(self, key_id: str, when: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.key_id == key_id)
                .values(last_used_at=utc(when))
            )

    # -- audit log ---------------------------------------------------------------------

    @staticmethod
    def _audit(
        conn: Connection,
        actor: Actor,
        action: str,
        target: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        at: datetime,
    ) -> None:
        """Inside the change's own transaction: both are stored, or neither."""
        conn.execute(
            sa.insert(audit_log).values(**audit.entry_row(actor, action, target, before, after, at))
        )

    def list_audit(
        self,
        *,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        query = sa.select(audit_log).order_by(audit_log.c.id.desc())
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if target is not None:
            query = query.where(audit_log.c.target == target)
        if since is not None:
            query = query.where(audit_log.c.at >= utc(since))
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        query = query.limit(max(1, min(limit, MAX_AUDIT_PAGE)))
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [audit.entry_from_row(r._mapping, utc(r.at)) for r in rows]

    # -- lifecycle ---------------------------------------------------------------------

    def ping(self) -> None:
        try:
            with self._read() as conn:
                conn.execute(sa.select(1)).scalar_one()
        except sa.exc.SQLAlchemyError as exc:
            raise errors.Unavailable(f"config store unavailable: {exc}") from exc

    def close(self) -> None:
        self._engine.dispose()


__all__ = [
    "MIGRATIONS_DIR",
    "SQLiteConfigStore",
    "api_keys",
    "audit_log",
    "metadata",
    "price_overrides",
    "tenants",
]
