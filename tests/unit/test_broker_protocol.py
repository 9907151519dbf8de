"""The sans-I/O protocol layer, from byte fixtures alone: framing, request decoding, ApiVersions, record batches."""

from __future__ import annotations

import struct

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.request_header.v1.header import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2.header import RequestHeader as RequestHeaderV2

from tidepool.broker.protocol.codec import (
    Rejection,
    Request,
    api_versions_response,
    build,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from tidepool.broker.protocol.framing import FrameBuffer, FrameTooLarge
from tidepool.broker.protocol.records import (
    CORRUPT_MESSAGE,
    INVALID_RECORD,
    UNSUPPORTED_FOR_MESSAGE_FORMAT,
    InvalidRecords,
    rebase,
    record_timestamps,
    validate_produced,
)

RANGES = {0: (3, 9), 1: (4, 12), 3: (0, 12), 18: (0, 4)}


def make_batch(count: int = 3, compression: int = 0, producer_id: int = -1, base_sequence: int = -1) -> bytes:
    builder = DefaultRecordBatchBuilder(
        2, compression, False, producer_id, 0 if producer_id >= 0 else -1, base_sequence, 1 << 20
    )
    for i in range(count):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=b"k%d" % i, value=b"v%d" % i, headers=[("h", b"x")])
    return bytes(builder.build())


def request_frame(api_key: int, version: int, body: dict[str, object], correlation_id: int = 7) -> bytes:
    body_cls = load_request_schema(api_key, version)
    header_cls = body_cls.__header_schema__
    header = header_cls(
        request_api_key=api_key, request_api_version=version, correlation_id=correlation_id, client_id="fixture"
    )
    return encode_request(header, build(body_cls, body))[4:]


def test_frame_buffer_hands_out_whole_frames_across_arbitrary_splits() -> None:
    frames = [b"a" * 10, b"", b"b" * 70000, b"c"]
    wire = b"".join(struct.pack(">i", len(f)) + f for f in frames)
    buffer = FrameBuffer(1 << 20)
    received = []
    for i in range(0, len(wire), 7):
        buffer.feed(wire[i : i + 7])
        while (frame := buffer.next_frame()) is not None:
            received.append(frame)
    assert received == frames
    assert buffer.pending_bytes() == 0


@pytest.mark.parametrize("size", [-1, 1 << 20 + 1, 0x7FFFFFFF])
def test_frame_buffer_refuses_negative_or_oversized_frames(size: int) -> None:
    buffer = FrameBuffer(1 << 20)
    buffer.feed(struct.pack(">i", size))
    with pytest.raises(FrameTooLarge):
        buffer.next_frame()


@pytest.mark.parametrize("version", range(0, 5))
def test_api_versions_round_trips_at_every_version(version: int) -> None:
    body = {"client_software_name": "fixture", "client_software_version": "1"}
    decoded = decode_request(request_frame(18, version, body), RANGES)
    assert isinstance(decoded, Request)
    assert (decoded.api_key, decoded.api_version, decoded.correlation_id) == (18, version, 7)
    wire = encode_response(7, api_versions_response(version, RANGES))
    correlation_id, response = decode_response(wire[4:], 18, version)
    assert correlation_id == 7
    assert response.error_code == ErrorCode.none
    assert {(k.api_key, k.min_version, k.max_version) for k in response.api_keys} == {
        (key, lo, hi) for key, (lo, hi) in RANGES.items()
    }


def test_api_versions_response_header_is_v0_even_for_flexible_versions() -> None:
    wire = encode_response(42, api_versions_response(3, RANGES))
    # size, correlation id, then straight to error_code: no tagged-field byte after the correlation id
    assert struct.unpack_from(">ih", wire, 4) == (42, 0)


def test_too_new_api_versions_is_answered_in_v0_with_unsupported_version() -> None:
    frame = request_frame(18, 3, {"client_software_name": "x", "client_software_version": "1"})
    decoded = decode_request(frame, {**RANGES, 18: (0, 2)})
    assert isinstance(decoded, Rejection)
    assert decoded.reply is not None
    correlation_id, response = decode_response(decoded.reply[4:], 18, 0)
    assert correlation_id == 7
    assert response.error_code == ErrorCode.unsupported_version
    assert any(k.api_key == 18 and k.max_version == 2 for k in response.api_keys)


def test_unknown_api_or_version_closes_the_connection() -> None:
    assert decode_request(request_frame(18, 0, {}), {0: (3, 9)}) == Rejection("unsupported api_key 18", 7, None)
    rejected = decode_request(request_frame(3, 12, {"topics": None}), {3: (0, 4)})
    assert isinstance(rejected, Rejection) and rejected.reply is None


@pytest.mark.parametrize(
    "frame", [b"", b"\x00\x03", b"\x00\x03\x00\x0c\x00\x00\x00\x01", b"\x00\x03\x00\x0c" + b"\xff" * 40]
)
def test_malformed_frames_are_rejected_not_raised(frame: bytes) -> None:
    assert isinstance(decode_request(frame, RANGES), Rejection)


