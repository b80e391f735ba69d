"""Record what real OTel/GenAI libraries export for four LLM call shapes (needs PyPI access).

Usage (from the repo root, with the project's venv)::

    python tests/conformance/record.py                      # every library spec
    python tests/conformance/record.py --only logfire openllmetry
    python tests/conformance/record.py --list               # the specs
    python tests/conformance/record.py --keep-venvs /tmp/cv # reuse venvs between runs
    python tests/conformance/record.py --only openlit --pin openlit==1.46.0 --out /tmp/fx

For each library spec it creates a throwaway venv (``python -m venv`` in a temp dir; pip
installs the spec's pinned packages with ``openai`` and ``anthropic``), starts a
``FakeProvider`` in this process and a capturing OTLP/HTTP receiver (stores the raw,
un-gzipped body and content type of every POST, whatever the path, and answers 200 with an
empty ``ExportTraceServiceResponse``), then runs ``drivers/<driver>.py`` with the venv's
python. The driver instruments the real clients as the library documents, performs the four
call shapes (``openai_chat``, ``openai_stream``, ``anthropic_message``, ``anthropic_stream``)
each for its own tenant ``<lib>-<shape>``, and flushes. The result is written to
``fixtures/<lib>.json``: versions, how the tenant was given, the ground truth of each shape
(from what the fake provider was told to answer, never from the spans) and the raw payloads.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DRIVERS = HERE / "drivers"
FIXTURES = HERE / "fixtures"

SHAPES = ("openai_chat", "openai_stream", "anthropic_message", "anthropic_stream")
REQUEST_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5"}

# x-fake-usage of each provider (input includes cache, output includes reasoning)
USAGE = {
    "openai": {
        "input": 5050,
        "output": 420,
        "cache_read": 3000,
        "cache_write": 0,
        "reasoning": 120,
    },
    "anthropic": {"input": 5050, "output": 420, "cache_read": 3000, "cache_write": 1000},
}

CLIENTS = ("openai==3.57.0", "anthropic==2.16.0")
OTEL = ["opentelemetry-sdk==1.45.2", "opentelemetry-exporter-otlp-proto-http==1.45.2"]
NO_CONTENT = {
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false",
    "TRACELOOP_TRACE_CONTENT": "false",
}
LANGFUSE_TENANT = (
    "Langfuse trace metadata: inside a Langfuse span 'request', "
    "propagate_attributes(metadata={'tenant_id': ...}) -> langfuse.trace.metadata.tenant_id"
)
LANGFUSE_OTEL_PARENT_TENANT = (
    "inside the app's own plain-OTel span 'request' (attribute tenant.id), "
    "propagate_attributes(metadata={'tenant_id': ...}) -> langfuse.trace.metadata.tenant_id"
)
LANGFUSE_ENV = {
    # Langfuse's host: it posts OTLP to <host>/api/public/otel/v1/traces
    "LANGFUSE_BASE_URL": "{receiver}",
    "LANGFUSE_HOST": "{receiver}",
    "LANGFUSE_PUBLIC_KEY": "pk-lf-conformance",
    "LANGFUSE_SECRET_KEY": "sk-lf-conformance",
    "LANGFUSE_TRACING_ENVIRONMENT": "conformance",
    "TRACELOOP_TRACE_CONTENT": "false",
}
PLAIN_OTEL_TENANT = (
    "no tenant notion: each call runs inside the app's own span 'request' from the plain OTel "
    "tracer (scope conformance.app) with attribute tenant.id"
)


@dataclass(frozen=True)
class Spec:
    name: str
    packages: tuple[str, ...]
    driver: str
    how_tenant: str
    env: dict[str, str] = field(default_factory=dict)
    shapes: tuple[str, ...] = SHAPES
    # one driver process per shape, with tenant.id in OTEL_RESOURCE_ATTRIBUTES
    resource_tenant: bool = False
    clients: tuple[str, ...] = CLIENTS


SPECS = [
    Spec(
        "openllmetry",
        (
            "opentelemetry-instrumentation-openai==0.62.4",
            "opentelemetry-instrumentation-anthropic==0.62.4",
            *OTEL,
        ),
        "openllmetry",
        PLAIN_OTEL_TENANT,
        env=NO_CONTENT,
    ),
    Spec(
        "openllmetry-resource",
        (
            "opentelemetry-instrumentation-openai==0.62.4",
            "opentelemetry-instrumentation-anthropic==0.62.4",
            *OTEL,
        ),
        "openllmetry",
        "resource attribute tenant.id (OTEL_RESOURCE_ATTRIBUTES, one process per shape), "
        "no app span",
        env={**NO_CONTENT, "CONFORMANCE_TENANT_VIA": "resource"},
        resource_tenant=True,
    ),
    Spec(
        "otel-openai-v2",
        (
            "opentelemetry-instrumentation-openai-v2==2.4b0",
            "opentelemetry-util-genai==1.1b0",
            "httpx==0.29.0",
            *OTEL,
        ),
        "otel_openai_v2",
        PLAIN_OTEL_TENANT + "; pins: httpx (imported by the instrumentation, openai 3.x uses "
        "httpx2) and opentelemetry-util-genai 1.1b0 (1.2b0 renamed a module it imports)",
        env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT"},
        shapes=("openai_chat", "openai_stream"),
    ),
    Spec(
        "otel-genai",
        (
            "opentelemetry-instrumentation-genai-openai==1.3b0",
            "opentelemetry-instrumentation-genai-anthropic==1.3b0",
            *OTEL,
        ),
        "otel_genai",
        PLAIN_OTEL_TENANT,
        env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT"},
    ),
    Spec(
        "anthropic-sdk",
        tuple(OTEL),
        "anthropic_sdk",
        PLAIN_OTEL_TENANT + "; the spans are the anthropic SDK's own (no instrumentation)",
        shapes=("anthropic_message", "anthropic_stream"),
    ),
    Spec(
        "logfire",
        ("logfire[openai,anthropic]==5.4.0", "opentelemetry-exporter-otlp-proto-http==1.45.2"),
        "logfire_driver",
        "with logfire.span('request', tenant_id=...): the attribute tenant_id on Logfire's own "
        "parent span",
    ),
    Spec(
        "openlit",
        (
            "openlit==1.45.0",
            # without these pins pip's resolver gives up on the mix of 0.66b1/0.66b2 contrib
            "opentelemetry-instrumentation==0.66b1",
            "opentelemetry-semantic-conventions==0.66b1",
            "opentelemetry-api==1.45.1",
            "opentelemetry-sdk==1.45.1",
            "opentelemetry-exporter-otlp==1.45.1",
        ),
        "openlit_driver",
        PLAIN_OTEL_TENANT + "; openlit 1.45.0 needs openai<3 and anthropic<1 (newest of those)",
        clients=("openai==2.54.0", "anthropic==0.125.0"),
    ),
    Spec(
        "langfuse-3",
        ("langfuse==3.15.0", "opentelemetry-instrumentation-anthropic==0.62.4"),
        "langfuse_driver",
        LANGFUSE_TENANT,
        env=LANGFUSE_ENV,
    ),
    Spec(
        "langfuse",
        ("langfuse==5.2.0", "opentelemetry-instrumentation-anthropic==0.62.4"),
        "langfuse_driver",
        LANGFUSE_TENANT,
        env=LANGFUSE_ENV,
    ),
    Spec(
        "langfuse-3-otelparent",
        ("langfuse==3.15.0", "opentelemetry-instrumentation-anthropic==0.62.4"),
        "langfuse_driver",
        LANGFUSE_OTEL_PARENT_TENANT,
        env={**LANGFUSE_ENV, "CONFORMANCE_LANGFUSE_PARENT": "otel"},
    ),
    Spec(
        "langfuse-otelparent",
        ("langfuse==5.2.0", "opentelemetry-instrumentation-anthropic==0.62.4"),
        "langfuse_driver",
        LANGFUSE_OTEL_PARENT_TENANT,
        env={**LANGFUSE_ENV, "CONFORMANCE_LANGFUSE_PARENT": "otel"},
    ),
    Spec(
        "netra",
        ("netra-sdk==1.2.2",),
        "netra_driver",
        "Netra.set_tenant_id(...) before each call",
        env={"NETRA_OTLP_ENDPOINT": "{receiver}"},
    ),
    Spec(
        "tenantscope",
        (f"{ROOT}[openai,anthropic]",),
        "tenantscope_sdk",
        "with tenantscope.context(tenant_id=...)",
    ),
]


# --- the capturing OTLP/HTTP receiver -----------------------------------------------------
@dataclass
class Capture:
    url: str
    payloads: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def capture_receiver() -> Iterator[Capture]:
    state: Capture

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            encoding = (self.headers.get("Content-Encoding") or "").lower()
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            with state.lock:
                state.payloads.append(
                    {
                        "path": self.path.split("?")[0],
                        "content_type": ctype,
                        "content_encoding": encoding or None,
                        "body": body,
                    }
                )
            out = b"{}" if "json" in ctype else b""  # an empty ExportTraceServiceResponse
            self.send_response(200)
            self.send_header("Content-Type", ctype or "application/x-protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = Capture(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# --- venvs ------------------------------------------------------------------------------
def make_venv(spec: Spec, base: Path) -> Path:
    """A venv with the spec's packages (reused when ``base`` already has one for them)."""
    key = hashlib.sha1(" ".join(sorted([*spec.packages, *spec.clients])).encode()).hexdigest()
    venv = base / f"{spec.driver}-{key[:10]}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"[{spec.name}] pip install {' '.join([*spec.packages, *spec.clients])}", flush=True)
    res = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *spec.packages, *spec.clients],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise RuntimeError(f"pip install failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return python


def installed_versions(python: Path, spec: Spec) -> dict[str, str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wanted = {
        p.split("[")[0].split("==")[0].lower() for p in spec.packages if not p.startswith("/")
    }
    keep = {}
    for row in json.loads(out):
        name = row["name"].lower().replace("_", "-")
        if (
            name in wanted
            or name in {"openai", "anthropic", "tenantscope", "traceloop-sdk", "langfuse"}
            or name.startswith("opentelemetry-")
            or name.startswith("logfire")
            or name.startswith("netra")
            or name.startswith("openlit")
        ):
            keep[name] = row["version"]
    return dict(sorted(keep.items()))


# --- one library spec ----------------------------------------------------------------------
def truth(shape: str, requests: int, snapshots: dict[str, str]) -> dict[str, Any]:
    provider = "openai" if shape.startswith("openai") else "anthropic"
    usage = USAGE[provider]
    return {
        "provider": provider,
        "model": snapshots.get(REQUEST_MODELS[provider], REQUEST_MODELS[provider]),
        "requests": requests,
        "input_tokens": usage["input"],
        "output_tokens": usage["output"],
        "cache_read_tokens": usage.get("cache_read", 0),
        "cache_write_tokens": usage.get("cache_write", 0),
        "reasoning_tokens": usage.get("reasoning", 0),
    }


def usage_header(provider: str) -> str:
    return ",".join(f"{k}={v}" for k, v in USAGE[provider].items() if v or k in {"input"})


def driver_env(spec: Spec, capture: Capture, fake_url: str, result: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "TRACELOOP_", "LANGFUSE_", "LOGFIRE_", "NETRA_", "OPENLIT"))
        and not k.startswith(("TENANTSCOPE_", "OPENAI_", "ANTHROPIC_", "VIRTUAL_ENV"))
    }
    env.update(
        {
            "PYTHONPATH": str(DRIVERS),
            "OPENAI_API_KEY": "test-key",
            "ANTHROPIC_API_KEY": "test-key",
            "OTEL_SERVICE_NAME": f"conformance-{spec.name}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": capture.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "CONFORMANCE_LIB": spec.name,
            "CONFORMANCE_OPENAI_BASE_URL": f"{fake_url}/v1",
            "CONFORMANCE_ANTHROPIC_BASE_URL": fake_url,
            "CONFORMANCE_OTLP_ENDPOINT": capture.url,
            "CONFORMANCE_OPENAI_USAGE": usage_header("openai"),
            "CONFORMANCE_ANTHROPIC_USAGE": usage_header("anthropic"),
            "CONFORMANCE_RESULT": str(result),
            **{k: v.replace("{receiver}", capture.url) for k, v in spec.env.items()},
        }
    )
    return env


