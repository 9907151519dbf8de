"""The durable log without a network: segments, indexes, roll, retention, recovery and producer state."""

from __future__ import annotations

import os
from pathlib import Path

from kafka.record.default_records import DefaultRecordBatchBuilder

from tidepool.broker.log.manager import LogManager
from tidepool.broker.log.partition import LogConfig, OffsetOutOfRange, PartitionLog
from tidepool.broker.protocol.records import iter_headers, validate_produced


def batch(
    count: int = 2,
    timestamp: int = 1_700_000_000_000,
    producer_id: int = -1,
    epoch: int = -1,
    sequence: int = -1,
    size: int = 10,
) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, False, producer_id, epoch, sequence, 1 << 22)
    for i in range(count):
        builder.append(i, timestamp=timestamp + i, key=None, value=b"x" * size, headers=[])
    return bytes(builder.build())


def append(log: PartitionLog, records: bytes) -> int:
    result = log.append(records, validate_produced(records, 1 << 22))
    assert result.error_code == 0, result
    return result.base_offset


def offsets_in(data: bytes) -> list[tuple[int, int]]:
    return [(h.base_offset, h.last_offset) for h in iter_headers(data)]


def test_appends_get_contiguous_offsets_and_read_back_from_any_offset(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(), clean_shutdown=True)
    assert [append(log, batch(3)) for _ in range(4)] == [0, 3, 6, 9]
    assert log.log_end_offset == 12
    assert offsets_in(log.read(4, 1 << 20)) == [(3, 5), (6, 8), (9, 11)]
    assert log.read(12, 1 << 20) == b""


def test_read_returns_one_whole_batch_even_when_it_exceeds_max_bytes(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(), clean_shutdown=True)
    append(log, batch(5, size=1000))
    append(log, batch(5, size=1000))
    assert offsets_in(log.read(0, 10)) == [(0, 4)]
    assert offsets_in(log.read(0, 6000)) == [(0, 4)]


def test_read_outside_the_log_is_offset_out_of_range(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(), clean_shutdown=True)
    append(log, batch(2))
    for offset in (-1, 3):
        try:
            log.read(offset, 100)
        except OffsetOutOfRange:
            continue
        raise AssertionError(f"offset {offset} was readable")


def test_segments_roll_by_size_and_are_named_by_base_offset(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(segment_bytes=2000), clean_shutdown=True)
    for _ in range(10):
        append(log, batch(2, size=300))
    names = sorted(p.name for p in (tmp_path / "t-0").glob("*.log"))
    assert len(names) > 3
    assert names[0] == "00000000000000000000.log"
    assert all(len(n) == len("00000000000000000000.log") for n in names)
    assert offsets_in(log.read(7, 1 << 20))[0] == (6, 7)


def test_retention_by_bytes_deletes_head_segments_and_advances_log_start(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(segment_bytes=1500, retention_bytes=3000), clean_shutdown=True)
    for _ in range(20):
        append(log, batch(2, size=300))
    assert log.apply_retention() > 0
    assert log.log_start_offset > 0
    assert log.size_bytes - log.segments[0].size < 3000
    assert offsets_in(log.read(log.log_start_offset, 1 << 20))[0][0] == log.log_start_offset
    log.close()
    reopened = PartitionLog(tmp_path / "t-0", log.config, clean_shutdown=True)
    assert reopened.log_start_offset == log.log_start_offset
    assert reopened.log_end_offset == 40


def test_retention_by_time_uses_the_newest_timestamp_of_a_segment(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(segment_bytes=800, retention_ms=60_000), clean_shutdown=True)
    for i in range(6):
        append(log, batch(2, timestamp=1_000 + i, size=300))
    append(log, batch(2, timestamp=10_000_000, size=300))
    assert log.apply_retention(now_ms=10_000_000) > 0
    assert log.log_start_offset == log.segments[0].base_offset


def test_timestamp_lookup_finds_the_first_record_at_or_after(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(segment_bytes=300), clean_shutdown=True)
    for i in range(5):
        append(log, batch(3, timestamp=1000 * (i + 1)))  # records at 1000, 1001, 1002, 2000, 2001, …
    assert len(log.segments) > 1
    assert log.offset_for_timestamp(2001) == (4, 2001)
    assert log.offset_for_timestamp(2500) == (6, 3000)
    assert log.offset_for_timestamp(0) == (0, 1000)
    assert log.offset_for_timestamp(10_000) is None


