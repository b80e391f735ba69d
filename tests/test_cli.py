"""The CLI through Typer's runner, against real data directories; `serve` as a real
subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tenantscope.cli import app
from tenantscope.server.services import Services
from tenantscope.testing.server import make_key, wait_ready
from tenantscope.testing.server import start_serve as serve_process
from tests.conftest import free_port, make_settings
from tests.query.seed import seed


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setenv("TENANTSCOPE_DATA_DIR", str(d))
    # nothing listens here, so commands that ask a server fall back to the data dir
    monkeypatch.setenv("TENANTSCOPE_PORT", str(free_port()))
    return d


@pytest.fixture
def seeded(data_dir: Path) -> Path:
    svc = Services.open(make_settings(data_dir))
    try:
        seed(svc)
    finally:
        svc.close()
    return data_dir


runner = CliRunner()


def invoke(*args: str) -> str:
    res = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return res.output


def test_tenants_set_list_show(data_dir: Path) -> None:
    invoke(
        "tenants",
        "set",
        "apex-legal",
        "--name",
        "Apex Legal",
        "--tier",
        "enterprise",
        "--sla-p95-ms",
        "2000",
        "--budget",
        "1500.50",
    )
    out = invoke("tenants", "list")
    assert "apex-legal" in out and "Apex Legal" in out and "2000" in out
    assert '"monthly_budget_usd": "1500.50"' in invoke("tenants", "show", "apex-legal")
    invoke("tenants", "set", "apex-legal", "--sla-p95-ms", "none")
    assert '"sla_p95_ms": null' in invoke("tenants", "show", "apex-legal")
    bad = runner.invoke(app, ["tenants", "set", "apex-legal", "--sla-p95-ms", "fast"])
    assert bad.exit_code == 1 and "not a number" in bad.output
    assert runner.invoke(app, ["tenants", "show", "nobody"]).exit_code == 1
    assert runner.invoke(app, ["tenants", "set", "x"]).exit_code == 1


def test_usage_from_the_data_dir(seeded: Path) -> None:
    out = invoke("usage", "apex-legal", "--json")
    assert '"request_count": 4' in out and '"total_cost": "0.100000000"' in out
    table = invoke("usage", "apex-legal")
    assert "4,400" in table


def test_commands_on_the_data_dir_first_store_what_a_killed_server_logged(
    data_dir: Path,
) -> None:
    from tenantscope.ingest.wal import WriteAheadLog
    from tenantscope.storage.serialize import records_to_arrow
    from tests.ingest.test_writer import llm

    now = datetime.now(timezone.utc) - timedelta(hours=1)
    spans = [
        llm(f"{i:032x}:{i:016x}", f"{i:032x}", f"{i:016x}", "", tenant_id="logged-co",
            start_time=now, end_time=now + timedelta(seconds=1))
        for i in range(1, 4)
    ]  # fmt: skip
    WriteAheadLog(data_dir / "wal").append([records_to_arrow(spans)])  # answered, then killed
    assert '"request_count": 3' in invoke("usage", "logged-co", "--json")
    assert not list((data_dir / "wal").glob("*.arrows"))


def test_prices_show_and_override_then_reprice(data_dir: Path) -> None:
    out = invoke("prices", "show", "gpt-4o")
    assert "2.5" in out and "10" in out
    # a call priced from the catalog
    from datetime import datetime, timedelta, timezone

    from tenantscope.records import UsageRecord

    svc = Services.open(make_settings(data_dir))
    t = datetime.now(timezone.utc) - timedelta(hours=1)
    svc.writer.write_sync(
        [
            UsageRecord(
                event_id="r1",
                kind="llm",
                provider="openai",
                model="gpt-4o",
                tenant_id="t",
                input_tokens=1_000_000,
                output_tokens=0,
                start_time=t,
                end_time=t,
            )
        ]
    )
    svc.close()
    invoke(
        "prices",
        "override",
        "gpt-4o",
        "--input",
        "2.00",
        "--output",
        "8",
        "--effective-from",
        (t - timedelta(days=1)).isoformat(),
        "--note",
        "contract",
    )
    assert "contract" in invoke("prices", "show", "gpt-4o")
    bad = runner.invoke(app, ["prices", "override", "gpt-4o", "--input", "cheap"])
    assert bad.exit_code == 1 and "decimal" in bad.output
    out = invoke("reprice", "--from", (t - timedelta(days=2)).isoformat())
    assert "changed the cost of 1" in out
    svc = Services.open(make_settings(data_dir))
    row = svc.events.fetch("SELECT cost_usd, cost_source FROM records")[0]
    svc.close()
    assert row["cost_source"] == "override" and row["cost_usd"] == Decimal("2")


def test_an_override_reprices_the_snapshot_the_provider_reported(data_dir: Path) -> None:
    """Issue 11.16: ``prices override gpt-4o`` applies to gpt-4o-2024-08-06, the id the
    provider reports, and ``prices show`` says what it covers."""
    from tenantscope.records import UsageRecord

    svc = Services.open(make_settings(data_dir))
    t = datetime.now(timezone.utc) - timedelta(hours=1)
    call = UsageRecord(
        event_id="snap",
        kind="llm",
        provider="openai",
        model="gpt-4o-2024-08-06",
        tenant_id="t",
        input_tokens=1_000_000,
        start_time=t,
        end_time=t,
    )
    svc.writer.write_sync([call])
    svc.close()
    invoke(
        "prices", "override", "gpt-4o", "--input", "2", "--output", "8",
        "--effective-from", (t - timedelta(days=1)).isoformat(),
    )  # fmt: skip
    shown = invoke("prices", "show", "gpt-4o")
    assert "openai/gpt-4o" in shown
    assert "changed the cost of 1" in invoke(
        "reprice", "--from", (t - timedelta(days=2)).isoformat()
    )
    svc = Services.open(make_settings(data_dir))
    row = svc.events.fetch("SELECT cost_usd, cost_source FROM records")[0]
    svc.close()
    assert row["cost_source"] == "override" and row["cost_usd"] == Decimal("2")


def test_export_csv_and_parquet(seeded: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "out.csv"
    out = invoke(
        "export",
        "--format",
        "csv",
        "--output",
        str(csv_path),
        "--from",
        str(int(time.time()) - 7 * 86400),
    )
    assert "wrote 16 records" in out
    lines = csv_path.read_text().splitlines()
    assert lines[0].lstrip('"').startswith("event_id") and len(lines) == 17
    pq_path = tmp_path / "out.parquet"
    invoke(
        "export",
        "--format",
        "parquet",
        "-o",
        str(pq_path),
        "--from",
        str(int(time.time()) - 7 * 86400),
    )
    table = pq.read_table(pq_path)
    assert table.num_rows == 16 and "cost_usd" in table.column_names
    assert runner.invoke(app, ["export", "--format", "xml"]).exit_code == 1


def test_export_streams_a_busy_day_within_duckdbs_memory_limit(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One sorted COPY per day ran out of memory on a busy day (issue 11.12): the export
    streams an hour at a time, within the store's configured memory limit."""
    import csv

    from tenantscope.storage.duckdb_events import DuckDBEventStore
    from tests.storage.contract_events import make_record

    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=13)
    store = DuckDBEventStore(data_dir / "events.duckdb")
    try:
        for part in range(6):
            store.write(
                [
                    make_record(
                        i,
                        event_id=f"e{i}",
                        start_time=start + timedelta(seconds=i * 43200 // 60_000),
                        attributes={"pad": "x" * 200, "i": i},
                    )
                    for i in range(part * 10_000, (part + 1) * 10_000)
                ]
            )
    finally:
        store.close()
    monkeypatch.setenv("TENANTSCOPE_DUCKDB_MEMORY_LIMIT", "30MB")
    out_path = tmp_path / "busy.csv"
    out = invoke("export", "-o", str(out_path), "--from", start.isoformat())
    assert "wrote 60,000 records" in out
    with out_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60_000
    starts = [r["start_time"] for r in rows]
    assert starts == sorted(starts) and starts[0].endswith("Z")


def test_commands_open_the_store_with_the_duckdb_settings(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tenantscope.cli import _events, _settings

    monkeypatch.setenv("TENANTSCOPE_DUCKDB_THREADS", "1")
    monkeypatch.setenv("TENANTSCOPE_DUCKDB_MEMORY_LIMIT", "64MB")
    store = _events(_settings())
    try:
        row = store.fetch(
            "SELECT current_setting('threads') AS t, current_setting('memory_limit') AS m"
        )[0]
    finally:
        store.close()
    assert row["t"] == 1 and row["m"].startswith("61")  # 64 MB is 61.0 MiB


@dataclass
class Served:
    url: str
    key: str  # an admin key made before the server started

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


def start_serve(data_dir: Path, **env: str) -> tuple[subprocess.Popen[bytes], Served]:
    """``tenantscope serve`` as a real subprocess on a free port, once it is ready, with
    an admin key for it."""
    key = make_key(data_dir)
    proc, url = serve_process(data_dir, env, timeout=30)
    return proc, Served(url, key)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    proc, srv = start_serve(tmp_path / "srv")
    try:
        yield srv
    finally:
        proc.terminate()
        proc.wait(20)


def test_serve_runs_the_real_server(served: Served) -> None:
    anonymous = httpx.post(f"{served.url}/v1/events", json=[{"event_id": "x"}])
    assert anonymous.status_code == 401  # secure by default
    resp = httpx.post(
        f"{served.url}/v1/events",
        headers=served.auth,
        json=[
            {
                "event_id": "e1",
                "tenant_id": "cli-co",
                "model": "gpt-4o-mini",
                "input_tokens": 10,
                "output_tokens": 5,
            }
        ],
    )
    assert resp.status_code == 200 and resp.json()["accepted"] == 1
    out = invoke("usage", "cli-co", "--url", served.url, "--json", "--api-key", served.key)
    assert '"request_count": 1' in out


def test_commands_find_the_server_of_their_data_dir_on_its_port(tmp_path: Path) -> None:
    """Issue 11.14: ``keys create`` and ``usage`` used the default port whatever port the
    server of the data dir listens on."""
    data = tmp_path / "srv"
    proc, srv = start_serve(data)
    try:
        out = invoke("usage", "nobody", "--data-dir", str(data), "--json", "--api-key", srv.key)
        assert '"request_count": 0' in out  # asked the server (the store is locked by it)
        made = invoke(
            "keys", "create", "--role", "tenant", "--tenant", "t1", "--data-dir", str(data)
        )
        assert f"{srv.url}/login" in made
    finally:
        proc.terminate()
        proc.wait(20)
    assert not (data / "server.json").exists()  # a stopped server is not looked for


def test_first_start_makes_an_admin_key_and_prints_it_once(tmp_path: Path) -> None:
    env = {**os.environ, "TENANTSCOPE_DATA_DIR": str(tmp_path / "fresh")}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantscope.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "/login" in line:
                break
        text = "".join(lines)
        token = re.search(r"(tsa_[0-9a-f]+_\S+)", text)
        assert token, text
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, timeout=30)
        auth = {"authorization": f"Bearer {token.group(1)}"}
        assert httpx.get(f"{url}/api/tenants", headers=auth).status_code == 200
        assert httpx.get(f"{url}/api/tenants").status_code == 401
    finally:
        proc.terminate()
        proc.wait(20)
    # a second start shows no key: it was shown once
    listed = invoke("keys", "list", "--json", "--data-dir", str(tmp_path / "fresh"))
    assert '"role": "admin"' in listed and "tsa_" not in listed


def test_demo_loads_through_the_real_ingest_path(data_dir: Path) -> None:
    out = invoke(
        "demo", "--no-serve", "--traces", "300", "--tenants", "5", "--port", str(free_port())
    )
    assert "loaded 300 traces for 8 tenants" in out
    svc = Services.open(make_settings(data_dir))
    try:
        from tenantscope.query.params import TimeRange
        from tenantscope.query.scope import Scope

        rng = TimeRange.parse(None, None)
        tenants = {t.tenant_id: t for t in svc.queries.tenants(Scope.all(), rng).items}
        assert {"apex-legal", "stratex-consulting", "techstart-inc"} <= set(tenants)
        apex = tenants["apex-legal"]
        assert apex.tier == "enterprise" and apex.requests > 0 and apex.cost_usd
        # records arrived as OTLP spans, the LLM calls inheriting the tenant from their roots
        row = svc.events.fetch(
            "SELECT count(*) AS n FROM records WHERE kind = 'llm' AND tenant_id = ''"
        )[0]
        assert row["n"] == 0
        assert svc.config.get_tenant("apex-legal").sla_p95_ms == 2000  # type: ignore[union-attr]
    finally:
        svc.close()


def test_a_second_server_on_the_same_data_dir_says_why_it_cannot_start(
    served: Served, tmp_path: Path
) -> None:
    env = {**os.environ, "TENANTSCOPE_DATA_DIR": str(tmp_path / "srv")}
    res = subprocess.run(
        [sys.executable, "-m", "tenantscope.cli", "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 1
    assert "already running on this data dir" in res.stderr.replace("\n", " ")
    assert "Traceback" not in res.stderr


def test_stopping_the_server_stops_its_decode_workers(tmp_path: Path) -> None:
    proc, srv = start_serve(tmp_path / "w", TENANTSCOPE_INGEST_WORKERS="1")
    try:
        from tests.server.test_ingest_http import PB, llm_span, request

        body = request([llm_span(1, tenant="w")]).SerializeToString()
        resp = httpx.post(f"{srv.url}/v1/traces", content=body, headers={**PB, **srv.auth})
        assert resp.status_code == 200
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert children  # the decode worker (and multiprocessing's resource tracker)
    finally:
        proc.terminate()
        proc.wait(30)
    deadline = time.monotonic() + 10
    alive = [int(c) for c in children]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if _running(pid)]
    assert alive == []


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as stopped
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return bool(stat) and stat.split()[2] != "Z"
