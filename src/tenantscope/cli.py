"""The ``tenantscope`` command: serve, demo, tenants, usage, prices, reprice, export (and
the alerts, audit, limits and plans commands of their own modules)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tenantscope import __version__
from tenantscope.cli_alerts import alerts_app
from tenantscope.cli_audit import audit
from tenantscope.cli_common import (
    DataDirOpt,
    FromOpt,
    ToOpt,
    _config,
    _fail,
    _settings,
    console,
    err_console,
)
from tenantscope.cli_limits import limits_app
from tenantscope.cli_plans import plans_app
from tenantscope.errors import TenantscopeError
from tenantscope.query.params import TimeRange, parse_time
from tenantscope.server.settings import Settings
from tenantscope.storage.base import CLI, TENANT_SETTABLE, Actor, EventStore, PriceOverride

if TYPE_CHECKING:
    from tenantscope.server.services import Services

app = typer.Typer(
    help="Per-tenant cost, usage and SLA for the LLM calls of B2B AI products.",
    no_args_is_help=True,
    add_completion=False,
)
tenants_app = typer.Typer(help="Tenant configuration (works while the server runs).")
prices_app = typer.Typer(help="The price catalog and operator overrides.")
app.add_typer(tenants_app, name="tenants")
app.add_typer(prices_app, name="prices")
keys_app = typer.Typer(help="API keys and their roles (works while the server runs).")
app.add_typer(keys_app, name="keys")
app.command("audit")(audit)
app.add_typer(alerts_app, name="alerts")
app.add_typer(limits_app, name="limits")
app.add_typer(plans_app, name="plans")


def _events(settings: Settings) -> EventStore:
    """Open the event store directly. DuckDB lets one process own the file, so this
    fails while a server runs on the same data dir; the message says so."""
    from tenantscope.storage.duckdb_events import DuckDBEventStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        store = DuckDBEventStore(
            settings.events_path,
            memory_limit=settings.duckdb_memory_limit,
            threads=settings.duckdb_threads or None,
            checkpoint_threshold=settings.duckdb_checkpoint_threshold,
        )
    except TenantscopeError as exc:
        _fail(exc.message)
    if any(settings.wal_path.glob("*.arrows")):
        _store_logged(settings, store)
    return store


def _store_logged(settings: Settings, store: EventStore) -> None:
    """A server that stopped abruptly left answered spans in its log: store them first,
    so this command reads what the server had answered."""
    from tenantscope.ingest.wal import WriteAheadLog
    from tenantscope.ingest.writer import BatchWriter

    # logged spans were priced before they were logged: nothing here prices
    writer = BatchWriter(
        store,
        lambda record: None,
        trace_window=timedelta(hours=settings.trace_window_hours),
        wal=WriteAheadLog(settings.wal_path),
    )
    writer.start()
    writer.stop()


def _range(start: str | None, end: str | None, default: timedelta) -> TimeRange:
    try:
        return TimeRange.parse(start, end, default=default)
    except TenantscopeError as exc:
        _fail(exc.message)
        raise


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # migrations run at every start; their INFO lines say nothing an operator needs
    logging.getLogger("alembic").setLevel(logging.WARNING)


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="print the version")] = False,
) -> None:
    if version:
        console.print(f"tenantscope {__version__}")
        raise typer.Exit()


# --- serve / demo ---------------------------------------------------------------------------
def _open_services(settings: Settings) -> Services:
    """Open the stores before serving, so a data dir in use (or unreadable) is one clear
    line instead of a traceback from inside the server's startup."""
    from tenantscope.server.services import Services

    try:
        return Services.open(settings)
    except TenantscopeError as exc:
        _fail(exc.message)


def _make_server(settings: Settings, services: Services) -> Any:
    import uvicorn

    from tenantscope.server.app import create_app
    from tenantscope.server.serving import uvicorn_config

    app = create_app(settings, services=services, close_services=True)
    return uvicorn.Server(uvicorn_config(app, settings))


def _run_server(settings: Settings, services: Services) -> None:
    try:
        from tenantscope.ingest.gc_tuning import tune_for_ingest

        tune_for_ingest()
        _make_server(settings, services).run()
    finally:
        services.close()