def test_max_timestamp_lookup_finds_the_first_record_with_the_largest_timestamp(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(segment_bytes=300), clean_shutdown=True)
    assert log.max_timestamp_record() is None
    append(log, batch(3, timestamp=1000))
    append(log, batch(3, timestamp=9000))
    append(log, batch(3, timestamp=5000))
    assert log.max_timestamp_record() == (5, 9002)


def test_recovery_truncates_a_torn_tail_and_keeps_every_whole_batch(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = PartitionLog(directory, LogConfig(), clean_shutdown=True)
    for _ in range(5):
        append(log, batch(2))
    good_size = log.active.size
    log.active.sync()
    with open(directory / "00000000000000000000.log", "ab") as f:
        f.write(batch(2)[:30])  # a batch cut short by a crash
    reopened = PartitionLog(directory, LogConfig(), clean_shutdown=False)
    assert reopened.truncated_bytes == 30
    assert os.path.getsize(directory / "00000000000000000000.log") == good_size
    assert reopened.log_end_offset == 10
    assert append(reopened, batch(1)) == 10


def test_recovery_truncates_at_the_first_corrupt_batch(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = PartitionLog(directory, LogConfig(), clean_shutdown=True)
    for _ in range(3):
        append(log, batch(2))
    size_after_two = log.segments[0].size * 2 // 3
    log.active.sync()
    path = directory / "00000000000000000000.log"
    data = bytearray(path.read_bytes())
    data[size_after_two + 70] ^= 0xFF
    path.write_bytes(bytes(data))
    reopened = PartitionLog(directory, LogConfig(), clean_shutdown=False)
    assert reopened.log_end_offset == 4


def test_idempotent_retry_is_acknowledged_with_the_original_offset_and_not_stored_twice(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(), clean_shutdown=True)
    first = batch(3, producer_id=7, epoch=0, sequence=0)
    assert append(log, first) == 0
    assert append(log, batch(2, producer_id=7, epoch=0, sequence=3)) == 3
    assert append(log, first) == 0
    assert log.log_end_offset == 5


def test_sequence_gap_is_out_of_order_and_stale_epoch_is_refused(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(), clean_shutdown=True)
    append(log, batch(3, producer_id=7, epoch=1, sequence=0))
    gap = batch(1, producer_id=7, epoch=1, sequence=5)
    assert log.append(gap, validate_produced(gap, 1 << 20)).error_code == 45
    stale = batch(1, producer_id=7, epoch=0, sequence=3)
    assert log.append(stale, validate_produced(stale, 1 << 20)).error_code == 47
    unknown = batch(1, producer_id=8, epoch=0, sequence=9)
    assert log.append(unknown, validate_produced(unknown, 1 << 20)).error_code == 59
    assert log.log_end_offset == 3


def test_producer_state_is_rebuilt_from_the_log_after_a_crash(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    log = PartitionLog(directory, LogConfig(), clean_shutdown=True)
    first = batch(3, producer_id=9, epoch=0, sequence=0)
    append(log, first)
    log.active.sync()
    reopened = PartitionLog(directory, LogConfig(), clean_shutdown=False)  # no snapshot was written
    assert append(reopened, first) == 0
    assert append(reopened, batch(1, producer_id=9, epoch=0, sequence=3)) == 3


def test_manager_keeps_topics_partitions_and_producer_ids_across_restarts(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.create_topic("oceanic", 3)
    manager.add_partitions("oceanic", 4)
    pid = manager.allocate_producer_id()
    log = manager.get("oceanic", 3)
    assert log is not None
    append(log, batch(2))
    manager.close()
    again = LogManager(tmp_path, LogConfig())
    assert again.clean_shutdown
    assert len(again.topics["oceanic"].partitions) == 4
    assert again.topics["oceanic"].topic_id == manager.topics["oceanic"].topic_id
    assert again.allocate_producer_id() > pid
    reopened = again.get("oceanic", 3)
    assert reopened is not None and reopened.log_end_offset == 2
    again.delete_topic("oceanic")
    assert not (tmp_path / "oceanic-0").exists()


def test_segments_roll_by_age(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(roll_ms=60_000), clean_shutdown=True)
    append(log, batch(2))
    append(log, batch(2))
    assert len(log.segments) == 1
    log.active.created_at -= 61  # the active segment is now older than segment.ms
    append(log, batch(2))
    assert [s.base_offset for s in log.segments] == [0, 4]


def test_closed_segments_keep_one_file_descriptor_each(tmp_path: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    log = PartitionLog(tmp_path / "t-0", LogConfig(segment_bytes=1024), clean_shutdown=True)
    for _ in range(30):
        append(log, batch(2, size=400))
    segments = len(log.segments)
    assert segments >= 10
    assert open_fds() - before <= segments + 2, "closed segments hold only their .log; the active one its indexes"
    assert offsets_in(log.read(0, 1 << 20))[0] == (0, 1)
    log.close()
    reopened = PartitionLog(tmp_path / "t-0", LogConfig(segment_bytes=1024), clean_shutdown=True)
    assert open_fds() - before <= segments + 2
    assert reopened.log_end_offset == 60


def test_delete_records_moves_the_log_start_and_drops_whole_segments_below_it(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(segment_bytes=600), clean_shutdown=True)
    for _ in range(10):
        append(log, batch(2, size=200))
    segments = len(log.segments)
    assert log.delete_records(7) == 7
    assert len(log.segments) < segments
    assert log.segments[0].base_offset <= 7 < log.segments[0].next_offset
    assert offsets_in(log.read(7, 1 << 20))[0] == (6, 7), "the batch holding the new start is returned whole"
    try:
        log.read(5, 100)
    except OffsetOutOfRange:
        pass
    else:
        raise AssertionError("records before the log start are gone")
    assert log.delete_records(3) == 7, "the log start never moves back"
    assert log.delete_records(-1) == 20
    log.close()
    assert PartitionLog(tmp_path / "t-0", log.config, clean_shutdown=True).log_start_offset == 20


def test_silent_producers_expire_after_a_day_and_active_ones_stay(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(), clean_shutdown=True)
    day = 24 * 3600 * 1000
    append(log, batch(1, timestamp=1_000, producer_id=1, epoch=0, sequence=0))
    append(log, batch(1, timestamp=day + 5_000, producer_id=2, epoch=0, sequence=0))
    log.apply_retention(now_ms=day + 2_000)
    assert set(log.producers.producers) == {2}
    log.close()
    assert set(PartitionLog(tmp_path / "t-0", LogConfig(), clean_shutdown=True).producers.producers) == {2}


def test_altered_topic_configs_apply_to_its_partitions_and_survive_restart(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.create_topic("tides", 2)
    manager.set_topic_configs("tides", {"segment.bytes": "1024", "retention.bytes": "2048"})
    log = manager.get("tides", 1)
    assert log is not None
    for _ in range(12):
        append(log, batch(2, size=300))
    assert len(log.segments) > 3
    assert log.apply_retention() > 0 and log.log_start_offset > 0
    manager.close()
    again = LogManager(tmp_path, LogConfig())
    assert again.topics["tides"].configs == {"segment.bytes": "1024", "retention.bytes": "2048"}
    reopened = again.get("tides", 0)
    assert reopened is not None and reopened.config.segment_bytes == 1024


def test_timestamp_lookup_never_answers_below_the_log_start(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(), clean_shutdown=True)
    append(log, batch(5, timestamp=1000))  # records at 1000..1004, offsets 0..4
    log.delete_records(3)
    assert log.offset_for_timestamp(0) == (3, 1003)
    assert log.offset_for_timestamp(1004) == (4, 1004)


def test_max_timestamp_lookup_skips_records_deleted_below_the_log_start(tmp_path: Path) -> None:
    log = PartitionLog(tmp_path / "t-0", LogConfig(), clean_shutdown=True)
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    for i, ts in enumerate([5000, 9000, 1000, 3000]):
        builder.append(i, timestamp=ts, key=None, value=b"x", headers=[])
    append(log, bytes(builder.build()))
    append(log, batch(2, timestamp=2000))
    assert log.max_timestamp_record() == (1, 9000)
    log.delete_records(2)
    assert log.max_timestamp_record() == (3, 3000)
