"""`tidepool agent` command line as Telegraf's: --test, --once, filters, ${VAR}, unknown options, SIGHUP, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.test_agent_kafka import committed, produce, sensor_payloads
from tidepool.broker.process import BrokerProcess

pytestmark = pytest.mark.timeout(120)

FILE_CONFIG = """[agent]
  flush_interval = "100ms"
[[inputs.kafka_consumer]]
  brokers = ["${BROKER}"]
  topics = ["${TOPIC}"]
  consumer_group = "${GROUP:-cli-tests}"
  data_format = "json"
[[outputs.file]]
  files = ["${OUT}"]
"""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    with BrokerProcess(tmp_path_factory.mktemp("broker") / "data", free_port(), "--partitions", "1") as running:
        yield running


def _agent(args: list[str], env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidepool", "agent", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        **kw,
    )  # type: ignore[call-overload]


def _until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_test_mode_prints_sorted_lines_and_commits_nothing(tmp_path: Path, broker: BrokerProcess) -> None:
    produce(broker.bootstrap, [b'{"visibility": 3, "pressure": 1, "temperature": 2}'] * 3, topic="cli-test")
    config = tmp_path / "a.conf"
    config.write_text(FILE_CONFIG)
    env = {"BROKER": broker.bootstrap, "TOPIC": "cli-test", "OUT": str(tmp_path / "never.lp"), "GROUP": "t1"}
    result = _agent(["--config", str(config), "--test", "--test-wait", "6"], env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert line.startswith("> kafka_consumer,host=")
        assert line.split(" ")[2] == "pressure=1,temperature=2,visibility=3"
    assert not (tmp_path / "never.lp").exists()
    assert committed(broker.bootstrap, group="t1", topic="cli-test") < 0  # nothing committed


def test_once_flushes_commits_and_exits(tmp_path: Path, broker: BrokerProcess) -> None:
    produce(broker.bootstrap, sensor_payloads(50), topic="cli-once")
    config = tmp_path / "a.conf"
    config.write_text(FILE_CONFIG)
    out = tmp_path / "out.lp"
    env = {"BROKER": broker.bootstrap, "TOPIC": "cli-once", "OUT": str(out), "GROUP": "t2"}
    result = _agent(["--config", str(config), "--once", "--test-wait", "6"], env)
    assert result.returncode == 0, result.stderr
    assert len(_lines(out)) == 50
    assert committed(broker.bootstrap, group="t2", topic="cli-once") == 50


def test_output_filter_runs_only_the_named_outputs(tmp_path: Path, broker: BrokerProcess) -> None:
    produce(broker.bootstrap, sensor_payloads(5), topic="cli-filter")
    config = tmp_path / "a.conf"
    config.write_text(FILE_CONFIG + '[[outputs.http]]\n  url = "http://127.0.0.1:9/nowhere"\n')
    out = tmp_path / "out.lp"
    env = {"BROKER": broker.bootstrap, "TOPIC": "cli-filter", "OUT": str(out), "GROUP": "t3"}
    result = _agent(["--config", str(config), "--once", "--test-wait", "6", "--output-filter", "file"], env)
    assert result.returncode == 0, result.stderr
    assert len(_lines(out)) == 5


def test_unknown_option_and_missing_required_variable_stop_at_start(tmp_path: Path) -> None:
    config = tmp_path / "a.conf"
    config.write_text(FILE_CONFIG.replace('data_format = "json"', 'data_format = "json"\n  brokerz = ["x"]'))
    result = _agent(["--config", str(config)], {"BROKER": "127.0.0.1:9", "TOPIC": "t", "OUT": "stdout"})
    assert result.returncode == 1
    assert 'configuration specified the fields ["brokerz"], but they were not used' in result.stderr
    assert "Traceback" not in result.stderr
    config.write_text(FILE_CONFIG.replace("${TOPIC}", "${TOPIC:?set TOPIC to the Kafka topic}"))
    result = _agent(["--config", str(config)], {"BROKER": "127.0.0.1:9", "OUT": "stdout"})
    assert result.returncode == 1
    assert "required variable TOPIC is missing a value: set TOPIC to the Kafka topic" in result.stderr


def test_sighup_reloads_the_config_and_a_bad_reload_keeps_the_running_one(
    tmp_path: Path, broker: BrokerProcess
) -> None:
    config = tmp_path / "a.conf"
    first, second = tmp_path / "first.lp", tmp_path / "second.lp"
    config.write_text(FILE_CONFIG.replace("${OUT}", str(first)))
    env = {"BROKER": broker.bootstrap, "TOPIC": "cli-hup", "GROUP": "t4"}
    log = tmp_path / "agent.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tidepool", "agent", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    try:
        produce(broker.bootstrap, sensor_payloads(10), topic="cli-hup")
        _until(lambda: len(_lines(first)) == 10, 30, "first output")
        config.write_text(FILE_CONFIG.replace("${OUT}", str(second)))
        proc.send_signal(signal.SIGHUP)
        _until(lambda: "reloading config" in log.read_text(), 30, "reload")
        time.sleep(2)
        produce(broker.bootstrap, sensor_payloads(7), topic="cli-hup")
        _until(lambda: len(_lines(second)) == 7, 30, "second output after reload")
        config.write_text("[[inputs.kafka_consumer]]\n  bogus = 1\n")
        proc.send_signal(signal.SIGHUP)
        _until(lambda: "reloading config failed, keeping the running one" in log.read_text(), 30, "bad reload")
        produce(broker.bootstrap, sensor_payloads(3), topic="cli-hup")
        _until(lambda: len(_lines(second)) == 10, 30, "still running after the bad reload")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert len(_lines(first)) == 10
    assert committed(broker.bootstrap, group="t4", topic="cli-hup") == 20


def test_watch_config_reloads_on_change_and_pidfile_lives_while_running(tmp_path: Path, broker: BrokerProcess) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic("cli-watch", 1)]).values():
        future.result(30)
    config = tmp_path / "a.conf"
    first, second, pidfile = tmp_path / "first.lp", tmp_path / "second.lp", tmp_path / "agent.pid"
    config.write_text(FILE_CONFIG.replace("${OUT}", str(first)))
    env = {"BROKER": broker.bootstrap, "TOPIC": "cli-watch", "GROUP": "t5"}
    log = tmp_path / "agent.log"
    argv = [sys.executable, "-m", "tidepool", "agent", "--config", str(config), "--watch-config", "poll"]
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [*argv, "--pidfile", str(pidfile)], stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    try:
        _until(lambda: "assigned cli-watch" in log.read_text(), 30, "assignment")
        assert pidfile.read_text().strip() == str(proc.pid)
        config.write_text(FILE_CONFIG.replace("${OUT}", str(second)))
        _until(lambda: "config changed on disk, reloading" in log.read_text(), 30, "reload on change")
        _until(lambda: log.read_text().count("assigned cli-watch") == 2, 30, "re-assignment")
        produce(broker.bootstrap, sensor_payloads(4), topic="cli-watch")
        _until(lambda: len(_lines(second)) == 4, 30, "second output")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert _lines(first) == []
    assert not pidfile.exists()


def test_once_with_a_failing_output_exits_1_and_commits_nothing(tmp_path: Path, broker: BrokerProcess) -> None:
    produce(broker.bootstrap, sensor_payloads(3), topic="cli-once-fail")
    config = tmp_path / "a.conf"
    config.write_text(
        FILE_CONFIG.split("[[outputs.file]]")[0] + '[[outputs.http]]\n  url = "http://127.0.0.1:9/api/v1/write"\n'
    )
    env = {"BROKER": broker.bootstrap, "TOPIC": "cli-once-fail", "GROUP": "t6"}
    result = _agent(["--config", str(config), "--once", "--test-wait", "3"], env)
    assert result.returncode == 1
    assert "Error writing to outputs.http" in result.stderr
    assert "error: some metrics could not be written" in result.stderr
    assert committed(broker.bootstrap, group="t6", topic="cli-once-fail") < 0
