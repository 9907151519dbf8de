"""Shared fixture: Apache Kafka 4.x from the Maven Central jars — its CLI tools and a real single-node KRaft broker.

Jars are fetched once with Maven (`mvn dependency:copy-dependencies` on a generated pom) into
~/.cache/tidepool-tests/kafka-<version>/libs; later runs reuse them. Needs `java` (17+) and `mvn` on PATH;
without them (or without the network to Maven Central) `kafka_jars()` skips the calling test, saying why.

Use:
    from tests.interop.apache_kafka import run_tool, apache_kafka  # noqa: F401 (apache_kafka is a fixture)

    def test_x(apache_kafka):                 # a running broker; apache_kafka.bootstrap is "127.0.0.1:<port>"
        run_tool("org.apache.kafka.tools.TopicCommand", ["--bootstrap-server", apache_kafka.bootstrap, "--list"])
"""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

KAFKA_VERSION = os.environ.get("TIDEPOOL_TEST_KAFKA_VERSION", "4.1.1")
CACHE = Path(os.environ.get("TIDEPOOL_TEST_CACHE", Path.home() / ".cache" / "tidepool-tests"))

TOPICS = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell"
DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand"
CONFIGS = "kafka.admin.ConfigCommand"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tidepool.tests</groupId><artifactId>apache-kafka-jars</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{v}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>{v}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>2.24.3</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = error
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = STDERR
"""


def kafka_home(version: str = KAFKA_VERSION) -> Path:
    return CACHE / f"kafka-{version}"


def kafka_jars(version: str = KAFKA_VERSION) -> Path:
    """The directory of Apache Kafka's jars, fetched on first use; skips the test if that is impossible.

    Concurrent callers (parallel test runs) wait on a lock file instead of running Maven twice into one directory.
    """
    home = kafka_home(version)
    libs = home / "libs"
    done = home / ".complete"
    if done.exists():
        return libs
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            pytest.skip(f"Apache Kafka interop needs `{tool}` on PATH")
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return libs
        (home / "pom.xml").write_text(_POM.format(v=version))
        (home / "log4j2.properties").write_text(_LOG4J2)
        result = subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={libs}"],
            cwd=home,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-500:]
            pytest.skip(f"cannot fetch Apache Kafka {version} jars with Maven: {output}")
        done.touch()
    return libs


def java_command(main_class: str, args: Sequence[str], heap: str = "256m", version: str = KAFKA_VERSION) -> list[str]:
    libs = kafka_jars(version)
    return [
        "java",
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        f"-Dlog4j2.configurationFile={kafka_home(version) / 'log4j2.properties'}",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def run_tool(
    main_class: str, args: Sequence[str], *, input: str | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run one Apache Kafka CLI tool class (e.g. TOPICS) to completion; stdout and stderr are captured."""
    return subprocess.run(java_command(main_class, args), input=input, capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ApacheKafka:
    """A single-node KRaft Apache Kafka (broker + controller) in `directory`, on free loopback ports."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.controller_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "kafka.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> ApacheKafka:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={self.directory / 'data'}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "",
                ]
            )
        )
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        formatted = run_tool("kafka.tools.StorageTool", ["format", "-t", cluster_id, "-c", str(config)])
        if formatted.returncode != 0:
            raise RuntimeError(f"kafka-storage format failed: {formatted.stderr[-1000:]}")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                java_command("kafka.Kafka", [str(config)], heap="768m"), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Apache Kafka exited with {self.proc.returncode}: {self.log_tail()}")
            if self._ready():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Apache Kafka not ready within {timeout}s: {self.log_tail()}")

    def _ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                pass
            metadata = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0}).list_topics(timeout=2)
            return bool(metadata.brokers)
        except Exception:
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """A running single-node Apache Kafka for the tests of one module."""
    kafka_jars()
    broker = ApacheKafka(tmp_path_factory.mktemp("apache-kafka")).start()
    try:
        yield broker
    finally:
        broker.stop()
