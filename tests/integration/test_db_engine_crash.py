"""Crashes against real processes: SIGKILL during acknowledged writes, damaged files on disk, SIGTERM shutdown."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
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
    # Acknowledgements printed before the kill but not yet read count too.
    acked = max([acked, *(int(line) for line in proc.stdout.read().split())])
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
    engine.wal.close()  # the process dies here: WAL written, memtable not flushed, directory lock released
    assert engine._dir_lock is not None
    engine._dir_lock.close()
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


def _post(url: str, body: bytes) -> bytes:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Authorization": "Basic " + base64.b64encode(b"root:").decode()}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return response.read()


def _start_db(cmd: list[str], data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*cmd, "db", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}", "--memtable-mb", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/ping", timeout=5):
                return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.1)


def test_kill_9_of_tidepool_db_during_http_writes_keeps_every_acknowledged_point(
    tmp_path: Path, tidepool_cmd: list[str]
) -> None:
    data_dir = tmp_path / "db"
    port = free_port()
    proc = _start_db(tidepool_cmd, data_dir, port)
    acked = 0

    def write_forever() -> None:
        nonlocal acked
        batch = 0
        try:
            while batch < 10_000:
                lines = [f"m,host=h{i % 7} seq={i}i {T0 + i * 1000}" for i in range(batch * 500, (batch + 1) * 500)]
                _post(f"http://127.0.0.1:{port}/api/v1/write?db=public", "\n".join(lines).encode())
                batch += 1
                acked = batch
        except (OSError, http.client.HTTPException):
            return  # the server died under the request in flight

    writer = threading.Thread(target=write_forever)
    writer.start()
    deadline = time.monotonic() + 60
    while acked < 60 and time.monotonic() < deadline and writer.is_alive():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    writer.join(timeout=60)
    assert acked >= 60

    port = free_port()
    proc = _start_db(tidepool_cmd, data_dir, port)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/sql?db=public"
        body = _post(url, b"SELECT count(*) AS n, count(DISTINCT seq) AS d, min(seq) AS lo, max(seq) AS hi FROM m")
        header, row = body.decode().splitlines()
        assert header == "n,d,lo,hi"
        n, distinct, lo, hi = map(int, row.split(","))
        # Every acknowledged batch is there, once; the batch in flight at the kill is all there or absent.
        assert n in (acked * 500, (acked + 1) * 500)
        assert (distinct, lo, hi) == (n, 0, n - 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
