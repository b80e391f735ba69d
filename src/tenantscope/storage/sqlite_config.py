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
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from tenantscope import errors
from tenantscope.storage.base import (
    ROLES,
    TENANT_SETTABLE,
    ApiKey,
    ConfigStore,
    PriceOverride,
    TenantConfig,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 10_000
MAX_TENANT_ID = 1024
MAX_LABEL = 200
MAX_NOTE = 2000
MAX_INT = 2**31 - 1
# Budgets and prices: far beyond any real figure, small enough to stay exact everywhere.
MAX_MONEY = Decimal(10) ** 15
MAX_MONEY_PLACES = 12
_WRITE = "tenantscope_write"
_IN_CHUNK = 500

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

_PRICE_FIELDS: tuple[str, ...] = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
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


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


# -- validation --------------------------------------------------------------------------


def _fail(field: str, message: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(f"{field}: {message}", details={"field": field})


def _check_tenant_id(tenant_id: Any) -> str:
    if not isinstance(tenant_id, str) or not 1 <= len(tenant_id) <= MAX_TENANT_ID:
        raise _fail("tenant_id", f"must be a string of 1 to {MAX_TENANT_ID} characters")
    return tenant_id


def _check_label(field: str, value: Any, limit: int = MAX_LABEL) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _fail(field, "must be a string")
    if len(value) > limit:
        raise _fail(field, f"must be at most {limit} characters")
    return value


def _check_positive_int(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, "must be a positive whole number")
    if not 1 <= value <= MAX_INT:
        raise _fail(field, f"must be between 1 and {MAX_INT}")
    return value


def _check_money(field: str, value: Any) -> Decimal | None:
    if value is None:
        return None
    # Floats are refused outright: money is exact, and a binary float already is not.
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise _fail(field, "must be a decimal number given as text, an integer or a Decimal")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise _fail(field, f"{value!r} is not a decimal number") from None
    if not amount.is_finite():
        raise _fail(field, "must be a finite number")
    if amount < 0:
        raise _fail(field, "must not be negative")
    if amount >= MAX_MONEY:
        raise _fail(field, f"must be below {MAX_MONEY}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_MONEY_PLACES:
        raise _fail(field, f"has more than {MAX_MONEY_PLACES} decimal places")
    return amount


def _money_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _money_value(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _check_tenant_fields(fields: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in TENANT_SETTABLE:
            raise _fail(name, f"unknown field; settable fields are {', '.join(TENANT_SETTABLE)}")
        if name in ("display_name", "tier"):
            clean[name] = _check_label(name, value)
        elif name in ("sla_p95_ms", "rate_limit_rpm"):
            clean[name] = _check_positive_int(name, value)
        else:
            clean[name] = _money_text(_check_money(name, value))
    return clean


def _check_override(override: PriceOverride) -> dict[str, Any]:
    model = _check_label("model", override.model)
    if not model:
        raise _fail("model", "must not be empty")
    if not isinstance(override.effective_from, datetime):
        raise _fail("effective_from", "must be a datetime")
    try:
        extra = json.dumps(override.extra, sort_keys=True)
    except (TypeError, ValueError):
        raise _fail("extra", "must be JSON-serialisable") from None
    row: dict[str, Any] = {
        "provider": _check_label("provider", override.provider),
        "model": model,
        "effective_from": _utc(override.effective_from),
        "note": _check_label("note", override.note, MAX_NOTE),
        "extra": extra,
    }
    for name in _PRICE_FIELDS:
        row[name] = _money_text(_check_money(name, getattr(override, name)))
    return row


def _tenant_from_row(row: sa.Row[Any]) -> TenantConfig:
    m = row._mapping
    return TenantConfig(
        tenant_id=m["tenant_id"],
        display_name=m["display_name"],
        tier=m["tier"],
        sla_p95_ms=m["sla_p95_ms"],
        rate_limit_rpm=m["rate_limit_rpm"],
        monthly_budget_usd=_money_value(m["monthly_budget_usd"]),
        created_at=_utc(m["created_at"]),
        updated_at=_utc(m["updated_at"]),
    )


def _key_from_row(row: sa.Row[Any]) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        role=row.role,
        name=row.name,
        tenant_id=row.tenant_id,
        secret_hash=row.secret_hash,
        created_at=_utc(row.created_at),
        last_used_at=_utc(row.last_used_at) if row.last_used_at else None,
        revoked_at=_utc(row.revoked_at) if row.revoked_at else None,
    )


def _override_from_row(row: sa.Row[Any]) -> PriceOverride:
    m = row._mapping
    return PriceOverride(
        id=m["id"],
        provider=m["provider"],
        model=m["model"],
        effective_from=_utc(m["effective_from"]),
        input_mtok=_money_value(m["input_mtok"]),
        output_mtok=_money_value(m["output_mtok"]),
        cache_read_mtok=_money_value(m["cache_read_mtok"]),
        cache_write_mtok=_money_value(m["cache_write_mtok"]),
        note=m["note"],
        extra=json.loads(m["extra"] or "{}"),
        created_at=_utc(m["created_at"]),
    )


class SQLiteConfigStore(ConfigStore):
    """ConfigStore over SQLAlchemy Core; a path means a SQLite file, a URL any backend."""

    def __init__(self, url_or_path: str | Path) -> None:
        self._engine = _engine_for(url_or_path)
        if self._engine.dialect.name == "sqlite":
            _install_sqlite_hooks(self._engine)
        self._migrate()

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

    def set_tenant(self, tenant_id: str, **fields: Any) -> TenantConfig:
        _check_tenant_id(tenant_id)
        values = _check_tenant_fields(fields)
        now = _now()
        with self._write() as conn:
            exists = conn.execute(
                sa.select(tenants.c.tenant_id)
                .where(tenants.c.tenant_id == tenant_id)
                .with_for_update()
            ).first()
            if exists is None:
                conn.execute(
                    sa.insert(tenants).values(
                        tenant_id=tenant_id, created_at=now, updated_at=now, **values
                    )
                )
            else:
                conn.execute(
                    sa.update(tenants)
                    .where(tenants.c.tenant_id == tenant_id)
                    .values(updated_at=now, **values)
                )
            row = conn.execute(sa.select(tenants).where(tenants.c.tenant_id == tenant_id)).one()
        return _tenant_from_row(row)

    def delete_tenant(self, tenant_id: str) -> bool:
        with self._write() as conn:
            result = conn.execute(sa.delete(tenants).where(tenants.c.tenant_id == tenant_id))
        return bool(result.rowcount)

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

    def add_price_override(self, override: PriceOverride) -> PriceOverride:
        values = _check_override(override)
        with self._write() as conn:
            result = conn.execute(sa.insert(price_overrides).values(created_at=_now(), **values))
            key = result.inserted_primary_key
            assert key is not None
            new_id = key[0]
            row = conn.execute(
                sa.select(price_overrides).where(price_overrides.c.id == new_id)
            ).one()
        return _override_from_row(row)

    def delete_price_override(self, override_id: int) -> bool:
        with self._write() as conn:
            result = conn.execute(
                sa.delete(price_overrides).where(price_overrides.c.id == override_id)
            )
        return bool(result.rowcount)

    # -- API keys ----------------------------------------------------------------------

    def add_api_key(self, key: ApiKey) -> ApiKey:
        if key.role not in ROLES:
            raise _fail("role", f"must be one of {', '.join(ROLES)}; got {key.role!r}")
        if key.role == "tenant" and not key.tenant_id:
            raise _fail("tenant_id", "a tenant key needs the tenant it may read")
        if key.role in ("admin", "reader") and key.tenant_id:
            raise _fail("tenant_id", f"an {key.role} key is not bound to a tenant")
        tenant = _check_tenant_id(key.tenant_id) if key.tenant_id else None
        name = _check_label("name", key.name)
        if not key.key_id or not key.secret_hash:
            raise _fail("key_id", "a key needs its id and the hash of its secret")
        with self._write() as conn:
            conn.execute(
                sa.insert(api_keys).values(
                    key_id=key.key_id,
                    role=key.role,
                    name=name,
                    tenant_id=tenant,
                    secret_hash=key.secret_hash,
                    created_at=_utc(key.created_at) if key.created_at else _now(),
                )
            )
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key.key_id)).one()
        return _key_from_row(row)

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

    def revoke_api_key(self, key_id: str) -> bool:
        active = api_keys.c.revoked_at.is_(None)
        with self._write() as conn:  # BEGIN IMMEDIATE on SQLite: one writer at a time
            role = conn.execute(
                sa.select(api_keys.c.role).where(api_keys.c.key_id == key_id, active)
            ).scalar()
            if role is None:
                return False
            if role == "admin":
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
            conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.key_id == key_id, active)
                .values(revoked_at=_now())
            )
        return True

    def touch_api_key(self, key_id: str, when: datetime) -> None:
        with self._write() as conn:
            conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.key_id == key_id)
                .values(last_used_at=_utc(when))
            )

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
    "metadata",
    "price_overrides",
    "tenants",
]
