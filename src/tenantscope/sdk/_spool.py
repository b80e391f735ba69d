"""The export's disk spool: encoded batches the collector could not take (down, refusing,
slow) wait here, bounded in size and age, and go out oldest first once it answers again.

Layout: ``<dir>/<service>/<pid>-<random>/`` is this process's own directory, holding a
``lock`` file it keeps locked (``flock``) while it lives, and one file per batch named by
the time it was written and its span count. A process that starts (or every minute) takes
over the directories of processes that left theirs behind: it can lock them only when
their owner is gone, so two live processes never send one file twice. A forked child
opens a directory of its own.

A file is ``TSP1`` + CRC-32 + span count + the request body as it is POSTed (gzipped
protobuf). Writes go to a temporary name and are renamed once complete; the data and the
directory are fsynced once per export round, not per file. A file that is short or fails
its CRC (a crash mid-write, a full disk) is skipped with a log line and removed.

Only the export thread touches a Spool: no lock of its own.
"""

from __future__ import annotations

import os
import struct
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

from tenantscope.sdk._stats import Counters, log_once

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no sharing between processes
    fcntl = None  # type: ignore[assignment]

MAGIC = b"TSP1"
_HEADER = struct.Struct(">4sII")  # magic, crc32 of the body, span count
SUFFIX = ".otlp"
ADOPT_EVERY_S = 60.0
POLICIES = ("drop_newest", "drop_oldest")


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tenantscope" / "spool"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "app"


@dataclass(frozen=True)
class Record:
    path: Path
    spans: int
    size: int
    written: float  # time.time() when written


