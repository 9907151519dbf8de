"""InfluxDB 1.x (`apt-get install influxdb`): `influxd` run by hand with a generated config, never the service.

Everything (meta, data, WAL) lives in the run's fresh data dir; HTTP and the RPC bind address are free loopback
ports; reporting, monitoring, retention enforcement and continuous queries are off so that nothing but the
benchmark's writes lands on disk. The cache is snapshotted to TSM after 2 s without writes (the default is 10 min)
so that the on-disk size can be measured after a flush.
"""

from __future__ import annotations

import shutil
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from bench.peers.base import PeerUnavailable, ServerProcess, free_ports
from bench.peers.http import answers, request

_CONFIG = """reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{data}/meta"

[data]
  dir = "{data}/data"
  wal-dir = "{data}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "2s"
  compact-full-write-cold-duration = "4s"

[retention]
  enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""


class InfluxDB(ServerProcess):
    name = "influxdb"
    database = "bench"

    def __init__(self, work_dir: Path | None = None) -> None:
        super().__init__(work_dir)
        binary = shutil.which("influxd")
        if binary is None:
            raise PeerUnavailable("influxd not found (sudo bench/peers/install.sh)")
        self.binary = binary
        self.http_port, self.rpc_port = free_ports(2)
        self.config_path = self.work_dir / "influxdb.conf"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def prepare(self) -> None:
        self.config_path.write_text(
            _CONFIG.format(data=self.data_dir, rpc_port=self.rpc_port, http_port=self.http_port)
        )

    def argv(self) -> Sequence[str]:
        return [self.binary, "-config", str(self.config_path)]

    def ready(self) -> bool:
        return answers(f"{self.url}/ping")

    def start(self, timeout: float = 60.0) -> InfluxDB:
        super().start(timeout)
        self.query(f"CREATE DATABASE {self.database}", method="POST")
        return self

    def version(self) -> str:
        return request(f"{self.url}/ping").headers.get("X-Influxdb-Version", "unknown")

    def write_url(self) -> str:
        return f"{self.url}/write?db={self.database}&precision=ns"

    def query(self, influxql: str, method: str = "GET") -> bytes:
        params = urllib.parse.urlencode({"db": self.database, "q": influxql, "epoch": "ns"})
        result = request(f"{self.url}/query?{params}", method=method, data=b"" if method == "POST" else None)
        if not result.ok or b'"error"' in result.body:
            raise RuntimeError(f"InfluxQL {influxql!r} failed: {result.status} {result.body[:300]!r}")
        return result.body

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until the cache is snapshotted (WAL empty or tiny) and the data dir stops changing."""
        wait_for_stable_size(self, timeout)


def wait_for_stable_size(server: ServerProcess, timeout: float, quiet_s: float = 6.0) -> None:
    """Poll the data dir size until it has not changed for `quiet_s` (compactions finished), or `timeout`."""
    deadline = time.monotonic() + timeout
    last = -1
    since = time.monotonic()
    while time.monotonic() < deadline:
        size = server.data_size_bytes()
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)
