"""The write-ahead log alone: frames come back in order; a torn or corrupt tail is cut off, never fatal."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from tidepool.db.storage.wal import WriteAheadLog, list_segments, replay, segment_path


@pytest.mark.parametrize("policy", ["per-write", "interval", "off"])
def test_appended_frames_replay_in_order(tmp_path: Path, policy: str) -> None:
    wal = WriteAheadLog(tmp_path, 1, policy, interval_s=0.01)
    for i in range(50):
        wal.wait_durable(wal.append(f"record {i}".encode()))
    wal.rotate(2)
    wal.append(b"in segment two")
    wal.close()
    payloads = [r.payload for r in replay(tmp_path, 1)]
    assert payloads == [f"record {i}".encode() for i in range(50)] + [b"in segment two"]
    assert [r.payload for r in replay(tmp_path, 2)] == [b"in segment two"]


def test_concurrent_writers_share_fsyncs(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, 1, "per-write")

    def writer(n: int) -> None:
        for i in range(100):
            wal.wait_durable(wal.append(f"{n}:{i}".encode()))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert wal.synced_seq == wal.written_seq == 400
    wal.close()
    payloads = [r.payload.decode() for r in replay(tmp_path, 1)]
    assert len(payloads) == 400
    for n in range(4):
        assert [p for p in payloads if p.startswith(f"{n}:")] == [f"{n}:{i}" for i in range(100)]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[:-3], "torn frame payload"),
        (lambda data: data + b"\x31\x57", "torn frame header"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]), "checksum mismatch"),
        (lambda data: data + b"\x00" * 40, "bad frame magic"),
    ],
)
def test_damaged_tail_is_truncated_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: object, reason: str
) -> None:
    wal = WriteAheadLog(tmp_path, 7, "off")
    for i in range(3):
        wal.append(f"record {i}".encode())
    wal.close()
    path = segment_path(tmp_path, 7)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger="tidepool.db.wal"):
        payloads = [r.payload for r in replay(tmp_path, 1)]
    kept = 2 if reason in ("torn frame payload", "checksum mismatch") else 3
    assert payloads == [f"record {i}".encode() for i in range(kept)]
    assert reason in caplog.text
    assert [r.payload for r in replay(tmp_path, 1)] == payloads  # truncated on disk: a second replay is clean
    assert list_segments(tmp_path) == [7]


def test_forced_wait_fsyncs_even_under_the_interval_policy(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, 1, "interval", interval_s=3600)  # the background fsync never comes in time
    seq = wal.append(b"a database with WAL_SYNC 'true'")
    wal.wait_durable(seq)
    assert wal.synced_seq < seq
    wal.wait_durable(seq, force=True)
    assert wal.synced_seq >= seq
    wal.close()
