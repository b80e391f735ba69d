"""`tenantscope limits ...` on a real data dir: the seeds' tiers in one line each, field
errors named per field (with the flag to fix) and nothing stored, approvals granted and
revoked with who and why, and `limits status` from the data dir (no server) and from a
running server, the same figures either way."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from tenantscope.cli import app
from tenantscope.limits.periods import period
from tenantscope.server.services import Services
from tenantscope.storage.sqlite_config import SQLiteConfigStore
from tenantscope.testing.server import free_port
from tests.conftest import make_settings, serve_app
from tests.dashboard.test_limits_pages import spend
from tests.test_cli import runner


def _run(data_dir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)], env={"COLUMNS": "220"})
    return result.exit_code, result.output


def test_the_seeds_tiers_are_one_line_each(tmp_path: Path) -> None:
    d = tmp_path / "data"
    for tier, rpm in (("enterprise", "60"), ("professional", "30"), ("starter", "10")):
        code, out = _run(
            d, "limits", "create", f"{tier} rate", "--kind", "rate", "--tier", tier, "--rpm", rpm
        )
        assert code == 0, out
        assert f"{tier} rate" in out and f"{rpm} requests/min" in out and f"tier {tier}" in out
    code, out = _run(
        d,
        "limits",
        "create",
        "apex budget",
        "--kind",
        "budget",
        "--tenant",
        "apex-legal",
        "--usd",
        "250",
        "--timezone",
        "Europe/Berlin",
        "--anchor-day",
        "15",
        "--thresholds",
        "80,100",
        "--mode",
        "soft",
        "--json",
    )
    assert code == 0, out
    budget = json.loads(out)
    assert budget["ref"] == "L4" and budget["amount_usd"] == "250"
    assert (budget["timezone"], budget["anchor_day"], budget["thresholds"]) == (
        "Europe/Berlin",
        15,
        [80, 100],
    )
    code, out = _run(d, "limits", "list", "--json")
    assert [(x["ref"], x["tier"], x["requests_per_minute"]) for x in json.loads(out)[:3]] == [
        ("L1", "enterprise", 60),
        ("L2", "professional", 30),
        ("L3", "starter", 10),
    ]
    code, out = _run(d, "limits", "list")
    assert code == 0 and "tier starter" in out and "its tier's default" in out
    # update: the options given change, the rest stay
    code, out = _run(d, "limits", "update", "L3", "--rpm", "12", "--json")
    assert code == 0 and json.loads(out)["requests_per_minute"] == 12
    assert json.loads(out)["tier"] == "starter"
    code, out = _run(d, "limits", "show", "3", "--json")
    assert json.loads(out)["requests_per_minute"] == 12 and json.loads(out)["approvals"] == []
    code, out = _run(d, "limits", "delete", "L2")
    assert code == 0 and "L2 removed" in out
    code, out = _run(d, "limits", "delete", "L2")
    assert code == 1 and "no limit L2" in out
    code, out = _run(d, "limits", "show", "two")
    assert code == 1 and "not a limit id" in out
    store = SQLiteConfigStore(d / "config.db")
    try:
        entries = [e for e in store.list_audit() if e.action.startswith("limit.")]
        assert sorted(e.action for e in entries) == [
            *["limit.create"] * 4,
            "limit.delete",
            "limit.update",
        ]
        assert {e.actor.kind for e in entries} == {"cli"}
    finally:
        store.close()


def test_a_wrong_limit_names_each_field_and_stores_nothing(tmp_path: Path) -> None:
    d = tmp_path / "data"
    code, out = _run(
        d,
        "limits",
        "create",
        "x",
        "--kind",
        "budget",
        "--rpm",
        "fast",
        "--timezone",
        "Mars/Olympus",
        "--tenant",
        "a",
        "--tier",
        "b",
    )
    assert code == 1
    for line in (
        "amount_usd (--usd): required for a budget",
        "requests_per_minute (--rpm):",
        "timezone (--timezone): an IANA time zone name",
        "tier (--tier): give a tenant_id or a tier",
    ):
        assert line in out, out
    code, out = _run(d, "limits", "create", "y")
    assert code == 1 and "kind (--kind): rate" in out
    code, out = _run(d, "limits", "list", "--json")
    assert json.loads(out) == []


def test_approvals_are_granted_listed_and_revoked(tmp_path: Path) -> None:
    d = tmp_path / "data"
    _run(
        d, "limits", "create", "acme budget", "--kind", "budget", "--tenant", "acme", "--usd", "100"
    )
    # wrong: a budget raised by requests, no end, no tenant
    code, out = _run(d, "limits", "approve", "L1", "--rpm", "5")
    assert code == 1
    for field in ("tenant_id (--tenant)", "amount_usd (--usd)", "expires_at (--for / --until)"):
        assert field in out, out
    code, out = _run(d, "limits", "approve", "L9", "--tenant", "acme", "--usd", "5", "--for", "1d")
    assert code == 1 and "limit (LIMIT): a limit id" in out
    code, out = _run(
        d, "limits", "approve", "L1", "--tenant", "acme", "--usd", "5", "--for", "soon"
    )
    assert code == 1 and "a duration like 2h" in out
    code, out = _run(
        d,
        "limits",
        "approve",
        "L1",
        "--tenant",
        "acme",
        "--usd",
        "50",
        "--for",
        "7d",
        "--reason",
        "quarter-end batch",
        "--by",
        "dana",
    )
    assert code == 0, out
    assert "approval 1: +50 USD on L1 for tenant acme until" in out
    code, out = _run(
        d,
        "limits",
        "approve",
        "tenant:rate",
        "--tenant",
        "acme",
        "--rpm",
        "20",
        "--until",
        "2030-01-01T00:00:00Z",
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["expires_at"] == "2030-01-01T00:00:00Z"
    assert json.loads(out)["granted_by"].startswith("cli")
    code, out = _run(d, "limits", "approvals", "--json")
    listed = json.loads(out)
    assert [(a["id"], a["limit_ref"], a["granted_by"], a["reason"]) for a in listed][0] == (
        1,
        "L1",
        "dana",
        "quarter-end batch",
    )
    code, out = _run(d, "limits", "approvals")
    assert code == 0 and "dana" in out and "in force" in out
    code, out = _run(d, "limits", "revoke", "1")
    assert code == 0 and "approval 1 revoked" in out
    code, out = _run(d, "limits", "approvals", "--active", "--json")
    assert [a["id"] for a in json.loads(out)] == [2]
    code, out = _run(d, "limits", "approvals")
    assert "revoked" in out
    code, out = _run(d, "limits", "revoke", "7")
    assert code == 1 and "no approval 7" in out
    code, out = _run(d, "limits", "show", "L1", "--json")
    assert [a["id"] for a in json.loads(out)["approvals"]] == [1]


def test_status_from_the_data_dir_and_from_the_running_server(tmp_path: Path) -> None:
    """Without a server the command reads the data dir; with one it asks it: the same
    budget figures either way, and the server's also hold the rate of the last minute."""
    d = tmp_path / "data"
    _run(d, "tenants", "set", "acme", "--budget", "1")
    _run(d, "limits", "create", "acme rate", "--kind", "rate", "--tenant", "acme", "--rpm", "1")
    settings = make_settings(d, port=free_port(), duckdb_threads=2, ingest_workers=0, alerts=False)
    svc = Services.open(settings)
    try:
        # within this month: the day before now, or now itself early on its first day
        now = datetime.now(timezone.utc)
        at = max(now, period(now)[0] + timedelta(days=1, minutes=5))
        svc.writer.write_sync(spend("acme", "0.25", 2, before=at))
    finally:
        svc.close()
    code, out = _run(d, "limits", "status", "--json")
    assert code == 0, out
    offline = json.loads(out)
    (acme,) = offline["tenants"]
    budget = next(f for f in acme["limits"] if f["kind"] == "budget")
    assert (budget["id"], budget["used"], budget["remaining"]) == ("tenant:budget", "0.5", "0.5")
    assert Decimal(budget["projected_at_period_end"]) >= Decimal("0.5")
    code, out = _run(d, "limits", "status", "--tenant", "acme")
    assert code == 0 and "$0.5000" in out and "acme rate (L1)" in out
    assert "no server runs on this data dir" in out
    svc = Services.open(settings)
    try:
        with serve_app(svc) as srv:
            from tenantscope.limits.figures import Call

            assert svc.limiter.check(Call(tenant_id="acme")).allowed
            assert not svc.limiter.check(Call(tenant_id="acme")).allowed  # 1 per minute
            result = runner.invoke(
                app,
                ["limits", "status", "--json", "--url", srv.url, "--data-dir", str(d)],
                env={"TENANTSCOPE_API_KEY": srv.admin_key},
            )
            assert result.exit_code == 0, result.output
            online = json.loads(result.output)
            (acme,) = online["tenants"]
            by_id = {(f["id"], f["measure"]): f for f in acme["limits"]}
            assert by_id[("tenant:budget", "usd_per_period")]["used"] == "0.5"
            assert by_id[("L1", "requests_per_minute")]["used"] == "1"
            # a reader key works too; no key: said what to send
            result = runner.invoke(
                app,
                ["limits", "status", "--url", srv.url, "--data-dir", str(d)],
                env={"TENANTSCOPE_API_KEY": ""},
            )
            assert result.exit_code == 1 and "needs an API key" in result.output
    finally:
        svc.close()
    code, out = _run(d, "limits", "status", "--url", "http://127.0.0.1:9")
    assert code == 1 and "cannot reach" in out
