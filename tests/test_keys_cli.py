"""`tenantscope keys create|list|revoke` against a running `tenantscope serve` (a real
subprocess sharing the data directory): keys made and revoked by the CLI take effect on
the server."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tenantscope.cli import app
from tenantscope.server.keys import CACHE_SECONDS, hash_secret, split_token
from tests.test_cli import Served, invoke, runner, start_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    data_dir = tmp_path_factory.mktemp("keys-cli") / "srv"
    proc, srv = start_serve(data_dir)
    try:
        yield srv, data_dir
    finally:
        proc.terminate()
        proc.wait(20)


_TOKEN = re.compile(r"^ts[airt]_[0-9a-f]+_\S+$")


def _create(data_dir: Path, *args: str) -> tuple[str, str]:
    """The output and the token: the one line that is just a key."""
    out = invoke("keys", "create", "--data-dir", str(data_dir), *args)
    (token,) = [line.strip() for line in out.splitlines() if _TOKEN.match(line.strip())]
    return out, token


def _list(data_dir: Path) -> list[dict[str, str | None]]:
    out = invoke("keys", "list", "--data-dir", str(data_dir), "--json")
    listed: list[dict[str, str | None]] = json.loads(out)
    return listed


def test_tenant_key_from_the_cli(served: tuple[Served, Path]) -> None:
    srv, data_dir = served
    out, token = _create(data_dir, "--role", "tenant", "--tenant", "acme", "--name", "acme portal")
    parts = split_token(token)
    assert parts is not None and parts[0] == "tenant" and token.startswith("tst_")
    _, key_id, secret = parts
    assert out.count(secret) == 1  # shown once
    assert key_id in out and "acme" in out and "/login" in out
    # it works against the running server, for its tenant only
    seeded = httpx.post(
        f"{srv.url}/v1/events",
        headers=srv.auth,
        json=[
            {"event_id": "cli-a", "tenant_id": "acme", "model": "gpt-4o", "input_tokens": 3},
            {"event_id": "cli-b", "tenant_id": "other-co", "model": "gpt-4o", "input_tokens": 4},
        ],
    )
    assert seeded.status_code == 200, seeded.text
    resp = httpx.get(f"{srv.url}/api/tenants", headers={"authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    assert [t["tenant_id"] for t in resp.json()["items"]] == ["acme"]
    assert (
        httpx.get(f"{srv.url}/api/tenants/other-co", headers={"x-api-key": token}).status_code
        == 404
    )
    # listed without its secret
    table = invoke("keys", "list", "--data-dir", str(data_dir))
    assert key_id in table and "tenant" in table and "acme" in table
    assert secret not in table and hash_secret(secret) not in table
    mine = [k for k in _list(data_dir) if k["key_id"] == key_id]
    assert len(mine) == 1 and mine[0]["role"] == "tenant" and mine[0]["tenant_id"] == "acme"
    assert mine[0]["name"] == "acme portal" and mine[0]["revoked_at"] == ""
    assert secret not in json.dumps(_list(data_dir))
    # revoked by the CLI (another process): the server refuses it within the cache time
    out = invoke("keys", "revoke", key_id, "--data-dir", str(data_dir))
    assert f"revoked {key_id}" in out
    deadline = time.monotonic() + CACHE_SECONDS + 3
    status = 200
    while time.monotonic() < deadline:
        status = httpx.get(f"{srv.url}/api/tenants", headers={"x-api-key": token}).status_code
        if status == 401:
            break
        time.sleep(0.25)
    assert status == 401
    (listed,) = [k for k in _list(data_dir) if k["key_id"] == key_id]
    assert listed["revoked_at"]
    assert "revoked" in invoke("keys", "list", "--data-dir", str(data_dir))
    again = runner.invoke(app, ["keys", "revoke", key_id, "--data-dir", str(data_dir)])
    assert again.exit_code == 1 and "no active key" in again.output


def test_ingest_and_reader_keys_from_the_cli(served: tuple[Served, Path]) -> None:
    srv, data_dir = served
    _, ingest = _create(data_dir, "--role", "ingest", "--tenant", "bound-co")
    assert ingest.startswith("tsi_")
    sent = httpx.post(
        f"{srv.url}/v1/events",
        headers={"authorization": f"Bearer {ingest}"},
        json=[{"event_id": "cli-bound", "model": "gpt-4o", "input_tokens": 1}],
    )
    assert sent.status_code == 200 and sent.json()["accepted"] == 1
    # an ingest key cannot read
    assert httpx.get(f"{srv.url}/api/tenants", headers={"x-api-key": ingest}).status_code == 403
    _, reader = _create(data_dir, "--role", "reader")
    resp = httpx.get(f"{srv.url}/api/tenants", headers={"x-api-key": reader})
    assert "bound-co" in {t["tenant_id"] for t in resp.json()["items"]}  # stored under it
    assert (
        httpx.post(f"{srv.url}/v1/events", headers={"x-api-key": reader}, json=[]).status_code
        == 403
    )


def test_the_last_admin_key_cannot_be_revoked_from_the_cli(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _, first = _create(data_dir, "--role", "admin")
    first_id = split_token(first)[1]  # type: ignore[index]
    res = runner.invoke(app, ["keys", "revoke", first_id, "--data-dir", str(data_dir)])
    assert res.exit_code == 1, res.output
    assert "last active admin key" in res.output and "keys create --role admin" in res.output
    assert [k["revoked_at"] for k in _list(data_dir)] == [""]  # still active
    # rotation: make the next one, then revoke the old one
    _, second = _create(data_dir, "--role", "admin")
    assert f"revoked {first_id}" in invoke("keys", "revoke", first_id, "--data-dir", str(data_dir))
    second_id = split_token(second)[1]  # type: ignore[index]
    res = runner.invoke(app, ["keys", "revoke", second_id, "--data-dir", str(data_dir)])
    assert res.exit_code == 1 and "last active admin key" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "tenant"], "a tenant key needs the tenant"),
        (["--role", "root"], "role must be one of"),
        (["--role", "reader", "--tenant", "acme"], "not bound to a tenant"),
        (["--role", "admin", "--tenant", "acme"], "not bound to a tenant"),
    ],
)
def test_bad_key_requests_fail_clearly(tmp_path: Path, args: list[str], message: str) -> None:
    data_dir = tmp_path / "data"
    res = runner.invoke(app, ["keys", "create", "--data-dir", str(data_dir), *args])
    assert res.exit_code == 1, res.output
    assert message in res.output
    assert not [line for line in res.output.splitlines() if line.startswith("ts")]  # no token
    listed = runner.invoke(app, ["keys", "list", "--data-dir", str(data_dir), "--json"])
    assert json.loads(listed.output) == []  # nothing half-made


def test_the_token_is_the_last_line_of_stdout(tmp_path: Path) -> None:
    for args in (["--role", "reader"], ["--role", "tenant", "--tenant", "acme"]):
        res = runner.invoke(app, ["keys", "create", "--data-dir", str(tmp_path), *args])
        assert res.exit_code == 0, res.output
        assert _TOKEN.match(res.stdout.strip().splitlines()[-1]), (args, res.stdout)
