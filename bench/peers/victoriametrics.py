"""VictoriaMetrics single-node (`apt-get install victoria-metrics`), run by hand on a free loopback port.

It takes InfluxDB line protocol on `/write` and stores `measurement_field{tags}` series (`cpu_usage_user{…}`).
Retention is set to 100 years because the TSBS data set is dated 2016 and the default (1 month) would drop it.
"""

from __future__ import annotations

import re
import shutil
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from bench.peers.base import PeerUnavailable, ServerProcess, debian_version, free_port
from bench.peers.http import answers, request
from bench.peers.influxdb import wait_for_stable_size


class VictoriaMetrics(ServerProcess):
    name = "victoriametrics"

    def __init__(self, work_dir: Path | None = None) -> None:
        super().__init__(work_dir)
        binary = shutil.which("victoria-metrics")
        if binary is None:
            raise PeerUnavailable("victoria-metrics not found (sudo bench/peers/install.sh)")
        self.binary = binary
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> Sequence[str]:
        return [
            self.binary,
            f"-storageDataPath={self.data_dir}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            "-loggerLevel=WARN",
        ]

    def ready(self) -> bool:
        return answers(f"{self.url}/health")

    def version(self) -> str:
        body = request(f"{self.url}/metrics").body.decode(errors="replace")
        match = re.search(r'vm_app_version\{[^}]*version="([^"]+)"', body)
        if match:
            return match.group(1)
        return debian_version("victoria-metrics")  # Debian's build leaves the version string empty

    def write_url(self) -> str:
        return f"{self.url}/write"

    def query(self, promql: str, **params: str) -> bytes:
        """An instant query (`time=`) or, with `start`/`end`/`step`, a range query; the rollup cache is bypassed."""
        path = "query_range" if "step" in params else "query"
        args = urllib.parse.urlencode({"query": promql, "nocache": "1", **params})
        result = request(f"{self.url}/api/v1/{path}?{args}")
        if not result.ok:
            raise RuntimeError(f"MetricsQL {promql!r} failed: {result.status} {result.body[:300]!r}")
        return result.body

    def make_searchable(self) -> None:
        """Recent writes sit in an in-memory buffer for up to a second; force them into searchable parts."""
        request(f"{self.url}/internal/force_flush")

    def flush(self, timeout: float = 120.0) -> None:
        """Make recent writes searchable, merge the 2016 partitions, then wait for the data dir to settle."""
        self.make_searchable()
        request(f"{self.url}/internal/force_merge?partition_prefix=2016")
        wait_for_stable_size(self, timeout)
