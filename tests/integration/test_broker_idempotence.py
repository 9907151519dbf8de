"""An idempotent producer whose connections are cut mid-stream retries without creating duplicates."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tidepool.broker.process import BrokerProcess


class CuttingProxy:
    """A loopback TCP proxy that, on demand, swallows the next response and drops the connection.

    The broker has then handled the request but the client never hears so: a retry must not be stored twice.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_next_response = threading.Event()
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, responses: bool) -> None:
        try:
            while data := source.recv(65536):
                if responses and self.cut_next_response.is_set():
                    self.cut_next_response.clear()
                    self.cuts += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()


@pytest.fixture
def broker_behind_proxy(tmp_path: Path) -> Iterator[tuple[BrokerProcess, CuttingProxy]]:
    port = free_port()
    proxy = CuttingProxy(port)
    # clients must come back through the proxy after Metadata, so the broker advertises the proxy's port
    process = BrokerProcess(tmp_path / "data", port, "--advertised-port", str(proxy.port)).start()
    yield process, proxy
    proxy.close()
    process.stop()


def test_idempotent_confluent_producer_retries_cut_connections_without_duplicates(
    broker_behind_proxy: tuple[BrokerProcess, CuttingProxy],
) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    process, proxy = broker_behind_proxy
    bootstrap = f"127.0.0.1:{proxy.port}"
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 50,
            "log_level": 0,
            "reconnect.backoff.ms": 10,
        }
    )
    delivered: list[tuple[bytes, int]] = []
    failed: list[Any] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            delivered.append((msg.value(), msg.offset()))
        else:
            failed.append(err)

    total = 3000
    for i in range(total):
        producer.produce("idem", value=b"%06d" % i, on_delivery=on_delivery)
        producer.poll(0)
        if i % 500 == 250:
            producer.flush(10)
            proxy.cut_next_response.set()
            time.sleep(0.05)
    assert producer.flush(30) == 0
    assert failed == []
    assert proxy.cuts >= 3
    assert "duplicate batch from producer" in process.log_tail(1000), "a retry really reached the broker"

    consumer = Consumer({"bootstrap.servers": process.bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition("idem", 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    for _ in range(100):
        values.extend(m.value() for m in consumer.consume(5000, 0.2) if m.error() is None)
        if len(values) >= total:
            break
    consumer.close()
    assert values == [b"%06d" % i for i in range(total)], "every message once, in order"
    assert sorted(offset for _, offset in delivered) == list(range(total))
