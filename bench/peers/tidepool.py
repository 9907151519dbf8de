"""tidepool's own servers as benchmark peers: `python -m tidepool broker` and `python -m tidepool db`."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.peers.base import ServerProcess, free_port, kafka_answers
from bench.peers.http import answers, request
from bench.peers.influxdb import wait_for_stable_size

REPO = Path(__file__).resolve().parents[2]
BASIC_ROOT = "Basic " + base64.b64encode(b"root:").decode()


def tidepool_version() -> str:
    import tidepool

    version = getattr(tidepool, "__version__", "unknown")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return f"{version} ({commit})" if commit else str(version)


class TidepoolBroker(ServerProcess):
    name = "tidepool-broker"

    def __init__(self, work_dir: Path | None = None, *extra_args: str) -> None:
        super().__init__(work_dir)
        self.port = free_port()
        self.extra_args = extra_args

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "tidepool",
            "--log-level=WARNING",
            "broker",
            f"--listen={self.bootstrap}",
            f"--data-dir={self.data_dir}",
            *self.extra_args,
        ]

    def ready(self) -> bool:
        return kafka_answers(self.bootstrap)

    def version(self) -> str:
        return tidepool_version()


class TidepoolDb(ServerProcess):
    name = "tidepool-db"
    database = "public"

    def __init__(self, work_dir: Path | None = None, *extra_args: str) -> None:
        super().__init__(work_dir)
        self.port = free_port()
        self.extra_args = extra_args

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "tidepool",
            "--log-level=WARNING",
            "db",
            f"--listen=127.0.0.1:{self.port}",
            f"--data-dir={self.data_dir}",
            *self.extra_args,
        ]

    def ready(self) -> bool:
        return answers(f"{self.url}/api/v1/ping")

    def version(self) -> str:
        return tidepool_version()

    def write_url(self) -> str:
        return f"{self.url}/api/v1/write?db={self.database}"

    def write_headers(self) -> dict[str, str]:
        return {"Authorization": BASIC_ROOT}

    def query(self, sql: str) -> bytes:
        result = request(
            f"{self.url}/api/v1/sql?db={self.database}",
            data=sql.encode(),
            headers={"Authorization": BASIC_ROOT, "Accept": "application/json"},
            method="POST",
        )
        if not result.ok:
            raise RuntimeError(f"SQL {sql!r} failed: {result.status} {result.body[:300]!r}")
        return result.body

    def flush(self, timeout: float = 120.0) -> None:
        """tidepool db flushes its memtable on its own schedule; wait for the data dir to settle."""
        wait_for_stable_size(self, timeout)
