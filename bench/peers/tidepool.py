"""tidepool's own servers as benchmark peers: `python -m tidepool broker` and `python -m tidepool db`."""

from __future__ import annotations

import base64
import functools
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.peers.base import ServerProcess, free_port, kafka_answers
from bench.peers.http import answers, request
from bench.peers.influxdb import wait_for_stable_size

REPO = Path(__file__).resolve().parents[2]
BASIC_ROOT = "Basic " + base64.b64encode(b"root:").decode()


@functools.cache
def tidepool_version() -> str:
    """tidepool's version and the commit of this checkout, marked "+ uncommitted changes" when src/ differs from it.

    Taken once per process, so every row of a run names the same code even if the branch moves meanwhile."""
    import tidepool

    version = getattr(tidepool, "__version__", "unknown")

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return str(version)
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--", "src") else ""
    return f"{version} ({commit}{dirty})"


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
        """Restart: a clean shutdown flushes the memtable to Parquet and drops the WAL (tidepool db has no flush
        request yet); the restarted server then compacts in the background until the data dir settles."""
        self.stop(timeout)
        self.start(timeout)
        wait_for_stable_size(self, timeout)


class TidepoolAgent(ServerProcess):
    """`python -m tidepool agent` with the Telegraf config `tidepool up` writes, pointed at
    `brokers` and the db at `db_url`; ready once its metrics endpoint answers."""

    name = "tidepool-agent"

    def __init__(self, work_dir: Path | None, brokers: str, db_url: str, topic: str = "oceanic") -> None:
        super().__init__(work_dir)
        self.brokers = brokers
        self.db_url = db_url
        self.topic = topic
        self.metrics_port = free_port()
        self.config_path = self.work_dir / "agent.conf"

    def prepare(self) -> None:
        from tidepool.pipeline.up import UpOptions, agent_config_text

        self.config_path.write_text(
            agent_config_text(UpOptions(brokers=self.brokers, db_url=self.db_url, topic=self.topic))
        )

    def argv(self) -> Sequence[str]:
        return [
            sys.executable,
            "-m",
            "tidepool",
            "--log-level=WARNING",
            "agent",
            f"--config={self.config_path}",
            f"--metrics-listen=127.0.0.1:{self.metrics_port}",
        ]

    def ready(self) -> bool:
        return answers(f"http://127.0.0.1:{self.metrics_port}/metrics")

    def version(self) -> str:
        return tidepool_version()
