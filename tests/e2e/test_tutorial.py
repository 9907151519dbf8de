"""docs/tutorial.md, run: every tidepool command of the page, in order, against real processes.

The page's commands use the tutorial's addresses (localhost:9092, 127.0.0.1:8902); this test runs them on free ports
by rewriting those addresses, and gives the servers a temporary data dir. Nothing else of a command is changed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import REPO, free_port
from tests.tutorial import tutorial_blocks

pytestmark = pytest.mark.slow


class Tutorial:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.kafka = free_port()
        self.http = free_port()
        self.blocks = tutorial_blocks()
        self.servers: list[subprocess.Popen[bytes]] = []
        bin_dir = Path(sys.executable).parent
        self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SENSOR_BOOTSTRAP": self.bootstrap}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka}"

    def rewrite(self, text: str) -> str:
        text = text.replace("localhost:9092", self.bootstrap).replace("127.0.0.1:9092", self.bootstrap)
        return text.replace("127.0.0.1:8902", f"127.0.0.1:{self.http}")

    def run(self, name: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = self.rewrite(self.blocks[name])
        return subprocess.run(
            command, shell=True, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def serve(self, name: str, *extra: str) -> None:
        argv = [*shlex.split(self.rewrite(self.blocks[name])), *extra]
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - open for the server's lifetime
        self.servers.append(subprocess.Popen(argv, cwd=self.workdir, env=self.env, stdout=log, stderr=log))

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@pytest.fixture
def tutorial(tmp_path: Path) -> Iterator[Tutorial]:
    t = Tutorial(tmp_path)
    try:
        yield t
    finally:
        t.stop()


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_every_step_of_the_tutorial_works_as_written(tutorial: Tutorial) -> None:
    import socket

    def port_open(port: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    data = tutorial.workdir / "tidepool-data"
    tutorial.serve("broker", "--listen", tutorial.bootstrap, "--data-dir", str(data / "broker"))
    tutorial.serve("db", "--listen", f"127.0.0.1:{tutorial.http}", "--data-dir", str(data / "db"))
    _wait_for(lambda: port_open(tutorial.kafka) and port_open(tutorial.http), 30, "broker and db to listen")

    created = tutorial.run("create-topic")
    assert created.returncode == 0, created.stderr

    conf = tutorial.workdir / "telegraf.conf"
    conf.write_text(tutorial.rewrite(tutorial.blocks["telegraf-conf"]) + '\n[agent]\n  flush_interval = "200ms"\n')
    assert "[[inputs.kafka_consumer]]" in conf.read_text()
    tutorial.serve("agent")

    script = tutorial.run("producer-script")
    assert script.returncode == 0, script.stderr
    assert script.stdout.count("Sensor data is sent:") == 5

    simulated = tutorial.run("simulate")
    assert simulated.returncode == 0, simulated.stderr
    assert "acknowledged 100" in simulated.stdout

    consumed = tutorial.run("console-consumer")
    assert consumed.returncode == 0, consumed.stderr
    readings = [orjson.loads(line) for line in consumed.stdout.splitlines()]
    assert len(readings) == 5
    assert all(set(r) == {"pressure", "temperature", "visibility"} for r in readings)

    def rows() -> int:
        out = tutorial.run("curl").stdout.strip().splitlines()
        return int(out[-1]) if out and out[-1].isdigit() else -1

    seen: list[int] = []
    try:
        _wait_for(lambda: seen.append(rows()) or seen[-1] == 105, 90, "105 rows in kafka_consumer")
    except AssertionError:
        agent_log = (tutorial.workdir / "agent.log").read_text()[-3000:]
        raise AssertionError(f"rows seen: {seen[-5:]}; agent log tail:\n{agent_log}") from None

    import pexpect

    lines = tutorial.blocks["sql"].splitlines()
    assert lines == ["tidepool sql", "\\c public", "select * from kafka_consumer;", "\\q"]
    env = {**tutorial.env, "TERM": "dumb", "TIDEPOOL_SQL_HISTORY": str(tutorial.workdir / "history")}
    shell = pexpect.spawn(lines[0] + f" --port {tutorial.http}", cwd=str(REPO), env=env, encoding="utf-8",
                          timeout=30, dimensions=(200, 200))  # fmt: skip
    try:
        shell.expect("❯ ")
        shell.sendline(lines[1])
        shell.expect("public ❯ ")
        shell.sendline(lines[2])
        shell.expect(r"\| time\s+\| host\s+\| pressure\s+\| temperature\s+\| visibility\s+\|")
        shell.expect("public ❯ ")
        table = shell.before or ""
        assert len(re.findall(r"^\| \d{4}-\d\d-\d\dT", table, re.M)) == 105
        shell.sendline(lines[3])
        shell.expect(pexpect.EOF)
    finally:
        shell.close()
