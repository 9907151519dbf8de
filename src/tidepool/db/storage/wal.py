"""Write-ahead log: every accepted write is appended here, checksummed, before it is acknowledged.

Layout: `wal/<segment id, 20 digits>.wal`, each a sequence of frames
`magic u32 | payload length u32 | crc32c(payload) u32 | payload`. A new segment starts at every memtable flush;
segments wholly contained in flushed Parquet files are deleted after the manifest records the flush.

Durability (`fsync` policy): `per-write` acknowledges after fsync, shared by all writers waiting at that moment
(group commit); `interval` (the default) fsyncs in the background every `interval_s`, so a process crash (kill -9)
loses nothing acknowledged but a power failure may lose the last interval; `off` leaves it to the OS.

Replay reads frames until the first torn or corrupt one, truncates the segment there and logs what it dropped.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import crc32c

from tidepool.logs import get_logger

MAGIC = 0x54505731  # "TPW1"
_HEADER = struct.Struct("<III")
FSYNC_POLICIES = ("per-write", "interval", "off")
log = get_logger("db.wal")


@dataclass(frozen=True)
class ReplayedRecord:
    segment: int
    payload: bytes


def segment_path(directory: Path, segment: int) -> Path:
    return directory / f"{segment:020d}.wal"


def list_segments(directory: Path) -> list[int]:
    return sorted(int(p.stem) for p in directory.glob("*.wal") if p.stem.isdigit())


def replay(directory: Path, first_segment: int) -> Iterator[ReplayedRecord]:
    """Every intact frame of segments ≥ `first_segment`, in order; a bad tail is truncated and logged."""
    for segment in list_segments(directory):
        if segment < first_segment:
            continue
        path = segment_path(directory, segment)
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            problem = None
            if offset + _HEADER.size > len(data):
                problem = "torn frame header"
            else:
                magic, length, checksum = _HEADER.unpack_from(data, offset)
                end = offset + _HEADER.size + length
                if magic != MAGIC:
                    problem = "bad frame magic"
                elif end > len(data):
                    problem = "torn frame payload"
                else:
                    payload = data[offset + _HEADER.size : end]
                    if crc32c.crc32c(payload) != checksum:
                        problem = "checksum mismatch"
            if problem is not None:
                log.warning(
                    "WAL segment %s: %s at byte %d; truncating, dropping %d bytes",
                    path.name, problem, offset, len(data) - offset,
                )  # fmt: skip
                with open(path, "r+b") as fh:
                    fh.truncate(offset)
                    os.fsync(fh.fileno())
                break
            yield ReplayedRecord(segment, payload)
            offset = end


class WriteAheadLog:
    """Appends frames to the current segment; thread-safe. Invariant: frames are written whole and in the
    order `append` was called; `synced_seq` ≤ `written_seq`."""

    def __init__(self, directory: Path, segment: int, fsync: str = "interval", interval_s: float = 0.1) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"unknown fsync policy {fsync!r}; expected one of {', '.join(FSYNC_POLICIES)}")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.policy = fsync
        self.interval_s = interval_s
        self.segment = segment
        self._fd = os.open(segment_path(directory, segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()
        self._sync_cond = threading.Condition(threading.Lock())
        self._syncing = False
        self.written_seq = 0
        self.synced_seq = 0
        self.bytes_written = 0
        self._closed = threading.Event()
        self._syncer: threading.Thread | None = None
        if fsync == "interval":
            self._syncer = threading.Thread(target=self._sync_periodically, name="wal-fsync", daemon=True)
            self._syncer.start()

    def append(self, *parts: bytes) -> int:
        """Write one frame whose payload is `parts` joined; returns its sequence number (for `wait_durable`).

        The parts are checksummed and written in place (writev), so a large body is never copied."""
        checksum = 0
        for part in parts:
            checksum = crc32c.crc32c(part, checksum)
        length = sum(len(p) for p in parts)
        buffers = [memoryview(b) for b in (_HEADER.pack(MAGIC, length, checksum), *parts) if b]
        with self._lock:
            while buffers:
                written = os.writev(self._fd, buffers)
                while buffers and written >= len(buffers[0]):
                    written -= len(buffers[0])
                    buffers.pop(0)
                if buffers and written:
                    buffers[0] = buffers[0][written:]
            self.written_seq += 1
            self.bytes_written += _HEADER.size + length
            return self.written_seq

    def wait_durable(self, seq: int, force: bool = False) -> None:
        """Under `per-write` (or with `force`: a database with WAL_SYNC), return once frame `seq` is fsynced; one
        fsync covers every frame written before it."""
        if self.policy != "per-write" and not force:
            return
        with self._sync_cond:
            while self.synced_seq < seq:
                if self._syncing:
                    self._sync_cond.wait()
                    continue
                self._syncing = True
                self._sync_cond.release()
                try:
                    target = self._sync_now()
                finally:
                    self._sync_cond.acquire()
                    self._syncing = False
                self.synced_seq = max(self.synced_seq, target)
                self._sync_cond.notify_all()

    def _sync_now(self) -> int:
        # Held during fsync so that `rotate` cannot close the descriptor under it; appends wait ~0.25 ms.
        with self._lock:
            os.fsync(self._fd)
            return self.written_seq

    def _sync_periodically(self) -> None:
        while not self._closed.wait(self.interval_s):
            if self.synced_seq < self.written_seq:
                target = self._sync_now()
                with self._sync_cond:
                    self.synced_seq = max(self.synced_seq, target)

    def rotate(self, segment: int) -> None:
        """Close the current segment (fsynced) and continue in a new one."""
        with self._lock:
            os.fsync(self._fd)
            os.close(self._fd)
            self.segment = segment
            self._fd = os.open(segment_path(self.directory, segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self.synced_seq = self.written_seq

    def delete_before(self, segment: int) -> None:
        for old in list_segments(self.directory):
            if old < segment:
                segment_path(self.directory, old).unlink(missing_ok=True)

    def close(self) -> None:
        self._closed.set()
        if self._syncer is not None:
            self._syncer.join()
        with self._lock:
            os.fsync(self._fd)
            os.close(self._fd)
            self.synced_seq = self.written_seq
