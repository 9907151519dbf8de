"""Apache Kafka 4.x, KRaft single node from the Maven Central jars, via the interop tests' `ApacheKafka` helper.

The helper (tests/interop/apache_kafka.py) fetches the jars once and starts the broker; this module only adapts it
to `ServerProcess`. One difference on purpose: the test helper runs the JVM with `-XX:TieredStopAtLevel=1` (C1
only, for a fast start); a benchmark must not handicap Kafka that way, so the broker here gets the full JIT and a
1 GiB heap, and G1 as Kafka's own start script uses instead of the helper's serial collector.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.peers.base import PeerUnavailable, ServerProcess, kafka_answers


def _apache_kafka_module():  # type: ignore[no-untyped-def]
    try:
        import pytest
        from tests.interop import apache_kafka
    except ImportError as exc:
        raise PeerUnavailable(f"Apache Kafka helper not importable (run from the repo root): {exc}") from exc
    return apache_kafka, pytest.skip.Exception


def server_java_command(test_command: list[str]) -> list[str]:
    """The test helper's JVM command for the broker, with the full JIT, G1 (as kafka-server-start.sh) and 1 GiB heap."""
    swaps = {"-XX:+UseSerialGC": "-XX:+UseG1GC"}
    argv = [swaps.get(arg, arg) for arg in test_command if arg != "-XX:TieredStopAtLevel=1"]
    return ["-Xmx1g" if arg.startswith("-Xmx") else arg for arg in argv]


class ApacheKafkaPeer(ServerProcess):
    name = "apache-kafka"

    def __init__(self, work_dir: Path | None = None) -> None:
        super().__init__(work_dir)
        self._module, skipped = _apache_kafka_module()
        try:
            self._module.kafka_jars()
        except skipped as exc:
            raise PeerUnavailable(str(exc)) from exc
        self._broker = self._module.ApacheKafka(self.data_dir)
        self.log_path = self._broker.log_path

    @property
    def bootstrap(self) -> str:
        return str(self._broker.bootstrap)

    def argv(self) -> Sequence[str]:
        return []  # the helper builds and runs the command itself (start() below)

    def ready(self) -> bool:
        return kafka_answers(self.bootstrap)

    def start(self, timeout: float = 120.0) -> ApacheKafkaPeer:
        module = self._module
        test_java_command = module.java_command

        def java_command(main_class: str, args: Sequence[str], heap: str = "256m") -> list[str]:
            argv = test_java_command(main_class, args, heap=heap)
            return server_java_command(argv) if main_class == "kafka.Kafka" else argv

        self.data_dir.mkdir(parents=True, exist_ok=True)
        module.java_command = java_command
        try:
            self._broker.start(timeout=timeout)
        finally:
            module.java_command = test_java_command
        self.proc = self._broker.proc
        return self

    def version(self) -> str:
        return f"{self._module.KAFKA_VERSION} (KRaft, single node)"
