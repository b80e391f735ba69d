"""`tenantscope alerts ...` on a data dir: the seeds' rules in one line each, field errors
named with nothing stored, contact points with secrets from the environment, silences
and history."""

from __future__ import annotations

import json
from pathlib import Path

from tenantscope.cli import app
from tenantscope.storage.sqlite_config import SQLiteConfigStore
from tests.test_cli import runner


def _run(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)], env=env)
    return result.exit_code, result.output


def test_the_seeds_rules_are_one_line_each(tmp_path: Path) -> None:
    d = tmp_path / "data"
    code, out = _run(
        d,
        "alerts",
        "contacts",
        "add",
        "#alerts",
        "--kind",
        "slack",
        "--url",
        "https://hooks.slack.com/services/T/B/X",
    )
    assert code == 0, out
    for tenant, threshold in (("apex-legal", "2000"), ("stratex-consulting", "3000")):
        code, out = _run(
            d, "alerts", "create", f"{tenant} p95", "--metric", "latency_p95", "--scope", "trace",
            "--threshold", threshold, "--window", "5m", "--tenant", tenant, "--contact", "1",
        )  # fmt: skip
        assert code == 0, out
    code, out = _run(d, "alerts", "list", "--json")
    rules = json.loads(out)
    assert [(r["tenant_ids"], r["threshold"], r["scope"], r["window"]) for r in rules] == [
        (["apex-legal"], "2000", "trace", "5m"),
        (["stratex-consulting"], "3000", "trace", "5m"),
    ]
    code, out = _run(d, "alerts", "update", "1", "--threshold", "2500", "--json")
    assert (
        code == 0 and json.loads(out)["threshold"] == "2500" and json.loads(out)["window"] == "5m"
    )
    code, out = _run(d, "alerts", "silence", "1", "--for", "2h")
    assert code == 0 and "silenced until" in out
    code, out = _run(d, "alerts", "contacts", "list", "--json")
    assert json.loads(out)[0]["settings"] == {"url": "https://hooks.slack.com/…"}
    store = SQLiteConfigStore(d / "config.db")
    try:
        actions = [e.action for e in store.list_audit()]
        assert actions.count("alert_rule.create") == 2 and "alert_rule.silence" in actions
        assert all(e.actor.kind == "cli" for e in store.list_audit())
    finally:
        store.close()


def test_a_wrong_rule_names_each_field_and_stores_nothing(tmp_path: Path) -> None:
    d = tmp_path / "data"
    code, out = _run(
        d,
        "alerts",
        "create",
        "x",
        "--metric",
        "latency_p42",
        "--threshold",
        "lots",
        "--window",
        "5 fortnights",
    )
    assert code == 1
    for field in ("metric", "threshold", "window"):
        assert f"{field}:" in out
    code, out = _run(d, "alerts", "list", "--json")
    assert json.loads(out) == []


def test_contact_secrets_come_from_the_environment(tmp_path: Path) -> None:
    d = tmp_path / "data"
    code, out = _run(
        d, "alerts", "contacts", "add", "mail", "--kind", "email", "--to", "ops@example.com",
        "--from", "alerts@example.com", "--host", "smtp.example.com", "--username", "alerts",
        "--password-env", "SMTP_PW",
    )  # fmt: skip
    assert code == 1 and "SMTP_PW is not set" in out
    code, out = _run(
        d, "alerts", "contacts", "add", "mail", "--kind", "email", "--to", "ops@example.com",
        "--from", "alerts@example.com", "--host", "smtp.example.com", "--username", "alerts",
        "--password-env", "SMTP_PW", env={"SMTP_PW": "hunter2-hunter2"},
    )  # fmt: skip
    assert code == 0, out
    code, out = _run(d, "alerts", "contacts", "list", "--json")
    assert "hunter2" not in out and json.loads(out)[0]["settings"]["password"] == "(set)"