InsecureOpt = Annotated[
    bool,
    typer.Option(
        "--insecure-no-auth",
        help="serve without API keys, every caller admin (loopback only; local experiments)"
        " [env TENANTSCOPE_INSECURE_NO_AUTH]",
    ),
]


def _first_admin_key(settings: Settings, services: Services) -> str | None:
    """Secure by default: a server with no key yet makes an admin key, shown this once."""
    from tenantscope.server.keys import issue_key

    if settings.insecure_no_auth or any(k.active for k in services.config.list_api_keys()):
        return None
    made_by = Actor("cli", name="tenantscope serve")
    return issue_key(services.config, "admin", "first admin key (made by serve)", actor=made_by)[1]


def _print_key(token: str, url: str, what: str) -> None:
    console.print(f"  {what}  [bold]{token}[/bold]")
    console.print("            shown once: keep it. Sign in to the dashboard with it at")
    console.print(f"            {url}/login  (more keys: tenantscope keys create)")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="[env TENANTSCOPE_HOST; 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="[env TENANTSCOPE_PORT; 4318]")] = None,
    data_dir: DataDirOpt = None,
    insecure_no_auth: InsecureOpt = False,
) -> None:
    """Run the server: OTLP + events ingest, dashboard and JSON API, on one port."""
    settings = _settings(
        host=host, port=port, data_dir=data_dir, insecure_no_auth=insecure_no_auth or None
    )
    _configure_logging(settings.log_level)
    url = f"http://{settings.host}:{settings.port}"
    services = _open_services(settings)
    console.print(f"tenantscope {__version__} serving on [bold]{url}[/bold]")
    console.print(f"  dashboard {url}/")
    console.print(f"  data dir  {settings.data_dir}")
    console.print(f"  OTLP      OTEL_EXPORTER_OTLP_ENDPOINT={url}")
    console.print(f"  API docs  {url}/docs")
    if settings.insecure_no_auth:
        console.print(
            "  [yellow]no authentication[/yellow] (--insecure-no-auth): every caller is admin"
        )
    else:
        token = _first_admin_key(settings, services)
        if token is not None:
            _print_key(token, url, "admin key")
    _run_server(settings, services)