def record(spec: Spec, python: Path, fake: Any, work: Path) -> dict[str, Any]:
    from tenantscope.testing.fake_provider import SNAPSHOTS

    driver = DRIVERS / f"{spec.driver}.py"
    done: dict[str, str] = {}
    skipped: dict[str, str] = {}
    notes: list[str] = []
    env_shown: dict[str, str] = {}
    with capture_receiver() as capture:
        runs = [[s] for s in spec.shapes] if spec.resource_tenant else [list(spec.shapes)]
        for shapes in runs:
            result = work / f"{spec.name}-result.json"
            result.unlink(missing_ok=True)
            env = driver_env(spec, capture, fake.base_url, result)
            env["CONFORMANCE_SHAPES"] = ",".join(shapes)
            if spec.resource_tenant:
                env["OTEL_RESOURCE_ATTRIBUTES"] = f"tenant.id={spec.name}-{shapes[0]}"
            print(f"[{spec.name}] running {driver.name} for {','.join(shapes)}", flush=True)
            started = time.monotonic()
            res = subprocess.run(
                [str(python), str(driver)],
                env=env,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if res.returncode != 0 or not result.exists():
                raise RuntimeError(
                    f"driver failed (exit {res.returncode}):\n{res.stdout[-4000:]}\n"
                    f"{res.stderr[-6000:]}"
                )
            if res.stderr.strip():
                print(f"[{spec.name}] driver stderr (tail):\n{res.stderr[-1500:]}", flush=True)
            print(f"[{spec.name}] driver done in {time.monotonic() - started:.1f}s", flush=True)
            out = json.loads(result.read_text())
            done.update(out["done"])
            skipped.update(out["skipped"])
            notes.extend(n for n in out["notes"] if n not in notes)
            env_shown = {
                k: v
                for k, v in env.items()
                if k.startswith(("OTEL_", "TRACELOOP_", "LANGFUSE_", "LOGFIRE_", "NETRA_"))
                or k in spec.env
                or k == "OTEL_RESOURCE_ATTRIBUTES"
            }
        time.sleep(0.2)  # a late export in flight (the driver flushed before exiting)
        payloads = list(capture.payloads)

    # the truth: what the fake provider was asked for, by tenant header
    counts: dict[str, int] = {}
    for req in fake.requests:
        tenant = req.headers.get("x-conformance-tenant")
        if tenant:
            counts[tenant] = counts.get(tenant, 0) + 1
    shapes_out = {}
    for shape in spec.shapes:
        tenant = f"{spec.name}-{shape}"
        if shape not in done:
            skipped.setdefault(shape, "not performed by the driver")
            continue
        if counts.get(tenant, 0) < 1:
            raise RuntimeError(f"{shape}: the fake provider saw no request for {tenant}")
        shapes_out[shape] = {
            "tenant_id": tenant,
            "response_id": done[shape],
            "truth": truth(shape, counts[tenant], SNAPSHOTS),
        }
    for shape in SHAPES:
        if shape not in spec.shapes:
            skipped.setdefault(shape, "the library does not instrument this provider")
    if spec.resource_tenant:
        env_shown["OTEL_RESOURCE_ATTRIBUTES"] = "tenant.id=<lib>-<shape> (one process per shape)"
    env_shown = {
        k: v.replace(capture.url, "http://127.0.0.1:<receiver>") for k, v in env_shown.items()
    }
    return {
        "library": spec.name,
        "versions": installed_versions(python, spec),
        "recorded": dt.date.today().isoformat(),
        "how_tenant": spec.how_tenant,
        "driver": f"drivers/{driver.name}",
        "env": dict(sorted(env_shown.items())),
        "fake_usage": {"openai": usage_header("openai"), "anthropic": usage_header("anthropic")},
        "notes": notes,
        "shapes": shapes_out,
        "skipped": skipped,
        "payloads": [
            {
                "path": p["path"],
                "content_type": p["content_type"],
                "received_encoding": p["content_encoding"],
                "body_b64": base64.b64encode(p["body"]).decode(),
            }
            for p in payloads
            if p["path"].endswith("/traces")
        ],
        # metrics or logs the library also posted: not kept, only counted
        "other_posts": sorted({p["path"] for p in payloads if not p["path"].endswith("/traces")}),
    }


def _pinned(spec: Spec, pins: list[str]) -> Spec:
    """``spec`` with the packages named in ``pins`` replaced by the pinned versions."""
    names = {p.split("==")[0].lower(): p for p in pins}

    def swap(requirement: str) -> str:
        return names.get(requirement.split("[")[0].split("==")[0].lower(), requirement)

    present = {p.split("[")[0].split("==")[0].lower() for p in (*spec.packages, *spec.clients)}
    extra = tuple(pin for name, pin in names.items() if name not in present)
    return dataclasses.replace(
        spec,
        packages=(*(swap(p) for p in spec.packages), *extra),
        clients=tuple(swap(p) for p in spec.clients),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", metavar="LIB", help="library specs to record")
    parser.add_argument("--list", action="store_true", help="list the library specs")
    parser.add_argument("--keep-venvs", type=Path, help="create (and reuse) the venvs here")
    parser.add_argument(
        "--out", type=Path, default=FIXTURES, help="write the fixtures here (default: fixtures/)"
    )
    parser.add_argument(
        "--pin",
        nargs="+",
        default=[],
        metavar="PKG==VER",
        help="install this version instead of the spec's (e.g. openlit==1.46.0)",
    )
    args = parser.parse_args(argv)
    if args.list:
        for spec in SPECS:
            print(f"{spec.name:22} {' '.join(spec.packages)}")
        return 0
    specs = [_pinned(s, args.pin) for s in SPECS if not args.only or s.name in args.only]
    unknown = set(args.only or ()) - {s.name for s in SPECS}
    if unknown:
        parser.error(f"unknown library spec(s): {', '.join(sorted(unknown))}")

    from tenantscope.testing.fake_provider import FakeProvider

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        base = args.keep_venvs or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        with FakeProvider.running() as fake:
            for spec in specs:
                try:
                    python = make_venv(spec, base)
                    fixture = record(spec, python, fake, Path(tmp))
                except Exception as exc:  # one library's failure must not stop the others
                    print(f"[{spec.name}] FAILED: {exc}", flush=True)
                    failed.append(spec.name)
                    continue
                path = out / f"{spec.name}.json"
                path.write_text(json.dumps(fixture, indent=1) + "\n")
                print(
                    f"[{spec.name}] wrote {path}: "
                    f"{len(fixture['payloads'])} payload(s), shapes {sorted(fixture['shapes'])}, "
                    f"skipped {sorted(fixture['skipped'])}",
                    flush=True,
                )
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
