"""Sparse indexes of one segment, in Kafka's on-disk formats.

`.index`: (relative offset i32, file position i32) pairs; `.timeindex`: (timestamp i64, relative offset i32) pairs.
Both live in memory and are appended to their file as they grow; they are rebuilt from the segment whenever in
doubt, so they are a cache, never the truth. A sealed index (of a closed segment) holds no open file.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import struct
from array import array
from pathlib import Path
from typing import IO

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")


class _IndexFile:
    """The append-only file behind an index, opened on first write and closed when sealed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def write(self, entry: bytes) -> None:
        if self._file is None:
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open while the segment is active
        self._file.write(entry)

    def truncate(self) -> None:
        self.close()
        with open(self.path, "wb"):
            pass

    def flush(self) -> None:
        file = self._file
        if file is not None:
            with contextlib.suppress(ValueError):  # sealed meanwhile by the event loop; closing flushed it
                file.flush()

    def sync(self) -> None:
        """fsync from a worker thread; the event loop may seal (sync and close) the file meanwhile."""
        file = self._file
        if file is not None:
            with contextlib.suppress(ValueError):
                file.flush()
                os.fsync(file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class OffsetIndex:
    """Invariant: relative offsets and positions are both strictly increasing."""

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._relative = array("q")
        self._positions = array("q")
        self.file = _IndexFile(path)

    @classmethod
    def load(cls, path: Path, base_offset: int) -> OffsetIndex:
        index = cls(path, base_offset)
        data = path.read_bytes()
        for relative, position in _OFFSET_ENTRY.iter_unpack(data[: len(data) - len(data) % 8]):
            index._relative.append(relative)
            index._positions.append(position)
        return index

    def append(self, offset: int, position: int) -> None:
        relative = offset - self.base_offset
        if self._relative and relative <= self._relative[-1]:
            return
        self._relative.append(relative)
        self._positions.append(position)
        self.file.write(_OFFSET_ENTRY.pack(relative, position))

    def lookup(self, offset: int) -> int:
        """File position of a batch at or before the one holding `offset` (0 if none is indexed)."""
        i = bisect.bisect_right(self._relative, offset - self.base_offset) - 1
        return int(self._positions[i]) if i >= 0 else 0

    def reset(self) -> None:
        self._relative = array("q")
        self._positions = array("q")
        self.file.truncate()


class TimeIndex:
    """Invariant: timestamps and relative offsets are both strictly increasing."""

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self._timestamps = array("q")
        self._relative = array("q")
        self.file = _IndexFile(path)

    @classmethod
    def load(cls, path: Path, base_offset: int) -> TimeIndex:
        index = cls(path, base_offset)
        data = path.read_bytes()
        for timestamp, relative in _TIME_ENTRY.iter_unpack(data[: len(data) - len(data) % 12]):
            index._timestamps.append(timestamp)
            index._relative.append(relative)
        return index

    @property
    def max_timestamp(self) -> int:
        return int(self._timestamps[-1]) if self._timestamps else -1

    @property
    def last_offset(self) -> int:
        """The offset at which the largest timestamp was reached (the base offset if none is indexed)."""
        return self.base_offset + int(self._relative[-1]) if self._relative else self.base_offset

    def append(self, timestamp: int, offset: int) -> None:
        relative = offset - self.base_offset
        if self._timestamps and (timestamp <= self._timestamps[-1] or relative <= self._relative[-1]):
            return
        self._timestamps.append(timestamp)
        self._relative.append(relative)
        self.file.write(_TIME_ENTRY.pack(timestamp, relative))

    def lookup(self, timestamp: int) -> int:
        """An offset at or before the first record with a timestamp >= `timestamp` (base offset if none)."""
        i = bisect.bisect_left(self._timestamps, timestamp) - 1
        return self.base_offset + int(self._relative[i]) if i >= 0 else self.base_offset

    def reset(self) -> None:
        self._timestamps = array("q")
        self._relative = array("q")
        self.file.truncate()
