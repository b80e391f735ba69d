"""The failure limiter and how a client is named (server/access.py), and the trusted-proxy
setting, without a server (tests/server/test_security.py has them against a real one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenantscope.errors import ConfigError
from tenantscope.server import access
from tenantscope.server.access import FailureLimiter, client_of
from tenantscope.server.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(access.time, "monotonic", c)
    return c


def test_budget_and_retry_after(clock: Clock) -> None:
    limiter = FailureLimiter(limit=3, window=60)
    for _ in range(3):
        assert limiter.blocked("a") == 0
        limiter.failed("a")
        clock.now += 10
    # three failures at 1000, 1010, 1020; now 1030: the first leaves the window at 1060
    assert limiter.blocked("a") == pytest.approx(30)
    assert limiter.blocked("b") == 0  # per client
    clock.now = 1060
    assert limiter.blocked("a") == 0  # one failure left the window: budget again
    limiter.failed("a")
    assert limiter.blocked("a") == pytest.approx(10)  # 1010 is now the oldest of three


def test_failing_on_stays_refused_and_memory_stays_bounded(clock: Clock) -> None:
    limiter = FailureLimiter(limit=3, window=60, max_clients=5)
    for _ in range(1000):
        limiter.failed("hammer")
        clock.now += 0.5
    assert 0 < limiter.blocked("hammer") <= 60
    assert len(limiter._fails["hammer"]) == 3  # at most `limit` times per client
    for i in range(50):
        limiter.failed(f"rotating-{i}")
    assert len(limiter._fails) == 5  # at most `max_clients` clients
    clock.now += 61
    assert limiter.blocked("rotating-49") == 0 and "rotating-49" not in limiter._fails


def test_failures_for_several_names_at_once(clock: Clock) -> None:
    limiter = FailureLimiter(limit=2, window=60)
    limiter.failed("client", "client key k1")
    limiter.failed("client", "client key k2")
    assert limiter.blocked("client") > 0
    assert limiter.blocked("client key k1") == 0 and limiter.blocked("client key k2") == 0


@pytest.mark.parametrize(
    ("host", "named"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
    ],
)
def test_client_names(host: str, named: str) -> None:
    assert client_of({"type": "http", "client": (host, 1234)}) == named


def test_no_client_address() -> None:
    assert client_of({"type": "http", "client": None}) == "unknown"


def test_trusted_proxies_setting(tmp_path: Path) -> None:
    assert Settings.load(env={}, data_dir=tmp_path).trusted_proxies == ()
    env = {"TENANTSCOPE_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16 ::1"}
    assert Settings.load(env=env, data_dir=tmp_path).trusted_proxies == (
        "10.0.0.5",
        "10.1.0.0/16",
        "::1",
    )
    given = Settings.load(env={}, data_dir=tmp_path, trusted_proxies=["127.0.0.1"])
    assert given.trusted_proxies == ("127.0.0.1",)
    for bad in ("*", "proxy.internal", "10.0.0.300", "10.0.0.0/33"):
        with pytest.raises(ConfigError, match="not an IP address or network"):
            Settings.load(env={"TENANTSCOPE_TRUSTED_PROXIES": bad}, data_dir=tmp_path)
