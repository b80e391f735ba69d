"""`tenantscope audit` and the audit entries the config commands write (actor ``cli``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from tenantscope.cli import app
from tests.test_cli import data_dir, invoke

__all__ = ["data_dir"]  # the fixture, used by name


def _entries(*args: str) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(invoke("audit", "--json", *args))
    return listed


def test_every_config_command_is_audited_as_cli(data_dir: Path) -> None:
    invoke("tenants", "set", "apex", "--name", "Apex [bold]Legal[/bold]", "--tier", "gold")
    invoke("tenants", "set", "apex", "--budget", "250.50")
    invoke("prices", "override", "gpt-4o", "--input", "2", "--effective-from", "2026-01-01")
    invoke("keys", "create", "--role", "admin", "--name", "first")
    out = invoke("keys", "create", "--role", "reader", "--name", "ro")
    token = out.strip().splitlines()[-1]
    key_id = token.split("_")[1]
    invoke("keys", "revoke", key_id)
    entries = _entries()
    assert [e["action"] for e in entries] == [
        "key.revoke",
        "key.create",
        "key.create",
        "price_override.add",
        "tenant.update",
        "tenant.create",
    ]
    assert {json.dumps(e["actor"]) for e in entries} == {
        json.dumps({"kind": "cli", "key_id": None, "name": "", "role": None})
    }
    update = entries[4]
    assert update["before"]["monthly_budget_usd"] is None  # type: ignore[index]
    assert update["after"]["monthly_budget_usd"] == "250.50"  # type: ignore[index]
    assert token.split("_", 2)[2] not in json.dumps(entries)


def test_the_table_filters_and_limits(data_dir: Path) -> None:
    for i in range(4):
        invoke("tenants", "set", f"t{i}", "--tier", "gold")
    invoke("tenants", "set", "t1", "--name", "Tee [red]One[/red]")
    table = invoke("audit")
    assert table.count("tenant.create") == 4 and table.count("tenant.update") == 1
    # markup in a tenant's name is shown as typed, not interpreted
    assert "Tee [red]One[/red]" in table
    assert "display_name: — → Tee [red]One[/red]" in table
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", table)
    assert len(_entries("--limit", "2")) == 2
    assert [e["target"] for e in _entries("--target", "t1")] == ["t1", "t1"]
    assert [e["target"] for e in _entries("--action", "tenant.update")] == ["t1"]
    assert _entries("--since", "2199-01-01") == []


def test_bad_options_say_what_to_send(data_dir: Path) -> None:
    runner = CliRunner()
    for args, message in (
        (["--action", "tenant.rename"], "--action must be one of"),
        (["--since", "last week"], "--since"),
        (["--limit", "0"], "--limit"),
    ):
        res = runner.invoke(app, ["audit", *args], env={"COLUMNS": "200"})
        assert res.exit_code != 0, args
        assert message in res.output, res.output
