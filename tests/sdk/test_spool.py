"""The export's disk spool: an outage costs no usage (refused and black-hole collectors,
then a real tenantscope server), a batch sent twice counts once, a restarted process
sends what the last one left, two live processes never share files, corrupt files are
skipped, and the limits hold (size with either policy, age)."""

from __future__ import annotations

import gzip
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import tenantscope
from tenantscope.sdk._spool import SUFFIX, Spool
from tenantscope.sdk._stats import Counters
from tenantscope.server.keys import issue_key
from tenantscope.server.services import Services
from tests.conftest import free_port, make_settings, serve_app
from tests.sdk.collector import collector


def _wait(what: str, done: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}; {tenantscope.stats()}")
        time.sleep(0.05)


def _calls(n: int, tenant: str = "acme", per_s: float = 0) -> None:
    """``n`` LLM calls, at most ``per_s`` a second (an app waits on its provider: a few
    thousand calls a second is a busy process)."""
    began = time.perf_counter()
    with tenantscope.context(tenant_id=tenant):
        for i in range(n):
            with tenantscope.span("chat") as s:
                s.record_usage(model="gpt-4o", input_tokens=10, output_tokens=1)
            if per_s and i % 50 == 49:
                ahead = (i + 1) / per_s - (time.perf_counter() - began)
                if ahead > 0:
                    time.sleep(ahead)


def _spool(tmp_path: Path, **given: object) -> Spool:
    params: dict[str, object] = {
        "max_bytes": 1 << 20,
        "max_age_s": 3600.0,
        "policy": "drop_newest",
        "counters": Counters(),
        **given,
    }
    return Spool(tmp_path / "spool", "svc", **params)  # type: ignore[arg-type]


