"""SQLiteConfigStore: the ConfigStore contract plus SQLite and migration specifics."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tenantscope.storage import alert_rows, limit_rows, plan_rows
from tenantscope.storage.base import CLI
from tenantscope.storage.sqlite_config import MIGRATIONS_DIR, SQLiteConfigStore, metadata
from tests.storage.contract_audit import AuditLogContract
from tests.storage.contract_config import ConfigStoreContract
from tests.storage.contract_limits import LimitStoreContract
from tests.storage.contract_plans import PlanStoreContract


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "config.sqlite"


@pytest.fixture
def make_config_store(config_path: Path) -> Callable[[], SQLiteConfigStore]:
    return lambda: SQLiteConfigStore(config_path)


class TestSQLiteConfigStoreContract(ConfigStoreContract):
    pass


class TestSQLiteAuditLog(AuditLogContract):
    pass


class TestSQLiteLimitStore(LimitStoreContract):
    pass


class TestSQLitePlanStore(PlanStoreContract):
    pass


class TestSQLiteConfigStoreByURL(ConfigStoreContract):
    """The same contract through a SQLAlchemy URL instead of a path."""

    @pytest.fixture
    def make_config_store(self, config_path: Path) -> Callable[[], SQLiteConfigStore]:
        return lambda: SQLiteConfigStore(f"sqlite:///{config_path}")


@pytest.fixture
def store(make_config_store: Callable[[], SQLiteConfigStore]) -> Iterator[SQLiteConfigStore]:
    s = make_config_store()
    yield s
    s.close()


def test_wal_mode_and_migration_version(store: SQLiteConfigStore, config_path: Path) -> None:
    con = sqlite3.connect(config_path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert con.execute("SELECT version_num FROM tenantscope_alembic_version").fetchall() == [
            ("0006",)
        ]
    finally:
        con.close()


def test_migration_matches_the_table_definitions(config_path: Path) -> None:
    SQLiteConfigStore(config_path).close()
    engine = sa.create_engine(f"sqlite:///{config_path}")
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"version_table": "tenantscope_alembic_version"}
            )
            both = sa.MetaData()
            for table in [
                *metadata.tables.values(),
                *alert_rows.metadata.tables.values(),
                *limit_rows.metadata.tables.values(),
                *plan_rows.metadata.tables.values(),
            ]:
                table.to_metadata(both)
            diff = compare_metadata(ctx, both)
    finally:
        engine.dispose()
    assert diff == []


def test_reopening_does_not_migrate_twice(config_path: Path) -> None:
    SQLiteConfigStore(config_path).set_tenant("t")
    again = SQLiteConfigStore(config_path)
    try:
        assert [t.tenant_id for t in again.list_tenants()] == ["t"]
    finally:
        again.close()


def test_migration_files_are_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()
    assert "src/tenantscope" in MIGRATIONS_DIR.as_posix() or "site-packages" in str(MIGRATIONS_DIR)


def test_in_memory_store() -> None:
    store = SQLiteConfigStore(":memory:")
    try:
        store.set_tenant("t", tier="gold")
        got = store.get_tenant("t")
        assert got is not None and got.tier == "gold"
    finally:
        store.close()


_OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    from tenantscope.storage.sqlite_config import SQLiteConfigStore
    store = SQLiteConfigStore(sys.argv[1])
    store.set_tenant("from-cli", tier="enterprise", monthly_budget_usd="99.99")
    store.close()
    """
)


def test_another_process_can_change_config_while_open(
    store: SQLiteConfigStore, config_path: Path
) -> None:
    store.set_tenant("from-server")
    # the server's store stays open (and has just read) while a CLI process writes
    assert store.get_tenant("from-cli") is None
    subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, str(config_path)],
        check=True,
        timeout=120,
        env=dict(os.environ),
    )
    seen = store.get_tenant("from-cli")
    assert seen is not None and seen.tier == "enterprise"
    assert str(seen.monthly_budget_usd) == "99.99"
    assert [t.tenant_id for t in store.list_tenants()] == ["from-cli", "from-server"]


_OPEN_AND_WRITE = textwrap.dedent(
    """
    import sys
    from tenantscope.storage.sqlite_config import SQLiteConfigStore
    store = SQLiteConfigStore(sys.argv[1])
    for i in range(10):
        store.set_tenant(f"{sys.argv[2]}-{i}", tier=sys.argv[2])
    store.close()
    """
)


def test_processes_opening_a_fresh_file_at_once(config_path: Path) -> None:
    """Server and CLI may start together: the migration must run once, not fail twice."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AND_WRITE, str(config_path), f"p{k}"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    store = SQLiteConfigStore(config_path)
    try:
        assert len(store.list_tenants()) == 30
    finally:
        store.close()


# -- the audit log ---------------------------------------------------------------------------


def test_the_audit_log_is_append_only_in_the_database(
    store: SQLiteConfigStore, config_path: Path
) -> None:
    store.set_tenant("t", tier="x")
    con = sqlite3.connect(config_path)
    try:
        for statement in ("UPDATE audit_log SET target = 'forged'", "DELETE FROM audit_log"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                con.execute(statement)
        assert con.execute("SELECT target FROM audit_log").fetchall() == [("t",)]
    finally:
        con.close()


def test_a_change_whose_audit_entry_fails_is_not_stored(
    store: SQLiteConfigStore, config_path: Path
) -> None:
    """The entry is written in the change's own transaction: no change without its entry."""
    store.set_tenant("t", tier="before")
    con = sqlite3.connect(config_path)
    try:
        con.execute(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log"
            " BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
        )
        con.commit()
    finally:
        con.close()
    with pytest.raises(sa.exc.IntegrityError, match="audit refused"):
        store.set_tenant("t", tier="after")
    with pytest.raises(sa.exc.IntegrityError, match="audit refused"):
        store.set_tenant("new", tier="x")
    got = store.get_tenant("t")
    assert got is not None and got.tier == "before"
    assert store.get_tenant("new") is None


def _store_at_revision(path: Path, revision: str) -> None:
    """A config file as a release with migrations up to ``revision`` left it."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    command.upgrade(cfg, revision)


def test_a_store_from_before_the_audit_log_gains_it(config_path: Path) -> None:
    config_path.parent.mkdir(parents=True)
    _store_at_revision(config_path, "0002")
    con = sqlite3.connect(config_path)
    try:
        con.execute(
            "INSERT INTO tenants (tenant_id, display_name, tier, created_at, updated_at)"
            " VALUES ('old', 'Old Co', 'gold', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
        con.commit()
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "audit_log" not in tables
    finally:
        con.close()
    store = SQLiteConfigStore(config_path)
    try:
        con = sqlite3.connect(config_path)
        try:
            assert con.execute(
                "SELECT version_num FROM tenantscope_alembic_version"
            ).fetchall() == [("0006",)]
        finally:
            con.close()
        old = store.get_tenant("old")
        assert old is not None and old.tier == "gold"  # kept through the upgrade
        assert store.list_audit() == []
        store.set_tenant("old", actor=CLI, tier="platinum")
        (entry,) = store.list_audit()
        assert (entry.action, entry.target, entry.actor) == ("tenant.update", "old", CLI)
        assert entry.before is not None and entry.before["tier"] == "gold"
    finally:
        store.close()
