"""Crashes against real processes: SIGKILL during acknowledged writes, damaged files on disk, SIGTERM shutdown."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest

from tests.conftest import free_port
from tidepool.db.engine import Engine, EngineConfig

T0 = 1_700_000_000_000_000_000
BATCH = 200  # points per write; each write is one acknowledged unit

# Writes batches forever with a tiny memtable (so flushes and compactions run in the background while it is
# killed) and prints the number of each batch once write_lines returned, i.e. once it was acknowledged.
DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tidepool.db.engine import Engine, EngineConfig

    data_dir, fsync, size, t0 = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    engine = Engine.open(data_dir, EngineConfig(fsync=fsync, memtable_bytes=256 * 1024,
                         background_interval_s=0.05, compact_min_files=3))
    batch = 0
    while True:
        # Every batch rewrites the previous batch's last 50 points too (same series and time, new value):
        # duplicates that the engine must merge, wherever they end up.
        seqs = range(max(0, batch * size - 50), (batch + 1) * size)
        lines = [f"m,host=h{i % 5} seq={i}i,batch={batch}i {t0 + i * 1000}" for i in seqs]
        engine.write_lines("cnosdb", "public", "\\n".join(lines).encode())
        print(batch, flush=True)
        batch += 1
    """
)


@pytest.mark.parametrize("fsync", ["interval", "per-write"])
def test_kill_9_during_acknowledged_writes_loses_and_duplicates_nothing(tmp_path: Path, fsync: str) -> None:
    data_dir = tmp_path / "db"
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(data_dir), fsync, str(BATCH), str(T0)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    acked = -1
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    try:
        while acked < 300 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked = int(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert acked >= 300, proc.stderr.read().decode() if proc.stderr else ""

    engine = Engine.open(data_dir, EngineConfig(background=False))
    try:
        table = engine.execute("cnosdb", "public", "SELECT seq, batch, time FROM m ORDER BY seq").to_table()
        seqs = table.column("seq").to_pylist()
        # Acknowledged points are all there, once each; at most the one unacknowledged batch may follow.
        assert seqs[: (acked + 1) * BATCH] == list(range((acked + 1) * BATCH))
        assert len(seqs) in ((acked + 1) * BATCH, (acked + 2) * BATCH)
        assert seqs == list(range(len(seqs)))
        times = table.column("time").cast(pa.int64()).to_pylist()
        assert times == [T0 + s * 1000 for s in seqs]
        # The rewritten overlap carries the later batch's value (last write wins).
        batches = table.column("batch").to_pylist()
        for s, b in zip(seqs, batches, strict=True):
            assert b == s // BATCH + (1 if s % BATCH >= BATCH - 50 and s // BATCH < len(seqs) // BATCH - 1 else 0)
        stats = engine.stats()
        assert stats["parquet_files"] >= 1  # flushes happened before the kill
    finally:
        engine.close()


def test_corrupt_wal_tail_and_parquet_footer_are_reported_and_the_rest_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "db"
    engine = Engine.open(data_dir, EngineConfig(background=False))
    engine.write_lines("cnosdb", "public", f"lost,host=a v=1 {T0}".encode())
    engine.flush()  # `lost` lives only in a Parquet file
    engine.write_lines("cnosdb", "public", f"kept,host=a v=1 {T0}\nkept,host=b v=2 {T0}".encode())
    engine.flush()
    engine.write_lines("cnosdb", "public", f"wal,host=a v=1 {T0}".encode())
    engine.write_lines("cnosdb", "public", f"wal,host=b v=2 {T0}".encode())
    engine.wal.close()  # the process dies here: WAL written, memtable not flushed
    manifest = json.loads((data_dir / "manifest.json").read_text())
    lost_file = data_dir / next(f["path"] for f in manifest["files"] if f["table"] == "lost")
    lost_file.write_bytes(lost_file.read_bytes()[:-6])  # footer length and magic gone
    segment = max((data_dir / "wal").glob("*.wal"))
    segment.write_bytes(segment.read_bytes()[:-5])  # the last write is torn

    caplog.set_level("WARNING")
    engine = Engine.open(data_dir, EngineConfig(background=False))
    try:
        assert any("dropped unreadable Parquet file" in line and "lost" in line for line in engine.recovery_report)
        assert "torn frame payload" in caplog.text
        rows = engine.execute("cnosdb", "public", "SELECT host, v FROM kept ORDER BY host").to_table().to_pylist()
        assert rows == [{"host": "a", "v": 1.0}, {"host": "b", "v": 2.0}]
        rows = engine.execute("cnosdb", "public", "SELECT host, v FROM wal").to_table().to_pylist()
        assert rows == [{"host": "a", "v": 1.0}]
        assert engine.execute("cnosdb", "public", "SELECT count(*) AS n FROM lost").to_table().to_pylist() == [{"n": 0}]
        engine.write_lines("cnosdb", "public", f"wal,host=c v=3 {T0}".encode())
        assert engine.execute("cnosdb", "public", "SELECT count(*) AS n FROM wal").to_table().to_pylist() == [{"n": 2}]
    finally:
        engine.close()


def test_tidepool_db_serves_and_shuts_down_cleanly_on_sigterm(tmp_path: Path, tidepool_cmd: list[str]) -> None:
    port = free_port()
    data_dir = tmp_path / "db"
    proc = subprocess.Popen(
        [*tidepool_cmd, "db", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v1/write?db=public"
        deadline = time.monotonic() + 30
        while True:
            try:
                request = urllib.request.Request(
                    url,
                    data=f"cpu,host=a v=1 {T0}".encode(),
                    method="POST",
                    headers={"Authorization": "Basic " + base64.b64encode(b"root:").decode()},
                )
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert response.status == 200
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    log = proc.stderr.read().decode() if proc.stderr else ""
    assert f"listening on http://127.0.0.1:{port}" in log
    assert "closed" in log
    manifest = json.loads((data_dir / "manifest.json").read_text())
    assert [f["rows"] for f in manifest["files"]] == [1]  # the memtable was flushed on the way out
    assert all(p.stat().st_size == 0 for p in (data_dir / "wal").glob("*.wal"))