def test_an_outage_loses_nothing_and_each_call_counts_once(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there yet: connection refused
    svc = Services.open(make_settings(tmp_path / "data", port=port, ingest_workers=0))
    key = issue_key(svc.config, "ingest", "billing app")[1]
    tenantscope.init(
        endpoint=f"http://127.0.0.1:{port}",
        api_key=key,
        service_name="billing-app",
        export_interval=0.05,
        export_timeout=0.3,
        max_queue_size=2048,
    )
    _calls(20_000, per_s=2500)
    _wait("the queue went to disk", lambda: tenantscope.stats().spooled == 20_000)
    assert tenantscope.stats().dropped == 0
    assert tenantscope.flush(0.5) is False  # nothing reached a collector
    # the collector comes up: a real server on that port
    try:
        with serve_app(svc) as srv:
            _wait("the spool was delivered", lambda: tenantscope.stats().spool_delivered == 20_000)
            stats = tenantscope.stats()
            assert stats.exported == 20_000 and stats.dropped == 0
            usage = srv.client.get(
                "/api/tenants/acme/usage",
                params={"from": "0"},
                headers={"Tenantscope-Consistency": "strict"},
            ).json()
            assert usage["request_count"] == 20_000  # each call once
    finally:
        svc.close()


def test_a_batch_delivered_twice_counts_once(tmp_path: Path) -> None:
    svc = Services.open(make_settings(tmp_path / "data", port=free_port(), ingest_workers=0))
    try:
        with serve_app(svc) as srv:
            spool = _spool(tmp_path)
            # the body the SDK would spool: captured from a collector that answered 503
            with collector(lambda n: (503, {}, 0.0)) as col:
                tenantscope.init(endpoint=col.url, export_interval=0.05, export_timeout=0.2,
                                 spool_dir=str(tmp_path / "sdk"))  # fmt: skip
                _calls(50)
                _wait("spooled", lambda: tenantscope.stats().spooled == 50)
                tenantscope.shutdown(0.5)
            files = sorted((tmp_path / "sdk").rglob(f"*{SUFFIX}"))
            assert files
            bodies = [f.read_bytes()[12:] for f in files]
            headers = {"content-type": "application/x-protobuf", "content-encoding": "gzip"}
            for _ in range(2):  # the answer to the first was "lost": sent again
                for body in bodies:
                    assert gzip.decompress(body)
                    r = srv.client.post("/v1/traces", content=body, headers=headers)
                    assert r.status_code == 200, r.text
            usage = srv.client.get(
                "/api/tenants/acme/usage",
                params={"from": "0"},
                headers={"Tenantscope-Consistency": "strict"},
            ).json()
            assert usage["request_count"] == 50
            spool.close()
    finally:
        svc.close()


def test_a_black_hole_collector_costs_nothing_either(tmp_path: Path) -> None:
    """A collector that accepts connections and never answers: with the default 10 s
    export timeout the POST thread waits, the export thread spools meanwhile."""
    answering = {"yes": False}

    def script(n: int) -> tuple[int, dict[str, str], float]:
        return (200, {}, 0.0) if answering["yes"] else (503, {}, 60.0)

    with collector(script) as col:
        tenantscope.init(endpoint=col.url, export_interval=0.05)
        began = time.perf_counter()
        _calls(5000, per_s=2500)
        assert time.perf_counter() - began < 5  # the app was never held up
        assert tenantscope.stats().dropped == 0  # nothing lost while it hung
        answering["yes"] = True
        _wait("delivered", lambda: tenantscope.stats().exported == 5000)
        assert tenantscope.stats().dropped == 0
        assert col.span_names().count("chat") == 5000


def test_a_restarted_process_sends_what_the_last_one_left(tmp_path: Path) -> None:
    spool_dir = str(tmp_path / "sdk")
    port = free_port()
    tenantscope.init(endpoint=f"http://127.0.0.1:{port}", service_name="worker",
                     spool_dir=spool_dir, export_interval=0.05, export_timeout=0.2)  # fmt: skip
    _calls(500)
    _wait("spooled", lambda: tenantscope.stats().spooled == 500)
    tenantscope.shutdown(0.5)  # the process ends with the collector still down
    assert len(list(Path(spool_dir).rglob(f"*{SUFFIX}"))) > 0
    with collector() as col:
        tenantscope.init(endpoint=col.url, service_name="worker", spool_dir=spool_dir,
                         export_interval=0.05)  # fmt: skip
        _wait("the left batches were sent", lambda: len(col.span_names()) == 500)
        assert tenantscope.stats().spool_delivered == 500
        tenantscope.shutdown(1)
    assert list(Path(spool_dir).rglob(f"*{SUFFIX}")) == []
    # another service's spool is not this one's
    tenantscope.init(endpoint=f"http://127.0.0.1:{port}", service_name="other",
                     spool_dir=spool_dir, export_interval=0.05, export_timeout=0.2)  # fmt: skip
    assert tenantscope.stats().spooled == 0


def test_two_live_processes_never_take_each_others_files(tmp_path: Path) -> None:
    first = _spool(tmp_path)
    assert first.write(b"x" * 100, 3)
    second = _spool(tmp_path)  # first still holds its lock
    assert len(second) == 0
    first.close()  # the first process ends, its batch unsent
    assert second.adopt() == 1 and len(second) == 1
    (record,) = second.oldest()
    assert second.read(record) == b"x" * 100 and record.spans == 3
    second.done(record)
    assert len(second) == 0 and second.counters.spool_delivered == 3


def test_a_corrupt_or_partial_file_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    left = _spool(tmp_path)
    assert left.write(b"good", 1) and left.write(b"bad!", 2)
    left.close()
    files = sorted((tmp_path / "spool").rglob(f"*{SUFFIX}"))
    files[1].write_bytes(files[1].read_bytes()[:-2] + b"??")  # a torn write
    (files[0].parent / "123-4.otlp.tmp").write_bytes(b"half")  # a write that never ended
    with caplog.at_level(logging.WARNING, logger="tenantscope"):
        spool = _spool(tmp_path)
        bodies = [b for r in spool.oldest() if (b := spool.read(r)) is not None]
    assert bodies == [b"good"]
    assert spool.counters.spool_corrupt == 1
    assert any("skipped spool file" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
def test_a_full_spool_applies_its_policy_and_counts(tmp_path: Path, policy: str) -> None:
    spool = _spool(tmp_path, max_bytes=1000, policy=policy)
    kept = [spool.write(bytes([i]) * 300, 10) for i in range(5)]
    assert spool.size <= 1000
    if policy == "drop_newest":
        assert kept == [True, True, True, False, False]
        assert [spool.read(r)[0] for r in spool.oldest()]  # type: ignore[index] == [0, 1, 2]
    else:
        assert kept == [True] * 5
        assert [spool.read(r)[0] for r in spool.oldest()]  # type: ignore[index] == [2, 3, 4]
    assert spool.counters.dropped_spool_full == 20


def test_batches_older_than_the_limit_are_dropped_and_counted(tmp_path: Path) -> None:
    spool = _spool(tmp_path, max_age_s=0.2)
    spool.write(b"old", 7)
    time.sleep(0.3)
    spool.write(b"new", 1)
    assert [spool.read(r) for r in spool.oldest()] == [b"new"]
    assert spool.counters.dropped_spool_expired == 7


def test_the_spool_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTSCOPE_SPOOL", "off")
    port = free_port()
    tenantscope.init(endpoint=f"http://127.0.0.1:{port}", export_interval=0.05, export_timeout=0.2)
    _calls(100)
    _wait("dropped", lambda: tenantscope.stats().dropped_export_failed == 100)
    assert tenantscope.stats().spooled == 0
    assert not (Path(os.environ["TENANTSCOPE_SPOOL_DIR"])).exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_owns_a_spool_of_its_own(tmp_path: Path) -> None:
    spool_dir = tmp_path / "sdk"
    port = free_port()
    tenantscope.init(endpoint=f"http://127.0.0.1:{port}", service_name="web",
                     spool_dir=str(spool_dir), export_interval=0.05,
                     export_timeout=0.2)  # fmt: skip
    _calls(10)
    pid = os.fork()
    if pid == 0:  # the worker: its calls go to its own directory
        code = 1
        try:
            _calls(100)
            deadline = time.monotonic() + 20
            while tenantscope.stats().spooled < 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            tenantscope.shutdown(1)
            code = 0 if tenantscope.stats().spooled == 100 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    _wait("the parent spooled its own", lambda: tenantscope.stats().spooled == 10)
    tenantscope.shutdown(1)
    owners = {p.parent.name.split("-")[0] for p in spool_dir.rglob(f"*{SUFFIX}")}
    assert owners == {str(os.getpid()), str(pid)}
    spans = {
        d.name.split("-")[0]: sum(
            int(f.name.split("-")[1].split(".")[0]) for f in d.glob(f"*{SUFFIX}")
        )
        for d in (spool_dir / "web").iterdir()
    }
    assert spans == {str(os.getpid()): 10, str(pid): 100}
