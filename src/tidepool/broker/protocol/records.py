"""RecordBatch (magic v2) headers: parse, validate and re-base, without ever decoding individual records.

The broker stores batches exactly as produced. Only `baseOffset` and `partitionLeaderEpoch` are rewritten;
both sit before the CRC-32C range, so the CRC stays valid and compressed payloads are never touched.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c

HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset i64 + batchLength i32: the bytes not counted by batchLength
_MAGIC_OFFSET = 16
_CRC_START = 21
_HEADER = struct.Struct(">qiibIhiqqqhii")

TRANSACTIONAL_FLAG = 0x10
CONTROL_FLAG = 0x20


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The fixed 61-byte header of one RecordBatch, with its position in the buffer it was read from."""

    position: int
    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def last_sequence(self) -> int:
        """The sequence of the last record; sequences wrap at 2**31."""
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.last_offset_delta) % (1 << 31)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_FLAG)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_FLAG)


class InvalidRecords(Exception):
    """Produced records the broker refuses; `error_code` is the Kafka error to answer with."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


CORRUPT_MESSAGE = 2
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
INVALID_RECORD = 87


def read_header(buf: bytes | memoryview, position: int, file_position: int | None = None) -> BatchHeader:
    """The batch header at `position` of `buf`; the caller has checked that 61 bytes are there.

    `file_position` is recorded as the header's position instead of `position` when `buf` is a window of a file.
    """
    fields = _HEADER.unpack_from(buf, position)
    return BatchHeader(position if file_position is None else file_position, *fields)


def iter_headers(buf: bytes | memoryview, start: int = 0) -> list[BatchHeader]:
    """Headers of the whole batches in `buf[start:]`; stops at the first incomplete one (a torn tail)."""
    headers = []
    position = start
    end = len(buf)
    while position + HEADER_SIZE <= end:
        header = read_header(buf, position)
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD or position + header.size > end:
            break
        headers.append(header)
        position += header.size
    return headers


def crc_matches(buf: bytes | memoryview, header: BatchHeader) -> bool:
    start = header.position + _CRC_START
    return crc32c.crc32c(buf[start : header.position + header.size]) == header.crc


def validate_produced(records: bytes, max_batch_bytes: int) -> list[BatchHeader]:
    """Check a Produce request's records (one or more v2 batches) and return their headers.

    Raises InvalidRecords with the error Apache Kafka would answer: magic < 2 → UNSUPPORTED_FOR_MESSAGE_FORMAT,
    bad sizes or CRC → CORRUPT_MESSAGE, an empty batch → INVALID_RECORD, an oversized batch →
    MESSAGE_TOO_LARGE.
    """
    if len(records) < LOG_OVERHEAD + 5:
        raise InvalidRecords(CORRUPT_MESSAGE, "records shorter than a batch header")
    headers = []
    position = 0
    end = len(records)
    while position < end:
        if position + _MAGIC_OFFSET + 1 <= end and records[position + _MAGIC_OFFSET] < 2:
            raise InvalidRecords(UNSUPPORTED_FOR_MESSAGE_FORMAT, "message format v0/v1 is not supported; use v2")
        if position + HEADER_SIZE > end:
            raise InvalidRecords(CORRUPT_MESSAGE, "truncated record batch header")
        header = read_header(records, position)
        if header.magic != 2:
            raise InvalidRecords(CORRUPT_MESSAGE, f"unknown magic {header.magic}")
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD or position + header.size > end:
            raise InvalidRecords(CORRUPT_MESSAGE, "record batch length does not match the request")
        if header.size > max_batch_bytes:
            raise InvalidRecords(10, f"record batch of {header.size} bytes exceeds {max_batch_bytes}")
        if not crc_matches(records, header):
            raise InvalidRecords(CORRUPT_MESSAGE, "record batch CRC-32C mismatch")
        if header.records_count < 1 or header.last_offset_delta < 0:
            raise InvalidRecords(INVALID_RECORD, "record batch holds no records")
        headers.append(header)
        position += header.size
    return headers


def rebase(batch: bytearray, position: int, base_offset: int, leader_epoch: int = 0) -> None:
    """Rewrite baseOffset and partitionLeaderEpoch of the batch at `position`, in place (CRC unaffected)."""
    struct.pack_into(">q", batch, position, base_offset)
    struct.pack_into(">i", batch, position + 12, leader_epoch)


# ---- reading records: only for ListOffsets by timestamp, never on the produce or fetch path ---------------------

_CODEC_MASK = 0x07
_LOG_APPEND_TIME_FLAG = 0x08
_XERIAL_MAGIC = b"\x82SNAPPY\x00"


def _snappy(data: bytes) -> bytes:
    import cramjam

    if not data.startswith(_XERIAL_MAGIC):
        return bytes(cramjam.snappy.decompress_raw(data))
    out = bytearray()
    position = 16  # magic, version i32, compatible version i32
    while position + 4 <= len(data):
        (length,) = struct.unpack_from(">i", data, position)
        position += 4
        out += cramjam.snappy.decompress_raw(data[position : position + length])
        position += length
    return bytes(out)


def decompress(codec: int, data: bytes) -> bytes:
    """The concatenated records of a batch body compressed with `codec` (1 gzip, 2 snappy, 3 lz4, 4 zstd)."""
    import cramjam

    if codec == 0:
        return data
    if codec == 1:
        return bytes(cramjam.gzip.decompress(data))
    if codec == 2:
        return _snappy(data)
    if codec == 3:
        return bytes(cramjam.lz4.decompress(data))
    if codec == 4:
        return bytes(cramjam.zstd.decompress(data))
    raise ValueError(f"unknown compression codec {codec}")


def _varint(buf: bytes, position: int) -> tuple[int, int]:
    """A zig-zag varint (as in record fields) at `position`: (value, next position)."""
    shift = 0
    raw = 0
    while True:
        byte = buf[position]
        position += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (raw >> 1) ^ -(raw & 1), position
        shift += 7


def record_timestamps(batch: bytes) -> list[tuple[int, int]]:
    """(offset, timestamp) of every record of one whole stored batch, decompressing it if needed."""
    header = read_header(batch, 0)
    if header.attributes & _LOG_APPEND_TIME_FLAG:
        return [(header.base_offset + i, header.max_timestamp) for i in range(header.records_count)]
    body = decompress(header.attributes & _CODEC_MASK, batch[HEADER_SIZE : header.size])
    result = []
    position = 0
    for _ in range(header.records_count):
        length, start = _varint(body, position)
        timestamp_delta, after = _varint(body, start + 1)  # skip the record's attributes byte
        offset_delta, _ = _varint(body, after)
        result.append((header.base_offset + offset_delta, header.base_timestamp + timestamp_delta))
        position = start + length
    return result
