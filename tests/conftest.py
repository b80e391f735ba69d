"""Shared fixtures: real stores in tmp dirs, a real server on a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tenantscope.server.services import Services
from tenantscope.server.settings import Settings
from tenantscope.testing.server import free_port

# The storage contract modules are not ``test_*.py`` files, so pytest would not rewrite
# their asserts (failures would show no values) unless told before any test imports them.
pytest.register_assert_rewrite(
    "tests.storage.contract_events",
    "tests.storage.contract_config",
    "tests.storage.contract_audit",
    "tests.storage.contract_limits",
    "tests.storage.contract_plans",
)


@pytest.fixture(autouse=True)
def _own_spool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The SDK's disk spool of each test (and of the processes it starts) is its own:
    spans one test left there must never reach another test's server."""
    monkeypatch.setenv("TENANTSCOPE_SPOOL_DIR", str(tmp_path / "spool"))


def make_settings(data_dir: Path, **given: object) -> Settings:
    return Settings.load(env={}, data_dir=data_dir, **given)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data", port=free_port(), duckdb_threads=2)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = Services.open(settings)
    try:
        yield svc
    finally:
        svc.close()


@dataclass
class RunningServer:
    url: str
    services: Services
    client: httpx.Client  # sends the admin key
    admin_key: str = ""

    def key(self, role: str, tenant_id: str | None = None, name: str = "test") -> str:
        """A new key of this role (the token)."""
        from tenantscope.server.keys import issue_key

        return issue_key(self.services.config, role, name, tenant_id)[1]


@contextmanager
def serve_app(services: Services) -> Iterator[RunningServer]:
    """The real app over ``services``, served by uvicorn on its settings' port."""
    import uvicorn

    from tenantscope.server.app import create_app
    from tenantscope.server.serving import uvicorn_config

    # served as `tenantscope serve` serves it (forwarded headers, timeouts)
    config = uvicorn_config(create_app(services=services), services.settings, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{services.settings.port}"
    from tenantscope.server.keys import issue_key

    admin = issue_key(services.config, "admin", "test admin")[1]
    try:
        with httpx.Client(
            base_url=url, timeout=30, headers={"authorization": f"Bearer {admin}"}
        ) as client:
            yield RunningServer(url, services, client, admin)
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture
def server(services: Services) -> Iterator[RunningServer]:
    """The real app served by uvicorn on a free port, over the ``services`` fixture."""
    with serve_app(services) as running:
        yield running


@contextmanager
def seeded_server(
    data_dir: Path, seed: Callable[[Services], None], **given: object
) -> Iterator[RunningServer]:
    """A real server on a free port over fresh stores, ``seed`` run before it serves
    (decoding in-process: no worker start-up for a module's short tests)."""
    settings = make_settings(
        data_dir,
        **{
            "port": free_port(),
            "duckdb_threads": 2,
            "ingest_workers": 0,
            "log_level": "warning",
            **given,
        },
    )
    services = Services.open(settings)
    try:
        seed(services)
        with serve_app(services) as running:
            yield running
    finally:
        services.close()
