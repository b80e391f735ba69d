"""Accuracy: does tenantscope count what each real instrumentation library exports exactly?

    python bench/accuracy.py                          # the committed fixtures
    python bench/accuracy.py --record logfire         # re-record one library first (PyPI)
    python bench/accuracy.py --record openlit --pin openlit==1.46.0   # a new version

Replays every fixture of ``tests/conformance/fixtures`` (what the libraries really sent for
four call shapes against the fake provider) through a real ``tenantscope serve`` on a free
port, as recorded and again shuffled and split into requests of one to three spans, and
prints library x call shape -> exact or not, with what differs from the truth (requests,
input and output tokens, and cost priced by genai-prices). ``--record`` runs
``tests/conformance/record.py --only LIB`` into a temporary directory first (``--pin`` is
passed on to it), so a new library version is checked in one command without touching the
committed fixtures. Exits 1 if a recorded cell is not exact.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from tenantscope.testing.conformance import SHAPES, Cell, load_fixtures, measure, replay
from tenantscope.testing.server import make_key, start_serve, stop_serve

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "conformance" / "fixtures"
# packages every recording has: shown once per library as its clients, not as its own
_COMMON = frozenset(
    {
        "openai",
        "anthropic",
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-proto",
        "opentelemetry-instrumentation",
        "opentelemetry-semantic-conventions",
        "opentelemetry-exporter-http-transport",
        "opentelemetry-exporter-otlp-common",
        "opentelemetry-exporter-otlp-proto-common",
        "opentelemetry-exporter-otlp-proto-http",
    }
)


def _run(fixtures_dir: Path, rng: random.Random | None) -> list[Cell]:
    fixtures = load_fixtures(fixtures_dir)
    with tempfile.TemporaryDirectory(prefix="tenantscope-accuracy-") as tmp:
        data = Path(tmp)
        key = make_key(data, "accuracy")
        proc, url = start_serve(data, {"TENANTSCOPE_LOG_LEVEL": "warning"})
        try:
            headers = {"authorization": f"Bearer {key}"}
            with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                replay(client, fixtures, rng)
                return measure(client, fixtures)
        finally:
            stop_serve(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES, help="fixture directory")
    parser.add_argument("--record", nargs="+", metavar="LIB", help="re-record these first")
    parser.add_argument("--pin", nargs="+", default=[], metavar="PKG==VER", help="with --record")
    parser.add_argument("--seed", type=int, default=1, help="for the shuffled, split replay")
    args = parser.parse_args()
    console = Console()
    fixtures_dir: Path = args.fixtures
    if args.record:
        fixtures_dir = Path(tempfile.mkdtemp(prefix="tenantscope-fixtures-"))
        command = [
            sys.executable,
            str(ROOT / "tests" / "conformance" / "record.py"),
            "--only",
            *args.record,
            "--out",
            str(fixtures_dir),
        ]
        if args.pin:
            command += ["--pin", *args.pin]
        console.print(f"recording {', '.join(args.record)} into {fixtures_dir} ...")
        subprocess.run(command, check=True)
    runs = {
        "as recorded": _run(fixtures_dir, None),
        "split": _run(fixtures_dir, random.Random(args.seed)),
    }
    table = Table(title="tenantscope conformance: library x call shape")
    table.add_column("library")
    for shape in SHAPES:
        table.add_column(shape)
    versions = {f["library"]: f.get("versions", {}) for f in load_fixtures(fixtures_dir)}
    failed = 0
    notes: list[str] = []
    by_library: dict[str, dict[str, list[Cell]]] = {}
    for cells in runs.values():
        for cell in cells:
            by_library.setdefault(cell.library, {}).setdefault(cell.shape, []).append(cell)
    for library, shapes in by_library.items():
        row = []
        for shape in SHAPES:
            cells = shapes.get(shape, [])
            if not cells or cells[0].expected is None:
                row.append("[dim]n/a[/dim]")
                if cells and cells[0].note:
                    notes.append(f"{library} {shape}: {cells[0].note}")
            elif all(c.exact for c in cells) and cells[0].note:
                row.append("[yellow]known limit[/yellow]")
                notes.append(f"{library} {shape}: {cells[0].note}")
            elif all(c.exact for c in cells):
                row.append("[green]exact[/green]")
            else:
                failed += 1
                errors = {c.error for c in cells if not c.exact}
                row.append(f"[red]{'; '.join(sorted(errors))}[/red]")
        table.add_row(library, *row)
    console.print(table)
    for note in notes:
        console.print(f"[dim]{note}[/dim]")
    for library, pkgs in versions.items():
        own = {k: v for k, v in pkgs.items() if k not in _COMMON}
        clients = ", ".join(f"{k} {pkgs[k]}" for k in ("openai", "anthropic") if k in pkgs)
        listed = ", ".join(f"{k} {v}" for k, v in own.items())
        console.print(f"[dim]{library}: {listed or '-'} (clients: {clients})[/dim]")
    total = sum(1 for cells in runs.values() for c in cells if c.expected is not None)
    exact = sum(1 for cells in runs.values() for c in cells if c.exact)
    console.print(f"{exact} of {total} recorded cells exact over {len(runs)} replays")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
