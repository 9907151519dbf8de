"""The log of one topic partition: a list of segments, the log start offset and the producer state.

Invariant: segments are contiguous and ordered by base offset; only the last one is appended to;
`log_start_offset <= log_end_offset` and every offset in between is readable.
"""

from __future__ import annotations

import bisect
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tidepool.broker.log.producers import Duplicate, ProducerStateTable, Rejected
from tidepool.broker.log.segment import LogSegment
from tidepool.broker.protocol.records import BatchHeader, iter_headers, rebase, record_timestamps
from tidepool.logs import get_logger

log = get_logger("broker")

LOG_START_FILE = "log-start-offset"
PRODUCER_SNAPSHOT_FILE = "producer-state.json"


@dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = 1 << 30
    roll_ms: int = 7 * 24 * 3600 * 1000
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    max_message_bytes: int = 1048588
    producer_id_expiration_ms: int = 24 * 3600 * 1000


class OffsetOutOfRange(Exception):
    pass


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Outcome of appending one produced records blob: base offset, or a Kafka error code."""

    base_offset: int
    error_code: int = 0
    message: str | None = None


class PartitionLog:
    def __init__(self, directory: Path, config: LogConfig, clean_shutdown: bool) -> None:
        self.directory = directory
        self.config = config
        directory.mkdir(parents=True, exist_ok=True)
        self.truncated_bytes = 0
        self.segments: list[LogSegment] = []
        self._bases: list[int] = []
        self._open_segments(clean_shutdown)
        # a crash may have truncated below a log start that DeleteRecords had just moved to the log end
        stored_start = read_number(self.directory / LOG_START_FILE, default=0)
        self.log_start_offset = min(max(stored_start, self.segments[0].base_offset), self.log_end_offset)
        self.producers = self._load_producer_state()
        self._unsynced = False

    # ---- opening and recovery -------------------------------------------------------------------------------

    def _open_segments(self, clean_shutdown: bool) -> None:
        bases = sorted(int(p.stem) for p in self.directory.glob("*.log") if p.stem.isdigit())
        if not bases:
            self._add_segment(LogSegment.create(self.directory, 0))
            return
        for i, base in enumerate(bases[:-1]):
            self._add_segment(LogSegment.open_closed(self.directory, base, bases[i + 1]))
        active, truncated = LogSegment.open_active(self.directory, bases[-1], verify_crc=not clean_shutdown)
        self.truncated_bytes = truncated
        self._add_segment(active)

    def _add_segment(self, segment: LogSegment) -> None:
        self.segments.append(segment)
        self._bases.append(segment.base_offset)

    def _write_log_start(self) -> None:
        write_number(self.directory / LOG_START_FILE, self.log_start_offset)

    def _load_producer_state(self) -> ProducerStateTable:
        table = ProducerStateTable()
        scan_from = self.log_start_offset
        try:
            snapshot = json.loads((self.directory / PRODUCER_SNAPSHOT_FILE).read_text())
            if self.log_start_offset <= int(snapshot["offset"]) <= self.log_end_offset:
                table = ProducerStateTable.from_json(snapshot["producers"])
                scan_from = int(snapshot["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        for segment in self.segments:
            if segment.next_offset <= scan_from:
                continue
            start = segment.position_of(scan_from) or 0
            for header in segment.scan(start, segment.size, verify_crc=False):
                if header.last_offset >= scan_from:
                    table.record(header)
        return table

    def _snapshot_producers(self) -> None:
        data = {"offset": self.log_end_offset, "producers": self.producers.to_json()}
        write_atomically(self.directory / PRODUCER_SNAPSHOT_FILE, json.dumps(data))

    # ---- state ----------------------------------------------------------------------------------------------

    @property
    def active(self) -> LogSegment:
        return self.segments[-1]

    @property
    def log_end_offset(self) -> int:
        return self.active.next_offset

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    # ---- writes ---------------------------------------------------------------------------------------------

    def append(self, records: bytes, headers: list[BatchHeader]) -> AppendResult:
        """Append validated batches (as produced), assigning offsets; duplicates return their first offset."""
        if len(headers) == 1:
            verdict = self.producers.check(headers[0])
            if isinstance(verdict, Duplicate):
                log.info(
                    "%s: duplicate batch from producer %d (sequence %d) acknowledged with its offset %d",
                    self.directory.name,
                    headers[0].producer_id,
                    headers[0].base_sequence,
                    verdict.base_offset,
                )
                return AppendResult(verdict.base_offset)
            if isinstance(verdict, Rejected):
                return AppendResult(-1, verdict.error_code, verdict.message)
        elif any(header.producer_id >= 0 for header in headers):
            return AppendResult(-1, 87, "an idempotent producer sends one batch per partition per request")
        self._maybe_roll(len(records))
        data = bytearray(records)
        offset = self.log_end_offset
        base_offset = offset
        rebased = []
        for header in headers:
            rebase(data, header.position, offset)
            rebased.append(_with_base(header, offset))
            offset += header.last_offset_delta + 1
        self.active.append(data, rebased)
        for header in rebased:
            self.producers.record(header)
        self._unsynced = True
        return AppendResult(base_offset)

    def _maybe_roll(self, incoming: int) -> None:
        active = self.active
        if active.size == 0:
            return
        too_big = active.size + incoming > self.config.segment_bytes
        too_old = (time.time() - active.created_at) * 1000 > self.config.roll_ms
        if too_big or too_old:
            self.roll()

    def roll(self) -> None:
        self.active.seal()
        self._add_segment(LogSegment.create(self.directory, self.log_end_offset))
        self._snapshot_producers()

    def sync(self) -> None:
        """fsync the active segment and its indexes, if anything was appended since the last sync."""
        if self._unsynced:
            self._unsynced = False
            try:
                self.active.sync()
            except OSError:
                self._unsynced = True  # try again next time
                raise

    def flush_indexes(self) -> None:
        self.active.flush()

    # ---- reads ----------------------------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one holding `offset`, up to `max_bytes` but always at least one batch."""
        if offset < self.log_start_offset or offset > self.log_end_offset:
            raise OffsetOutOfRange(offset)
        if offset == self.log_end_offset:
            return b""
        i = bisect.bisect_right(self._bases, offset) - 1
        while i < len(self.segments):
            segment = self.segments[i]
            position = segment.position_of(offset)
            if position is not None:
                return _whole_batches(segment, position, max_bytes)
            i += 1
        return b""

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with a timestamp >= `timestamp`, or None if there is none."""
        for segment in self.segments:
            if segment.max_timestamp >= timestamp and segment.next_offset > self.log_start_offset:
                found = segment.offset_for_timestamp(timestamp, self.log_start_offset)
                if found is not None:
                    return found
        return None

    def max_timestamp_record(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with the largest timestamp in the log, None if empty."""
        best: LogSegment | None = None
        for segment in self.segments:
            if segment.max_timestamp >= 0 and (best is None or segment.max_timestamp > best.max_timestamp):
                best = segment
        found = None if best is None else best.max_timestamp_record()
        if found is None or found[0] >= self.log_start_offset:
            return found
        return self._max_timestamp_record_after_start()

    def _max_timestamp_record_after_start(self) -> tuple[int, int] | None:
        """The slow path, for when DeleteRecords cut into the segment holding the newest timestamp."""
        best: tuple[int, int] | None = None
        for segment in self.segments:
            if segment.next_offset <= self.log_start_offset:
                continue
            start = segment.position_of(self.log_start_offset) or 0
            for header in segment.scan(start, segment.size, verify_crc=False):
                if best is not None and header.max_timestamp <= best[1]:
                    continue
                for offset, timestamp in record_timestamps(segment.read(header.position, header.size)):
                    if offset >= self.log_start_offset and (best is None or timestamp > best[1]):
                        best = (offset, timestamp)
        return best

    # ---- retention ------------------------------------------------------------------------------------------

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete closed segments past retention.ms or retention.bytes; returns how many were deleted."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self.producers.expire(now_ms, self.config.producer_id_expiration_ms)
        deleted = 0
        total = self.size_bytes
        while len(self.segments) > 1:
            head = self.segments[0]
            expired = self.config.retention_ms >= 0 and 0 <= head.max_timestamp < now_ms - self.config.retention_ms
            oversize = self.config.retention_bytes >= 0 and total - head.size >= self.config.retention_bytes
            if not (expired or oversize):
                break
            total -= head.size
            self.segments.pop(0)
            self._bases.pop(0)
            head.delete()
            deleted += 1
        if deleted:
            self.log_start_offset = max(self.log_start_offset, self.segments[0].base_offset)
            self._write_log_start()
        return deleted

    def delete_records(self, before: int) -> int:
        """Make `before` (-1: the log end) the log start offset, as DeleteRecords does; returns the new start.

        Whole segments below it are deleted; the rest of the one holding it stays on disk but is unreadable.
        """
        if before == -1:
            before = self.log_end_offset
        if before < 0 or before > self.log_end_offset:
            raise OffsetOutOfRange(before)
        if before > self.log_start_offset:
            self.log_start_offset = before
            while len(self.segments) > 1 and self.segments[0].next_offset <= before:
                self._bases.pop(0)
                self.segments.pop(0).delete()
            self._write_log_start()
        return self.log_start_offset

    def close(self) -> None:
        self.active.sync()
        self._snapshot_producers()
        for segment in self.segments:
            segment.close()


def _whole_batches(segment: LogSegment, position: int, max_bytes: int) -> bytes:
    available = segment.size - position
    data = segment.read(position, min(max(max_bytes, 0), available))
    headers = iter_headers(data)
    if headers:
        last = headers[-1]
        data = data[: last.position + last.size]
    else:
        first = segment.header_at(position)
        if first is None:
            return b""
        last = first
        data = segment.read(position, first.size)
    segment.remember_position(last.next_offset, position + len(data))
    return data


def _with_base(header: BatchHeader, base_offset: int) -> BatchHeader:
    return replace(header, base_offset=base_offset)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` so a reader (or a restart, even after a power loss) sees the old or the new text, whole."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:  # the rename itself lives in the directory: flush it too, as Kafka does for its checkpoint files
        os.fsync(directory)
    finally:
        os.close(directory)


def read_number(path: Path, default: int) -> int:
    """The number `write_number` left in `path`; `default` if the file is missing or unreadable."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return default


def write_number(path: Path, value: int) -> None:
    write_atomically(path, f"{value}\n")
