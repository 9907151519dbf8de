"""Helpers for end-to-end tests: run `tidepool up` as a real process tree and talk to it as a user would."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port


@dataclass
class Pipeline:
    """A running `tidepool up` with its own ports and data dir."""

    data_dir: Path
    broker_port: int
    db_port: int
    process: subprocess.Popen[str] | None = None

    @property
    def brokers(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def db_url(self) -> str:
        return f"http://127.0.0.1:{self.db_port}"

    def start(self, *extra: str, timeout: float = 90.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.data_dir / "up.out", "a")  # noqa: SIM115 - kept open for the child's lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tidepool", "up", "--data-dir", str(self.data_dir), "--brokers", self.brokers,
             "--db-url", self.db_url, "--no-status", *extra],
            stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "tidepool is up" in (self.data_dir / "up.out").read_text():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"tidepool up exited early:\n{(self.data_dir / 'up.out').read_text()}")
            time.sleep(0.2)
        raise AssertionError(f"tidepool up not ready in {timeout}s:\n{(self.data_dir / 'up.out').read_text()}")

    def pid(self, part: str) -> int:
        return int((self.data_dir / "run" / f"{part}.pid").read_text())

    def kill(self, part: str) -> int:
        pid = self.pid(part)
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_everything(self) -> None:
        """SIGKILL the supervisor and every part at once: the power-cut case."""
        assert self.process is not None
        pids = [self.process.pid]
        for pid_file in (self.data_dir / "run").glob("*.pid"):
            pids.append(int(pid_file.read_text()))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError("tidepool up did not stop within the timeout") from None
        return self.process.returncode

    def sql(self, statement: str, database: str = "public") -> str:
        request = urllib.request.Request(
            f"{self.db_url}/api/v1/sql?db={database}",
            data=statement.encode(),
            method="POST",
            headers={"Authorization": "Basic " + base64.b64encode(b"root:").decode(), "Accept": "text/csv"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return str(response.read().decode())

    def count(self, table: str = "kafka_consumer") -> int:
        try:
            return int(self.sql(f"SELECT count(*) FROM {table}").strip().splitlines()[-1])
        except (urllib.error.HTTPError, urllib.error.URLError, OSError, ValueError, IndexError):
            return -1

    def wait_count(self, expected: int, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            seen = self.count()
            if seen >= expected:
                return seen
            time.sleep(0.5)
        return seen


def new_pipeline(tmp_path: Path) -> Pipeline:
    return Pipeline(tmp_path / "data", free_port(), free_port())
