"""Per-call overhead of the tenantscope SDK on instrumented LLM client calls.

    python bench/sdk_overhead.py                    # openai + anthropic, 5 rounds x 200 calls
    python bench/sdk_overhead.py --calls 100 --rounds 3 --only openai
    python bench/sdk_overhead.py --endpoint http://127.0.0.1:4318   # a running tenantscope serve

The real ``openai`` / ``anthropic`` clients call the fake provider
(``tenantscope.testing.fake_provider``) running in a separate process; the SDK exports over
OTLP/HTTP to an OTLP sink in another process (a minimal HTTP server that accepts and drops
the batches) or to ``--endpoint``. Each scenario alternates blocks of bare calls
(uninstrumented) and instrumented calls (``tenantscope.init`` + ``instrument_*``, inside a
``tenantscope.context``), so drift hits both sides alike. Per call it measures wall time
(``perf_counter_ns``) and process CPU (``process_time_ns``: every thread, so the SDK's
background export counts). Each instrumented block ends with ``tenantscope.flush()``, inside
the measured block totals. Prints median and p99 per call for both variants, the added
median, and the added mean CPU per call from block totals (which spreads the export and
the flush over the block's calls). Goal: <= 100 us added median CPU per non-streaming call.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

import tenantscope
from tenantscope.testing.server import free_port

SINK = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""

MESSAGES: list[Any] = [{"role": "user", "content": "Summarise the meeting in three bullets."}]
GOAL_US = 100.0


@contextmanager
def _process(args: list[str], ready_url: str, method: str = "GET") -> Iterator[None]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.request(method, ready_url, timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"{args[:4]} did not start: {err}") from None
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Samples:
    wall_ns: list[int] = field(default_factory=list)
    cpu_ns: list[int] = field(default_factory=list)
    block_cpu_ns: int = 0
    calls: int = 0


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def _block(call: Callable[[], None], n: int, samples: Samples, *, flush: bool) -> None:
    gc.collect()
    block_start = time.process_time_ns()
    wall, cpu = samples.wall_ns, samples.cpu_ns
    for _ in range(n):
        c0 = time.process_time_ns()
        w0 = time.perf_counter_ns()
        call()
        w1 = time.perf_counter_ns()
        c1 = time.process_time_ns()
        wall.append(w1 - w0)
        cpu.append(c1 - c0)
    if flush:
        tenantscope.flush(timeout=10)
    samples.block_cpu_ns += time.process_time_ns() - block_start
    samples.calls += n


def _scenarios(fake_url: str, only: set[str]) -> dict[str, tuple[str, Callable[[], None]]]:
    out: dict[str, tuple[str, Callable[[], None]]] = {}
    if "openai" in only:
        import openai

        oai = openai.OpenAI(base_url=f"{fake_url}/v1", api_key="bench", max_retries=0)

        def chat() -> None:
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

        def chat_stream() -> None:
            stream = oai.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            for _ in stream:
                pass

        out["openai chat"] = ("openai", chat)
        out["openai chat, stream (20 chunks)"] = ("openai", chat_stream)
    if "anthropic" in only:
        import anthropic

        # the client's own OTel spans off: the bare baseline is the bare client (when
        # instrumented, tenantscope skips those spans anyway)
        claude = anthropic.Anthropic(
            base_url=fake_url, api_key="bench", max_retries=0, open_telemetry=False
        )

        def messages() -> None:
            claude.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES)

        def messages_stream() -> None:
            stream = claude.messages.create(
                model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES, stream=True
            )
            for _ in stream:
                pass

        out["anthropic messages"] = ("anthropic", messages)
        out["anthropic messages, stream"] = ("anthropic", messages_stream)
    return out


def _set_instrumented(library: str, on: bool) -> None:
    if library == "openai":
        (tenantscope.instrument_openai if on else tenantscope.uninstrument_openai)()
    else:
        (tenantscope.instrument_anthropic if on else tenantscope.uninstrument_anthropic)()


def run(args: argparse.Namespace) -> int:
    fake_port = free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    fake_cmd = [sys.executable, "-m", "tenantscope.testing.fake_provider", "--port", str(fake_port)]
    with _process(fake_cmd, f"{fake_url}/healthz"):
        if args.endpoint:
            endpoint = args.endpoint
            return _measure(args, fake_url, endpoint)
        sink_port = free_port()
        endpoint = f"http://127.0.0.1:{sink_port}"
        with _process([sys.executable, "-c", SINK, str(sink_port)], endpoint):
            return _measure(args, fake_url, endpoint)


def _measure(args: argparse.Namespace, fake_url: str, endpoint: str) -> int:
    tenantscope.init(endpoint=endpoint, service_name="sdk-overhead-bench")
    scenarios = _scenarios(fake_url, set(args.only))
    results: dict[str, tuple[Samples, Samples]] = {}
    with tenantscope.context(tenant_id="bench-tenant", user_id="u-1", session_id="s-1"):
        for name, (library, call) in scenarios.items():
            bare, traced = Samples(), Samples()
            for _ in range(args.warmup):  # connections, imports, caches
                call()
            _set_instrumented(library, True)
            for _ in range(args.warmup):
                call()
            tenantscope.flush(timeout=10)
            for _ in range(args.rounds):
                _set_instrumented(library, False)
                _block(call, args.calls, bare, flush=False)
                _set_instrumented(library, True)
                _block(call, args.calls, traced, flush=True)
            _set_instrumented(library, False)
            results[name] = (bare, traced)
    stats = tenantscope.stats()
    tenantscope.shutdown()

    print(
        f"{'scenario':<34}{'variant':<9}{'wall med':>10}{'wall p99':>10}"
        f"{'cpu med':>10}{'cpu p99':>10}{'cpu mean':>10}   (us per call)"
    )
    worst = 0.0
    for name, (bare, traced) in results.items():
        for label, s in (("bare", bare), ("traced", traced)):
            print(
                f"{name:<34}{label:<9}{_pct(s.wall_ns, 0.5):>10.0f}{_pct(s.wall_ns, 0.99):>10.0f}"
                f"{_pct(s.cpu_ns, 0.5):>10.0f}{_pct(s.cpu_ns, 0.99):>10.0f}"
                f"{s.block_cpu_ns / s.calls / 1000:>10.0f}"
            )
        added_med = statistics.median(traced.cpu_ns) / 1000 - statistics.median(bare.cpu_ns) / 1000
        added_mean = (traced.block_cpu_ns / traced.calls - bare.block_cpu_ns / bare.calls) / 1000
        added_wall = (
            statistics.median(traced.wall_ns) / 1000 - statistics.median(bare.wall_ns) / 1000
        )
        streaming = "stream" in name
        if not streaming:
            worst = max(worst, added_med)
        goal = (
            ""
            if streaming
            else f"  goal <= {GOAL_US:.0f} us: {'ok' if added_med <= GOAL_US else 'MISSED'}"
        )
        print(
            f"{'':<34}{'added':<9}{added_wall:>10.0f}{'':>10}{added_med:>10.0f}{'':>10}"
            f"{added_mean:>10.0f}{goal}"
        )
    print(
        f"\nexported {stats.exported} spans (queued {stats.queued}, dropped {stats.dropped}) "
        f"to {endpoint}; {args.rounds} rounds x {args.calls} calls per variant"
    )
    return 0 if worst <= GOAL_US else 1


def main() -> None:
    parser = argparse.ArgumentParser(description="tenantscope SDK per-call overhead")
    parser.add_argument("--calls", type=int, default=200, help="calls per block")
    parser.add_argument("--rounds", type=int, default=5, help="bare/traced block pairs")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument(
        "--only", nargs="+", default=["openai", "anthropic"], choices=["openai", "anthropic"]
    )
    parser.add_argument("--endpoint", default=None, help="export here instead of a local sink")
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
