"""What the ``tenantscope`` command's modules share: the consoles, the common options and
opening the config store of a data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from tenantscope.errors import ConfigError
from tenantscope.server.settings import Settings
from tenantscope.storage.base import ConfigStore

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="data directory [env TENANTSCOPE_DATA_DIR; default: per-user dir]"
    ),
]
FromOpt = Annotated[str | None, typer.Option("--from", help="RFC 3339 or epoch seconds")]
ToOpt = Annotated[str | None, typer.Option("--to", help="RFC 3339 or epoch seconds")]


def _settings(**given: Any) -> Settings:
    try:
        return Settings.load(**given)
    except ConfigError as exc:
        _fail(exc.message)


def _fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _config(settings: Settings) -> ConfigStore:
    from tenantscope.storage.sqlite_config import SQLiteConfigStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SQLiteConfigStore(settings.config_path)
