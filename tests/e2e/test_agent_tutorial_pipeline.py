"""The tutorial end to end with tidepool's own parts: broker → `tidepool agent` (tutorial config) → tidepool db.

Each part is a real process on loopback; rows are counted with SQL over the CnosDB HTTP API.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.test_agent_kafka import AgentProcess, committed, produce, sensor_payloads, tutorial_config
from tidepool.broker.process import BrokerProcess

pytestmark = pytest.mark.timeout(240)


class DbProcess:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.log = data_dir.parent / "db.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DbProcess:
        argv = [
            sys.executable,
            "-m",
            "tidepool",
            "db",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.data_dir),
            "--fsync",
            "per-write",
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("db did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def sql(self, query: str) -> list[list[str]]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/sql?db=public",
            data=query.encode(),
            method="POST",
            headers={"Authorization": "Basic " + base64.b64encode(b"root:").decode(), "Accept": "application/csv"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        return [line.split(",") for line in text.splitlines()]

    def count(self) -> int:
        try:
            rows = self.sql("SELECT count(*) FROM kafka_consumer")
        except Exception:
            return -1
        return int(rows[1][0])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path / "broker", free_port(), "--partitions", "1") as running:
        yield running


@pytest.fixture
def db(tmp_path: Path) -> Iterator[DbProcess]:
    process = DbProcess(tmp_path / "db").start()
    yield process
    process.kill()


def _until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_tutorial_config_unchanged_n_messages_become_n_rows(
    tmp_path: Path, broker: BrokerProcess, db: DbProcess
) -> None:
    n = 3000
    produce(broker.bootstrap, sensor_payloads(n))
    agent = AgentProcess(tmp_path, tutorial_config(broker.bootstrap, db.port)).start()
    try:
        _until(lambda: db.count() == n, 60, f"{n} rows")
        _until(lambda: committed(broker.bootstrap) == n, 30, "offsets committed")
        assert agent.stop() == 0
    finally:
        agent.kill()
    header, *rows = db.sql("SELECT * FROM kafka_consumer ORDER BY visibility")
    assert sorted(header) == ["host", "pressure", "temperature", "time", "visibility"]
    assert len(rows) == n
    host = header.index("host")
    assert {row[host] for row in rows} == {socket.gethostname()}
    visibility = header.index("visibility")
    assert [float(row[visibility]) for row in rows] == [float(i) for i in range(n)]


def test_db_killed_mid_stream_and_restarted_count_ends_exactly_at_n(
    tmp_path: Path, broker: BrokerProcess, db: DbProcess
) -> None:
    n = 6000
    config = tutorial_config(broker.bootstrap, db.port, agent='  flush_interval = "200ms"')
    agent = AgentProcess(tmp_path, config).start()
    producer = threading.Thread(target=produce, args=(broker.bootstrap, sensor_payloads(n)), kwargs={"rate": 1500})
    producer.start()
    try:
        _until(lambda: db.count() >= 1000, 60, "the stream to reach the db")
        db.kill()
        time.sleep(1.5)
        assert committed(broker.bootstrap) < n
        db.start()
        producer.join(60)
        _until(lambda: db.count() >= n, 120, f"{n} rows after the restart")
        time.sleep(1.0)  # any late duplicate write would land now
        assert db.count() == n
        assert agent.stop() == 0
    finally:
        agent.kill()
    assert "Error writing to outputs.http" in agent.log_text()
    assert committed(broker.bootstrap) == n


def test_agent_killed_mid_stream_and_restarted_count_ends_exactly_at_n(
    tmp_path: Path, broker: BrokerProcess, db: DbProcess
) -> None:
    n = 6000
    # Each reading carries its event time (as `tidepool up`'s simulator does), so a replayed message lands on
    # the same series+time row and the db merges it.
    start = 1_700_000_000_000_000_000
    payloads = [
        b'{"pressure": %d, "temperature": 20.5, "visibility": %d, "time": %d}' % (i % 10, i, start + i)
        for i in range(n)
    ]
    extra = '  json_time_key = "time"\n  json_time_format = "unix_ns"\n'
    config = tutorial_config(broker.bootstrap, db.port, extra_input=extra, agent='  flush_interval = "200ms"')
    agent = AgentProcess(tmp_path, config).start()
    producer = threading.Thread(target=produce, args=(broker.bootstrap, payloads), kwargs={"rate": 1500})
    producer.start()
    restarted = None
    try:
        _until(lambda: db.count() >= 1500, 60, "the stream to reach the db")
        agent.kill()
        assert committed(broker.bootstrap) < n
        restarted = AgentProcess(tmp_path, config, name="agent-restarted").start()
        producer.join(60)
        _until(lambda: db.count() >= n, 120, f"{n} rows after the agent restart")
        _until(lambda: committed(broker.bootstrap) == n, 30, "every offset committed")
        assert db.count() == n
        assert restarted.stop() == 0
    finally:
        agent.kill()
        if restarted is not None:
            restarted.kill()
    _header, *rows = db.sql("SELECT time, visibility FROM kafka_consumer ORDER BY time")
    assert [float(row[1]) for row in rows] == [float(i) for i in range(n)]