class Spool:
    def __init__(
        self,
        root: Path,
        service: str,
        *,
        max_bytes: int,
        max_age_s: float,
        policy: str,
        counters: Counters,
    ) -> None:
        self.base = Path(root) / _safe(service)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.policy = policy
        self.counters = counters
        self.base.mkdir(parents=True, exist_ok=True)
        self.own = self.base / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.own.mkdir()
        self._locks: dict[Path, int] = {}
        self._lock(self.own, create=True)
        self._records: list[Record] = []  # oldest first, own and adopted
        self._bytes = 0
        self._unsynced: list[Path] = []
        self._adopted_at = 0.0
        self.adopt()

    # -- ownership ---------------------------------------------------------------------------
    def _lock(self, directory: Path, *, create: bool = False) -> bool:
        if fcntl is None:
            return create
        path = directory / "lock"
        try:
            fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._locks[directory] = fd
        return True

    def adopt(self) -> int:
        """Take over the directories their processes left (the lock is free); return how
        many batches that added."""
        self._adopted_at = time.monotonic()
        found = 0
        try:
            others = [p for p in self.base.iterdir() if p.is_dir() and p not in self._locks]
        except OSError:
            return 0
        for directory in sorted(others):
            if not self._lock(directory):
                continue  # its process is alive
            found += self._load(directory)
        self._records.sort(key=lambda r: (r.written, r.path.name))
        self._expire()
        return found

    def _load(self, directory: Path) -> int:
        n = 0
        for path in directory.iterdir():
            if path.name.endswith(".tmp"):
                _remove(path)  # a write that never finished
                continue
            if not path.name.endswith(SUFFIX):
                continue
            try:
                stamp, spans = path.name[: -len(SUFFIX)].split("-")[:2]
                st = path.stat()
                record = Record(path, int(spans), st.st_size, int(stamp) / 1e9)
            except (OSError, ValueError):
                self._corrupt(path, "unreadable name")
                continue
            self._records.append(record)
            self._bytes += record.size
            n += 1
        return n

    def adopt_now_and_then(self) -> None:
        if time.monotonic() - self._adopted_at >= ADOPT_EVERY_S:
            self.adopt()

    # -- writing -------------------------------------------------------------------------------
    def write(self, body: bytes, spans: int) -> bool:
        """Keep a batch; False when the spool is full and the policy drops the newest (the
        batch is counted as dropped)."""
        size = _HEADER.size + len(body)
        if size > self.max_bytes:
            self._drop_full(spans)
            return False
        while self._bytes + size > self.max_bytes:
            if self.policy != "drop_oldest" or not self._records:
                self._drop_full(spans)
                return False
            oldest = self._records.pop(0)
            self._forget(oldest)
            self._drop_full(oldest.spans)
        now = time.time()
        name = f"{time.time_ns():020d}-{spans}{SUFFIX}"
        path = self.own / name
        tmp = self.own / (name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(_HEADER.pack(MAGIC, zlib.crc32(body), spans))
                f.write(body)
            os.replace(tmp, path)
        except OSError as exc:  # a full or read-only disk: the batch is lost, counted
            _remove(tmp)
            log_once("spool_write", "tenantscope: cannot write to the spool %s (%s)", self.own, exc)
            with self.counters.lock:
                self.counters.dropped_spool_full += spans
            return False
        self._records.append(Record(path, spans, size, now))
        self._bytes += size
        self._unsynced.append(path)
        with self.counters.lock:
            self.counters.spooled += spans
        return True

    def sync(self) -> None:
        """Make this round's writes durable: one fsync per file and one of the directory."""
        if not self._unsynced:
            return
        for path in self._unsynced:
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                pass  # removed since (delivered): nothing to keep
        self._unsynced.clear()
        try:
            fd = os.open(self.own, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass

    def _drop_full(self, spans: int) -> None:
        with self.counters.lock:
            self.counters.dropped_spool_full += spans
        log_once(
            "spool_full",
            "tenantscope: the spool %s is full (%d MB); batches are dropped (%s) and counted"
            " (tenantscope.sdk.stats())",
            self.base,
            self.max_bytes // 2**20,
            self.policy,
        )

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._records)

    @property
    def size(self) -> int:
        return self._bytes

    def oldest(self) -> list[Record]:
        """Batches oldest first (expired ones dropped first); ``read`` gives a body (None
        for a corrupt file, which is removed) and ``done`` marks one delivered."""
        self._expire()
        return list(self._records)

    def read(self, record: Record) -> bytes | None:
        try:
            data = record.path.read_bytes()
        except OSError:
            self._records.remove(record)
            self._bytes -= record.size
            return None
        if len(data) < _HEADER.size:
            self._drop_record(record, "shorter than its header")
            return None
        magic, crc, spans = _HEADER.unpack_from(data)
        body = data[_HEADER.size :]
        if magic != MAGIC or zlib.crc32(body) != crc:
            self._drop_record(record, "its checksum does not match")
            return None
        return body

    def done(self, record: Record, *, delivered: bool = True) -> None:
        """A batch was delivered (or refused for good): forget it."""
        if record in self._records:
            self._records.remove(record)
            self._forget(record)
        if delivered:
            with self.counters.lock:
                self.counters.spool_delivered += record.spans

    def _forget(self, record: Record) -> None:
        self._bytes -= record.size
        _remove(record.path)
        self._cleanup(record.path.parent)

    def _drop_record(self, record: Record, why: str) -> None:
        self._records.remove(record)
        self._forget(record)
        self._corrupt(record.path, why)

    def _corrupt(self, path: Path, why: str) -> None:
        _remove(path)
        with self.counters.lock:
            self.counters.spool_corrupt += 1
        log_once(
            "spool_corrupt", "tenantscope: skipped spool file %s (%s); it is removed", path, why
        )

    def _expire(self) -> None:
        cutoff = time.time() - self.max_age_s
        while self._records and self._records[0].written < cutoff:
            record = self._records.pop(0)
            self._forget(record)
            with self.counters.lock:
                self.counters.dropped_spool_expired += record.spans
            log_once(
                "spool_expired",
                "tenantscope: spooled batches older than %.0f h are dropped and counted",
                self.max_age_s / 3600,
            )

    def _cleanup(self, directory: Path) -> None:
        """An adopted directory goes once its last batch is delivered."""
        if directory == self.own or directory not in self._locks:
            return
        if any(r.path.parent == directory for r in self._records):
            return
        for path in directory.iterdir():
            _remove(path)
        fd = self._locks.pop(directory)
        os.close(fd)
        try:
            directory.rmdir()
        except OSError:
            pass

    def close(self) -> None:
        """Release the locks (the next process adopts what is left); an empty own
        directory is removed."""
        self.sync()
        for directory, fd in list(self._locks.items()):
            if not any(r.path.parent == directory for r in self._records):
                _remove(directory / "lock")
                try:
                    directory.rmdir()
                except OSError:
                    pass
            try:
                os.close(fd)
            except OSError:
                pass
        self._locks.clear()

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's directory and locks stay the parent's."""
        for fd in self._locks.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self._locks.clear()
        self._records.clear()


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
