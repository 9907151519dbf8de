"""One log segment: an append-only file of record batches, exactly the bytes clients produced (re-based).

Files are `<base offset, 20 digits>.log|.index|.timeindex`, as in Apache Kafka.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from tidepool.broker.log.index import OffsetIndex, TimeIndex
from tidepool.broker.protocol.records import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    crc_matches,
    read_header,
    record_timestamps,
)

INDEX_INTERVAL_BYTES = 4096
_SCAN_CHUNK = 1 << 20
_LOOKUP_WINDOW = 3 * INDEX_INTERVAL_BYTES
_POSITION_CACHE = 64  # next-fetch positions remembered per segment (one per recent consumer)


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


class LogSegment:
    """Invariant: `size` bytes of whole, valid batches with offsets in [base_offset, next_offset)."""

    def __init__(self, directory: Path, base_offset: int) -> None:
        self.base_offset = base_offset
        self.path = directory / f"{segment_name(base_offset)}.log"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self.size = os.fstat(self._fd).st_size
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.created_at = time.time()
        self._bytes_since_index = 0
        self._positions: dict[int, int] = {}
        self.offset_index: OffsetIndex
        self.time_index: TimeIndex

    @classmethod
    def create(cls, directory: Path, base_offset: int) -> LogSegment:
        segment = cls(directory, base_offset)
        name = segment_name(base_offset)
        segment.offset_index = OffsetIndex(directory / f"{name}.index", base_offset)
        segment.time_index = TimeIndex(directory / f"{name}.timeindex", base_offset)
        return segment

    @classmethod
    def open_closed(cls, directory: Path, base_offset: int, next_offset: int) -> LogSegment:
        """A segment that is not the last one: its indexes are trusted, unless missing."""
        segment = cls(directory, base_offset)
        name = segment_name(base_offset)
        index_path = directory / f"{name}.index"
        time_path = directory / f"{name}.timeindex"
        if index_path.exists() and time_path.exists():
            segment.offset_index = OffsetIndex.load(index_path, base_offset)
            segment.time_index = TimeIndex.load(time_path, base_offset)
            segment.next_offset = next_offset
            segment.max_timestamp = segment.time_index.max_timestamp
            segment.created_at = os.path.getmtime(segment.path)
        else:
            segment.recover(verify_crc=False)
            segment.offset_index.file.close()
            segment.time_index.file.close()
        return segment

    @classmethod
    def open_active(cls, directory: Path, base_offset: int, verify_crc: bool) -> tuple[LogSegment, int]:
        """The last segment, rescanned: indexes rebuilt and any torn or corrupt tail truncated.

        Returns the segment and the number of bytes truncated.
        """
        segment = cls(directory, base_offset)
        truncated = segment.recover(verify_crc)
        return segment, truncated

    def recover(self, verify_crc: bool) -> int:
        name = segment_name(self.base_offset)
        directory = self.path.parent
        self.offset_index = OffsetIndex(directory / f"{name}.index", self.base_offset)
        self.time_index = TimeIndex(directory / f"{name}.timeindex", self.base_offset)
        self.offset_index.reset()
        self.time_index.reset()
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self._bytes_since_index = INDEX_INTERVAL_BYTES
        valid_end = 0
        for header in self.scan(0, self.size, verify_crc):
            if header.base_offset < self.next_offset:
                break
            self._index(header)
            valid_end = header.position + header.size
        truncated = self.size - valid_end
        if truncated:
            os.ftruncate(self._fd, valid_end)
            self.size = valid_end
        self.offset_index.file.flush()
        self.time_index.file.flush()
        return truncated

    def scan(self, start: int, end: int, verify_crc: bool) -> Iterator[BatchHeader]:
        """Headers of whole batches in [start, end), stopping at the first torn or (if verified) corrupt one."""
        position = start
        while position + HEADER_SIZE <= end:
            chunk = os.pread(self._fd, min(_SCAN_CHUNK, end - position), position)
            offset = 0
            while offset + HEADER_SIZE <= len(chunk):
                header = read_header(chunk, offset, position + offset)
                if header.magic != 2 or header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
                    return
                if offset + header.size > len(chunk):
                    if offset == 0:  # one batch larger than the chunk: read it whole
                        if position + header.size > end:
                            return
                        chunk = os.pread(self._fd, header.size, position)
                        if len(chunk) < header.size:
                            return
                        continue
                    break
                if verify_crc and not crc_matches(chunk, header):
                    return
                yield header
                offset += header.size
            if offset == 0:
                return
            position += offset

    def _index(self, header: BatchHeader) -> None:
        if self._bytes_since_index >= INDEX_INTERVAL_BYTES:
            self.offset_index.append(header.last_offset, header.position)
            self._bytes_since_index = 0
        self._bytes_since_index += header.size
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.time_index.append(header.max_timestamp, header.last_offset)
        self.next_offset = header.next_offset

    def append(self, data: bytes | bytearray, headers: list[BatchHeader]) -> None:
        """Append re-based batches; `headers` give each batch's position relative to `data`."""
        start = self.size
        written = os.pwrite(self._fd, data, start)
        if written != len(data):
            raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
        self.size += len(data)
        for header in headers:
            self._index(replace(header, position=start + header.position))

    def read(self, position: int, length: int) -> bytes:
        return os.pread(self._fd, length, position)

    def header_at(self, position: int) -> BatchHeader | None:
        data = os.pread(self._fd, HEADER_SIZE, position)
        if len(data) < HEADER_SIZE:
            return None
        return read_header(data, 0, position)

    def position_of(self, offset: int) -> int | None:
        """File position of the batch holding `offset` (or the first one after it), None past the end."""
        cached = self._positions.get(offset)
        if cached is not None:
            return cached
        position = self.offset_index.lookup(offset)
        while position + HEADER_SIZE <= self.size:
            window = os.pread(self._fd, min(self.size - position, _LOOKUP_WINDOW), position)
            cursor = 0
            while cursor + HEADER_SIZE <= len(window):
                header = read_header(window, cursor, position + cursor)
                if header.last_offset >= offset:
                    return header.position
                cursor += header.size
            if cursor == 0:
                return None
            position += cursor
        return None

    def remember_position(self, offset: int, position: int) -> None:
        """Note where the batch holding `offset` starts: a consumer's next fetch asks for exactly that offset."""
        if len(self._positions) >= _POSITION_CACHE:
            self._positions.pop(next(iter(self._positions)))
        self._positions[offset] = position

    def offset_for_timestamp(self, timestamp: int, min_offset: int = 0) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or after `min_offset` with a timestamp >= `timestamp`."""
        position = self.position_of(max(self.time_index.lookup(timestamp), min_offset))
        while position is not None and position < self.size:
            header = self.header_at(position)
            if header is None:
                return None
            if header.max_timestamp >= timestamp:
                records = record_timestamps(self.read(position, header.size))
                found = next(((o, t) for o, t in records if t >= timestamp and o >= min_offset), None)
                if found is not None:
                    return found
            position += header.size
        return None

    def max_timestamp_record(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record carrying this segment's largest timestamp."""
        if self.max_timestamp < 0:
            return None
        position = self.position_of(self.time_index.last_offset)
        if position is None:
            return None
        header = self.header_at(position)
        if header is None:
            return None
        records = record_timestamps(self.read(position, header.size))
        return next(((o, t) for o, t in records if t == self.max_timestamp), None)

    def flush(self) -> None:
        self.offset_index.file.flush()
        self.time_index.file.flush()

    def sync(self) -> None:
        os.fsync(self._fd)
        self.offset_index.file.sync()
        self.time_index.file.sync()

    def seal(self) -> None:
        """This segment is no longer appended to: sync it and let go of its index files (reads keep working)."""
        self.sync()
        self.offset_index.file.close()
        self.time_index.file.close()

    def close(self) -> None:
        self.offset_index.file.close()
        self.time_index.file.close()
        os.close(self._fd)

    def delete(self) -> None:
        self.close()
        for path in (self.path, self.offset_index.path, self.time_index.path):
            path.unlink(missing_ok=True)
