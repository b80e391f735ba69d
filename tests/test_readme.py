"""The README's examples and command table say what the product does (issue 11, item 13:
a copied curl got a 401; options of demo/serve were missing from the table)."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from tenantscope.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
PUBLIC = ("/healthz", "/readyz", "/docs", "/login", "/openapi.json")


def _curl_commands() -> list[str]:
    # a command with its continuation lines
    return re.findall(r"curl [^\n]*(?:\\\n[^\n]*)*", README)


def test_every_curl_to_a_protected_route_sends_a_key() -> None:
    commands = _curl_commands()
    assert commands
    for command in commands:
        if any(path in command for path in PUBLIC):
            continue
        assert "Authorization: Bearer" in command, command


def test_the_command_table_lists_every_command_and_option() -> None:
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(
            r"^\| `tenantscope ([a-z]+(?: [a-z]+)?)(?:[^|\\]|\\\|)*\|", README, re.M
        )
    }
    group = typer.main.get_command(app)
    commands = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        if subcommands:
            commands += [(f"{name} {sub}", c) for sub, c in subcommands.items()]
        else:
            commands.append((name, command))
    for name, command in commands:
        assert name in rows, f"tenantscope {name} is not in README's command table"
        for param in command.params:
            names = [*param.opts, *getattr(param, "secondary_opts", [])]
            longs = [o for o in names if o.startswith("--")]
            if not longs or param.hidden:
                continue
            assert any(o.split("/")[0] in rows[name] for o in longs), (name, longs)