@app.command()
def demo(
    host: Annotated[str | None, typer.Option(help="[env TENANTSCOPE_HOST; 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="[env TENANTSCOPE_PORT; 4318]")] = None,
    data_dir: DataDirOpt = None,
    traces: Annotated[int, typer.Option(help="how many traces to generate")] = 6000,
    tenants: Annotated[int, typer.Option(help="tenants besides the three named ones")] = 50,
    days: Annotated[int, typer.Option(help="spread traffic over this many days")] = 7,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same data)")] = 7,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="keep serving after loading")
    ] = True,
    insecure_no_auth: InsecureOpt = False,
) -> None:
    """Start the server, send realistic multi-tenant traffic through its real OTLP
    endpoint (the seeds' three-tier meeting-summary SaaS plus Zipf-skewed tenants), then
    keep serving."""
    from tenantscope.demo import configure_tenants, demo_batches, demo_tenants
    from tenantscope.demo_plans import configure_plans

    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        log_level="warning",
        insecure_no_auth=insecure_no_auth or None,
    )
    _configure_logging("warning")
    tenant_list = demo_tenants(n_extra=tenants, seed=seed)
    now = datetime.now(timezone.utc)
    cfg = _config(settings)
    configure_tenants(cfg, tenant_list)
    # each tier's plan from the billing period holding the traffic's first day
    configure_plans(cfg, tenant_list, since=now - timedelta(days=days))
    cfg.close()

    services = _open_services(settings)
    headers: dict[str, str] = {}
    token = None
    if not settings.insecure_no_auth:
        from tenantscope.server.keys import issue_key

        # the demo signs in with a key of its own, shown at the end for the dashboard
        token = issue_key(
            services.config,
            "admin",
            "demo (made by tenantscope demo)",
            actor=Actor("cli", name="tenantscope demo"),
        )[1]
        headers["authorization"] = f"Bearer {token}"
    server = _make_server(settings, services)
    thread = threading.Thread(target=server.run, name="tenantscope-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            _fail(f"the server did not start on {settings.host}:{settings.port}")
        time.sleep(0.05)
    url = f"http://{settings.host}:{settings.port}"
    batches = demo_batches(tenant_list, days=days, traces=traces, seed=seed, now=now)
    sent = 0
    with (
        httpx.Client(base_url=url, timeout=60, headers=headers) as client,
        Progress(
            TextColumn("sending demo spans"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("demo", total=len(batches))
        for body in batches:
            resp = client.post(
                "/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
            )
            if resp.status_code != 200:
                _fail(f"ingest answered {resp.status_code}: {resp.text[:300]}")
            sent += 1
            progress.advance(task)
        top = client.get("/api/tenants", params={"limit": 5}).json()
    console.print(f"loaded {traces} traces for {len(tenant_list)} tenants in {sent} requests")
    table = Table("tenant", "requests", "cost (USD)", title="top tenants, last 7 days")
    for row in top.get("items", []):
        table.add_row(row["tenant_id"], str(row["requests"]), row["cost_usd"])
    console.print(table)
    console.print(f"open [bold]{url}/[/bold] (dashboard); API docs at {url}/docs")
    if token is not None:
        _print_key(token, url, "admin key")
    try:
        while serve_after and thread.is_alive():
            thread.join(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(30)
        services.close()  # checkpoints the event file


# --- keys -----------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(
    role: Annotated[
        str,
        typer.Option(
            help="admin (everything), ingest (send data), reader (read all tenants),"
            " tenant (read one tenant: its portal)"
        ),
    ],
    name: Annotated[str, typer.Option(help="what the key is for, e.g. the app or person")] = "",
    tenant: Annotated[
        str | None,
        typer.Option(help="the tenant a tenant key reads (required), or an ingest key writes"),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a key. Its token is printed this once; only a hash is stored."""
    from tenantscope.server.keys import issue_key

    settings = _settings(data_dir=data_dir)
    cfg = _config(settings)
    try:
        key, token = issue_key(cfg, role, name, tenant, actor=CLI)
    except TenantscopeError as exc:
        _fail(exc.message)
    finally:
        cfg.close()
    scope = f" for tenant {tenant}" if tenant else ""
    if role == "tenant":
        url = _server_url(settings)
        console.print(f"the tenant signs in to its own portal at {url}/login with this key")
    console.print(f"created {role} key {key.key_id}{scope}; the key (shown once):")
    print(token)  # plain and last, so `tenantscope keys create ... | tail -1` captures it


@keys_app.command("list")
def keys_list(
    data_dir: DataDirOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Every key (never the secrets): id, role, tenant, name, created, last used, revoked."""
    cfg = _config(_settings(data_dir=data_dir))
    keys = cfg.list_api_keys()
    cfg.close()
    if json_out:
        print(
            json.dumps(
                [
                    {
                        "key_id": k.key_id,
                        "role": k.role,
                        "tenant_id": k.tenant_id,
                        "name": k.name,
                        "created_at": _iso(k.created_at),
                        "last_used_at": _iso(k.last_used_at),
                        "revoked_at": _iso(k.revoked_at),
                    }
                    for k in keys
                ],
                indent=2,
            )
        )
        return
    table = Table("key id", "role", "tenant", "name", "created", "last used", "state")
    for k in keys:
        table.add_row(
            k.key_id,
            k.role,
            k.tenant_id or "",
            k.name,
            _iso(k.created_at),
            _iso(k.last_used_at),
            "active" if k.active else f"revoked {_iso(k.revoked_at)}",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDirOpt = None) -> None:
    """Revoke a key: a running server refuses it within seconds. The last active admin
    key cannot be revoked (make another one first)."""
    cfg = _config(_settings(data_dir=data_dir))
    try:
        if not cfg.revoke_api_key(key_id, actor=CLI):
            _fail(f"no active key {key_id!r} (see tenantscope keys list)")
    except TenantscopeError as exc:  # the last admin key stays
        _fail(exc.message)
    finally:
        cfg.close()
    console.print(f"revoked {key_id}")


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


# --- tenants --------------------------------------------------------------------------------
@tenants_app.command("list")
def tenants_list(data_dir: DataDirOpt = None) -> None:
    """Configured tenants (tenants need no registration; this lists those with config)."""
    cfg = _config(_settings(data_dir=data_dir))
    table = Table("tenant", "name", "tier", "SLA p95 ms", "req/min", "budget USD/month")
    for t in cfg.list_tenants():
        table.add_row(
            t.tenant_id,
            t.display_name,
            t.tier,
            _opt(t.sla_p95_ms),
            _opt(t.rate_limit_rpm),
            _opt(t.monthly_budget_usd),
        )
    console.print(table)


def _opt(value: object) -> str:
    return "" if value is None else str(value)


@tenants_app.command("show")
def tenants_show(tenant_id: str, data_dir: DataDirOpt = None) -> None:
    """One tenant's configuration as JSON."""
    cfg = _config(_settings(data_dir=data_dir))
    t = cfg.get_tenant(tenant_id)
    if t is None:
        _fail(f"tenant {tenant_id!r} has no configuration (set some with `tenants set`)")
        return
    console.print_json(
        json.dumps(
            {
                "tenant_id": t.tenant_id,
                "display_name": t.display_name,
                "tier": t.tier,
                "sla_p95_ms": t.sla_p95_ms,
                "rate_limit_rpm": t.rate_limit_rpm,
                "monthly_budget_usd": None
                if t.monthly_budget_usd is None
                else str(t.monthly_budget_usd),
            }
        )
    )


@tenants_app.command("set")
def tenants_set(
    tenant_id: str,
    name: Annotated[str | None, typer.Option("--name", help="display name")] = None,
    tier: Annotated[str | None, typer.Option(help="plan tier, e.g. enterprise")] = None,
    sla_p95_ms: Annotated[
        str | None, typer.Option("--sla-p95-ms", help="p95 latency target in ms; 'none' clears")
    ] = None,
    rate_limit_rpm: Annotated[
        str | None, typer.Option("--rate-limit-rpm", help="requests per minute; 'none' clears")
    ] = None,
    budget: Annotated[
        str | None, typer.Option("--budget", help="monthly budget in USD; 'none' clears")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create or update a tenant's configuration; only the given fields change."""
    fields: dict[str, Any] = {}
    if name is not None:
        fields["display_name"] = name
    if tier is not None:
        fields["tier"] = tier
    for key, raw, conv in (
        ("sla_p95_ms", sla_p95_ms, int),
        ("rate_limit_rpm", rate_limit_rpm, int),
        ("monthly_budget_usd", budget, Decimal),
    ):
        if raw is None:
            continue
        if raw.lower() in ("none", "null", ""):
            fields[key] = None
            continue
        try:
            fields[key] = conv(raw)
        except (ValueError, InvalidOperation):
            _fail(f"--{key.replace('_', '-')}: {raw!r} is not a number")
    assert set(fields) <= set(TENANT_SETTABLE)
    if not fields:
        _fail("nothing to set: give --name, --tier, --sla-p95-ms, --rate-limit-rpm or --budget")
    cfg = _config(_settings(data_dir=data_dir))
    try:
        t = cfg.set_tenant(tenant_id, actor=CLI, **fields)
    except TenantscopeError as exc:
        _fail(exc.message)
        return
    console.print(f"tenant [bold]{t.tenant_id}[/bold] updated")


# --- usage ----------------------------------------------------------------------------------
@app.command()
def usage(
    tenant_id: str,
    start: FromOpt = None,
    end: ToOpt = None,
    url: Annotated[
        str | None,
        typer.Option(help="ask this running server (default: the local server, else the data dir)"),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar="TENANTSCOPE_API_KEY", help="a key that may read this tenant"
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """A tenant's tokens, requests, sessions and cost (default: the last 30 days)."""
    settings = _settings(data_dir=data_dir)
    rng = _range(start, end, timedelta(days=30))
    params = {"from": rng.start.isoformat(), "to": rng.end.isoformat()}
    body: dict[str, Any] | None = None
    base = url or _server_url(settings)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(
            f"{base}/api/tenants/{_quote(tenant_id)}/usage", params=params, headers=headers
        )
    except httpx.HTTPError:
        if url is not None:
            _fail(f"cannot reach {url}")
        resp = None
    if resp is not None:
        if resp.status_code == 401:
            _fail(
                f"{base} needs an API key that may read {tenant_id}:"
                " --api-key or TENANTSCOPE_API_KEY"
            )
        if resp.status_code != 200:
            _fail(f"{base} answered {resp.status_code}: {resp.text[:300]}")
        body = resp.json()
    else:
        from tenantscope.query.queries import Queries
        from tenantscope.query.scope import Scope

        events, cfg = _events(settings), _config(settings)
        try:
            body = (
                Queries(events, cfg)
                .tenant_usage(Scope.all(), tenant_id, rng)
                .model_dump(mode="json")
            )
        finally:
            events.close()
            cfg.close()
    assert body is not None
    if as_json:
        console.print_json(json.dumps(body))
        return
    table = Table("tenant", "tokens", "requests", "sessions", "cost (USD)")
    table.add_row(
        body["tenant_id"],
        f"{body['token_count']:,}",
        f"{body['request_count']:,}",
        f"{body['session_count']:,}",
        body["total_cost"],
    )
    console.print(table)
    console.print(f"{body['start']} .. {body['end']}")


def _server_url(settings: Settings) -> str:
    """The server running on this data dir (whatever port it was started with), else
    where the settings say it would listen."""
    from tenantscope.server.runfile import local_url, running_url

    return running_url(settings.data_dir) or local_url(settings.host, settings.port)


def _quote(segment: str) -> str:
    from urllib.parse import quote

    return quote(segment, safe="")


# --- prices ---------------------------------------------------------------------------------
@prices_app.command("show")
def prices_show(
    model: Annotated[str | None, typer.Argument(help="a model; default: all overrides")] = None,
    provider: Annotated[str | None, typer.Option(help="provider id, e.g. openai")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Catalog price of a model (per million tokens) and the operator overrides."""
    from tenantscope.pricing.catalog import catalog_model, catalog_price, catalog_version

    now = datetime.now(timezone.utc)
    if model is not None:
        cp = catalog_price(provider, model, now)
        if cp is None:
            console.print(f"{model}: not in the catalog ({catalog_version()})")
        else:
            table = Table(
                "provider",
                "model",
                "input",
                "cached input",
                "cache write",
                "output",
                title=f"catalog price, USD per 1M tokens ({catalog_version()})",
            )
            table.add_row(
                cp.provider,
                cp.model,
                _opt(cp.input_mtok),
                _opt(cp.cache_read_mtok),
                _opt(cp.cache_write_mtok),
                _opt(cp.output_mtok) + (" (tiered)" if cp.tiered else ""),
            )
            console.print(table)
    cfg = _config(_settings(data_dir=data_dir))
    overrides = cfg.list_price_overrides(model)
    table = Table(
        "id",
        "provider",
        "model",
        "effective from",
        "input",
        "cached",
        "cache write",
        "output",
        "prices",
        "note",
        title="overrides, USD per 1M tokens",
    )
    for o in overrides:
        family = catalog_model(o.provider or None, o.model)
        table.add_row(
            str(o.id),
            o.provider or "*",
            o.model,
            o.effective_from.isoformat(),
            _opt(o.input_mtok),
            _opt(o.cache_read_mtok),
            _opt(o.cache_write_mtok),
            _opt(o.output_mtok),
            # the catalog model the name stands for: the dated names it prices as it too
            f"{o.model} and the catalog's {family[0]}/{family[1]} names"
            if family is not None
            else f"{o.model} exactly",
            o.note,
        )
    console.print(table)


def _dec(raw: str | None, flag: str) -> Decimal | None:
    if raw is None:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        _fail(f"{flag}: {raw!r} is not a decimal number")
        raise
    if not value.is_finite() or value < 0:
        _fail(f"{flag}: must be a finite number >= 0")
    return value


@prices_app.command("override")
def prices_override(
    model: str,
    input_mtok: Annotated[str | None, typer.Option("--input", help="USD per 1M input")] = None,
    output_mtok: Annotated[str | None, typer.Option("--output", help="USD per 1M output")] = None,
    cache_read: Annotated[str | None, typer.Option("--cache-read", help="USD per 1M")] = None,
    cache_write: Annotated[str | None, typer.Option("--cache-write", help="USD per 1M")] = None,
    provider: Annotated[str, typer.Option(help="provider id; default any")] = "",
    effective_from: Annotated[
        str | None, typer.Option("--effective-from", help="RFC 3339; default now")
    ] = None,
    note: Annotated[str, typer.Option(help="e.g. the contract")] = "",
    data_dir: DataDirOpt = None,
) -> None:
    """Set a negotiated price for a model from a date on. Run `reprice` for past data."""
    if input_mtok is None and output_mtok is None and cache_read is None and cache_write is None:
        _fail("give at least one of --input, --output, --cache-read, --cache-write")
    try:
        eff = parse_time(effective_from, "--effective-from") or datetime.now(timezone.utc)
    except TenantscopeError as exc:
        _fail(exc.message)
        raise
    cfg = _config(_settings(data_dir=data_dir))
    try:
        saved = cfg.add_price_override(
            PriceOverride(
                model=model,
                provider=provider,
                effective_from=eff,
                input_mtok=_dec(input_mtok, "--input"),
                output_mtok=_dec(output_mtok, "--output"),
                cache_read_mtok=_dec(cache_read, "--cache-read"),
                cache_write_mtok=_dec(cache_write, "--cache-write"),
                note=note,
            ),
            actor=CLI,
        )
    except TenantscopeError as exc:
        _fail(exc.message)
        return
    console.print(
        f"override {saved.id} for {model} from {eff.isoformat()} saved;"
        " new calls use it within seconds. Re-price stored calls with"
        f" `tenantscope reprice --from {eff.isoformat()}`."
    )


# --- reprice / export -----------------------------------------------------------------------
def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@app.command()
def reprice(
    start: FromOpt = None,
    end: ToOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Recompute stored costs in a time range from the catalog and overrides (default: the
    last 30 days). Reported costs stay. Stop the server first (it owns the event file)."""
    from tenantscope.pricing.pricer import Pricer
    from tenantscope.pricing.reprice import reprice as do_reprice

    settings = _settings(data_dir=data_dir)
    rng = _range(start, end, timedelta(days=30))
    events, cfg = _events(settings), _config(settings)
    try:
        total = events.count(rng.start, rng.end)
        pricer = Pricer(cfg.list_price_overrides())
        with _progress("repricing") as progress:
            task = progress.add_task("reprice", total=total)
            res = do_reprice(
                events, pricer, rng.start, rng.end, progress=lambda n: progress.advance(task, n)
            )
    finally:
        events.close()
        cfg.close()
    console.print(f"scanned {res.scanned:,} records, changed the cost of {res.changed:,}")


@app.command()
def export(
    start: FromOpt = None,
    end: ToOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file to write")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Export stored records in a time range (default: the last 30 days) as CSV or
    Parquet, one file in time order, streamed in bounded memory."""
    if fmt not in ("csv", "parquet"):
        _fail("--format must be csv or parquet")
    settings = _settings(data_dir=data_dir)
    rng = _range(start, end, timedelta(days=30))
    out = output or Path(f"tenantscope-export.{fmt}")
    events = _events(settings)
    total = (rng.end - rng.start).total_seconds()
    try:
        with _progress(f"exporting to {out}") as progress:
            task = progress.add_task("export", total=total)

            def reached(t: datetime) -> None:
                done = (t.replace(tzinfo=None) - rng.start.replace(tzinfo=None)).total_seconds()
                progress.update(task, completed=done)

            rows = events.export(str(out), fmt, rng.start, rng.end, progress=reached)
    finally:
        events.close()
    console.print(f"wrote {rows:,} records to {out}")


def main() -> None:
    try:
        app()
    except TenantscopeError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        sys.exit(1)


if __name__ == "__main__":
    main()
