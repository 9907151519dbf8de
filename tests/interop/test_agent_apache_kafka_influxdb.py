"""The agent between real third-party programs: Apache Kafka 4.x (Maven jars, KRaft) → agent → InfluxDB 1.x.

InfluxDB comes from Debian's `influxdb` package (`apt-get install -y influxdb`); the test skips if `influxd` is
missing. A second output (outputs.file) records the exact bytes the agent sent, which must be what Telegraf's influx
serializer writes for these metrics (telegraf.md §3: tags sorted, floats shortest with no exponent and no `i`).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.test_agent_kafka import AgentProcess, committed, produce
from tests.interop.apache_kafka import apache_kafka  # noqa: F401  (module fixture)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

CONFIG = """[agent]
  flush_interval = "200ms"
[[inputs.kafka_consumer]]
  brokers = ["{broker}"]
  topics = ["oceanic"]
  data_format = "json"

[[outputs.http]]
  url = "http://127.0.0.1:{influx}/write?db=telegraf"
  timeout = "5s"
  method = "POST"
  username = "root"
  password = ""
  data_format = "influx"
  use_batch_format = true
  content_encoding = "gzip"
  idle_conn_timeout = 10

[[outputs.file]]
  files = ["{copy}"]
"""


class InfluxDB:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> InfluxDB:
        config = self.directory / "influxdb.conf"
        config.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{self.directory}/meta"\n'
            f'[data]\n  dir = "{self.directory}/data"\n  wal-dir = "{self.directory}/wal"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n"
        )
        with open(self.directory / "influxd.log", "ab") as log:
            self.proc = subprocess.Popen(["influxd", "-config", str(config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.directory / "influxd.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("influxd did not start")

    def query(self, q: str, db: str = "telegraf") -> dict[str, object]:
        url = f"http://127.0.0.1:{self.port}/query?" + urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
        data = urllib.parse.urlencode({"q": q}).encode() if q.upper().startswith("CREATE") else None
        with urllib.request.urlopen(url if data is None else url.split("&q=")[0], data=data, timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture
def influxdb(tmp_path: Path) -> Iterator[InfluxDB]:
    if shutil.which("influxd") is None:
        pytest.skip("InfluxDB 1.x interop needs `influxd` (apt-get install -y influxdb)")
    server = InfluxDB(tmp_path).start()
    server.query("CREATE DATABASE telegraf")
    yield server
    server.stop()


def _expected_line(host: str, doc: dict[str, float], ts_ns: int) -> bytes:
    """Telegraf's influx serializer for the JSON parser's metric, written out by the documented rules."""

    def number(v: float) -> str:
        text = repr(float(v))
        return text[:-2] if text.endswith(".0") else text

    fields = ",".join(f"{k}={number(v)}" for k, v in doc.items())
    return f"kafka_consumer,host={host} {fields} {ts_ns}".encode()


def test_apache_kafka_to_influxdb_with_telegrafs_bytes(
    tmp_path: Path,
    apache_kafka: object,  # noqa: F811  (the fixture imported above)
    influxdb: InfluxDB,
) -> None:
    bootstrap = apache_kafka.bootstrap  # type: ignore[attr-defined]
    docs = [{"pressure": i % 10 + 0.5, "temperature": float(i), "visibility": 100 - i / 4} for i in range(200)]
    produce(bootstrap, [json.dumps(d).encode() for d in docs])
    copy = tmp_path / "sent.lp"
    config = CONFIG.format(broker=bootstrap, influx=influxdb.port, copy=copy)
    agent = AgentProcess(tmp_path, config).start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            result = influxdb.query("SELECT count(pressure) FROM kafka_consumer")
            series = result["results"][0].get("series")  # type: ignore[index]
            if series and series[0]["values"][0][1] == len(docs):
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"InfluxDB has {result}")
        assert agent.stop() == 0
    finally:
        agent.kill()
    assert committed(bootstrap) == len(docs)
    sent = copy.read_bytes().splitlines()
    host = socket.gethostname()
    timestamps = [int(line.rsplit(b" ", 1)[1]) for line in sent]
    assert sent == [_expected_line(host, d, ts) for d, ts in zip(docs, timestamps, strict=True)]
    assert len(set(timestamps)) == len(docs)
    rows = influxdb.query("SELECT * FROM kafka_consumer")["results"][0]["series"][0]  # type: ignore[index]
    assert rows["columns"] == ["time", "host", "pressure", "temperature", "visibility"]
    assert [row[1:] for row in rows["values"]] == [
        [host, d["pressure"], d["temperature"], d["visibility"]] for d in docs
    ]
    assert [row[0] for row in rows["values"]] == timestamps
    field_types = influxdb.query("SHOW FIELD KEYS FROM kafka_consumer")["results"][0]["series"][0]["values"]  # type: ignore[index]
    assert field_types == [["pressure", "float"], ["temperature", "float"], ["visibility", "float"]]
    assert re.search(r"inputs\.kafka_consumer: assigned oceanic\[0\]", agent.log_text())