def test_header_v1_and_v2_both_decode_client_id() -> None:
    v1 = decode_request(request_frame(3, 4, {"topics": None, "allow_auto_topic_creation": True}), RANGES)
    v2 = decode_request(request_frame(3, 12, {"topics": None, "allow_auto_topic_creation": True}), RANGES)
    assert isinstance(v1, Request) and isinstance(v1.header, RequestHeaderV1)
    assert isinstance(v2, Request) and isinstance(v2.header, RequestHeaderV2)
    assert v1.header.client_id == v2.header.client_id == "fixture"


def test_build_drops_fields_a_version_lacks_and_nulls_become_zero_where_not_nullable() -> None:
    data = {
        "brokers": [{"node_id": 1, "host": "h", "port": 9, "rack": None}],
        "cluster_id": "c",
        "controller_id": 1,
        "topics": [],
        "cluster_authorized_operations": 0,
    }
    v0 = build(load_response_schema(3, 0), data)
    v12 = build(load_response_schema(3, 12), data)
    assert not hasattr(v0, "cluster_id") and v12.cluster_id == "c"
    assert v0.brokers[0].host == "h"


def test_valid_batches_are_accepted_with_their_headers() -> None:
    records = make_batch(3) + make_batch(2, compression=1)
    headers = validate_produced(records, 1 << 20)
    assert [h.records_count for h in headers] == [3, 2]
    assert headers[1].position == headers[0].size


def test_rebase_keeps_the_crc_valid() -> None:
    data = bytearray(make_batch(3))
    rebase(data, 0, 1234, 0)
    (header,) = validate_produced(bytes(data), 1 << 20)
    assert header.base_offset == 1234


def test_flipped_payload_bit_is_corrupt_message() -> None:
    data = bytearray(make_batch(3))
    data[-3] ^= 0x01
    with pytest.raises(InvalidRecords) as caught:
        validate_produced(bytes(data), 1 << 20)
    assert caught.value.error_code == CORRUPT_MESSAGE


def test_truncated_batch_is_corrupt_message() -> None:
    with pytest.raises(InvalidRecords) as caught:
        validate_produced(make_batch(3)[:-5], 1 << 20)
    assert caught.value.error_code == CORRUPT_MESSAGE


def test_old_message_format_is_refused_with_unsupported_for_message_format() -> None:
    v1_message = struct.pack(">qi", 0, 22) + struct.pack(">IbbqiI", 0, 1, 0, 0, -1, 1) + b"x" + b"\x00" * 4
    with pytest.raises(InvalidRecords) as caught:
        validate_produced(v1_message, 1 << 20)
    assert caught.value.error_code == UNSUPPORTED_FOR_MESSAGE_FORMAT


def test_oversized_batch_is_message_too_large() -> None:
    with pytest.raises(InvalidRecords) as caught:
        validate_produced(make_batch(50), 100)
    assert caught.value.error_code == 10


def test_batch_without_records_is_invalid_record() -> None:
    data = bytearray(make_batch(1))
    struct.pack_into(">i", data, 57, 0)  # recordsCount, inside the CRC range: fix the CRC up
    import crc32c

    struct.pack_into(">I", data, 17, crc32c.crc32c(bytes(data[21:])))
    with pytest.raises(InvalidRecords) as caught:
        validate_produced(bytes(data), 1 << 20)
    assert caught.value.error_code == INVALID_RECORD


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_record_timestamps_are_read_from_batches_of_every_codec(codec: int) -> None:
    from aiokafka.record.default_records import DefaultRecordBatchBuilder as AioBuilder

    builder = AioBuilder(2, codec, False, -1, -1, -1, 1 << 20)  # snappy here is xerial-framed, as Java's
    for i in range(5):
        builder.append(i, timestamp=1_700_000_000_000 + 10 * i, key=None, value=b"v" * 50, headers=[])
    data = bytearray(builder.build())
    rebase(data, 0, 100)
    assert record_timestamps(bytes(data)) == [(100 + i, 1_700_000_000_000 + 10 * i) for i in range(5)]


def test_record_timestamps_read_raw_snappy_as_librdkafka_sends_it() -> None:
    import cramjam
    import crc32c

    plain = bytearray(make_batch(4))
    body = bytes(cramjam.snappy.compress_raw(bytes(plain[61:])))
    data = bytearray(plain[:61] + body)
    struct.pack_into(">i", data, 8, len(data) - 12)
    struct.pack_into(">h", data, 21, 2)
    struct.pack_into(">I", data, 17, crc32c.crc32c(bytes(data[21:])))
    validate_produced(bytes(data), 1 << 20)
    assert [t for _, t in record_timestamps(bytes(data))] == [1_700_000_000_000 + i for i in range(4)]


def test_unknown_tagged_field_closes_the_connection_instead_of_crashing() -> None:
    # kio cannot skip unknown tags (documented gap): the frame is rejected and the connection closed.
    header = struct.pack(">hhih", 18, 3, 9, 1) + b"x" + bytes([1, 99, 1, 0])
    body = bytes([2]) + b"t" + bytes([2]) + b"1" + bytes([0])
    decoded = decode_request(header + body, RANGES)
    assert isinstance(decoded, Rejection) and decoded.reply is None and decoded.correlation_id == 9
    known = struct.pack(">hhih", 18, 3, 9, 1) + b"x" + bytes([0]) + body
    assert isinstance(decode_request(known, RANGES), Request)
