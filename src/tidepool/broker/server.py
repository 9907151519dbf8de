"""The asyncio broker server: connections → frames → handler table → responses, in request order.

Handler-table contract (shared with `tidepool.broker.groups`):

- The server dispatches by api_key through `table: dict[int, tuple[int, int, Handler]]`, mapping
  api_key → (min_version, max_version, handler). ApiVersions advertises exactly the table's keys and ranges.
- A handler is ``async def handle(header, request) -> response``: `header` is kio's request header entity
  (`correlation_id`, `client_id`, `request_api_version`), `request` is the kio entity of that api_key at the
  request's version and the response must be the kio response entity of the same version (or None for no reply,
  which only Produce with acks=0 uses). A handler may raise `tidepool.broker.handlers.CloseConnection` to close
  the client's connection instead of answering; any other exception is logged and closes it too.
- At startup the server does ``from tidepool.broker.groups.api import register`` (an ImportError means no group
  coordinator) and calls ``register(table, context)``; `context` is a `BrokerContext`: `data_dir`, `node_id`,
  `advertised_host`, `advertised_port`, `topics()`, `topic_partitions(topic)`, `high_watermark(topic, partition)`,
  `log_start_offset(topic, partition)`, and `initial_rebalance_delay_ms` (None unless `tidepool broker` was given
  `--group-initial-rebalance-delay-ms`). If `register` returns an async callable, the server awaits it on shutdown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tidepool.broker.config import BrokerConfig
from tidepool.broker.groups.api import client_host
from tidepool.broker.handlers import BrokerHandlers, CloseConnection
from tidepool.broker.log.manager import LogManager
from tidepool.broker.log.partition import PartitionLog
from tidepool.broker.protocol.codec import Rejection, decode_request, encode_response
from tidepool.broker.protocol.framing import FrameBuffer, FrameTooLarge
from tidepool.logs import get_logger

Handler = Callable[[Any, Any], Awaitable[Any]]
HandlerTable = dict[int, tuple[int, int, Handler]]

log = get_logger("broker")


@dataclass
class BrokerContext:
    """What the group coordinator may know of the broker; read-only views over the log."""

    data_dir: Path
    node_id: int
    advertised_host: str
    advertised_port: int
    logs: LogManager
    # group.initial.rebalance.delay.ms for the coordinator (None: its default); read by attribute name
    initial_rebalance_delay_ms: int | None = None

    def topics(self) -> list[str]:
        return sorted(self.logs.topics)

    def topic_partitions(self, topic: str) -> int | None:
        entry = self.logs.topics.get(topic)
        return None if entry is None else len(entry.partitions)

    def high_watermark(self, topic: str, partition: int) -> int:
        partition_log = self.logs.get(topic, partition)
        return -1 if partition_log is None else partition_log.log_end_offset

    def log_start_offset(self, topic: str, partition: int) -> int:
        partition_log = self.logs.get(topic, partition)
        return -1 if partition_log is None else partition_log.log_start_offset


def _sync_each(logs: list[PartitionLog]) -> None:
    for partition_log in logs:
        partition_log.sync()


def cluster_id(data_dir: Path) -> str:
    """The cluster id kept in `meta.properties`, as Apache Kafka does; created on first start."""
    path = data_dir / "meta.properties"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.partition("=")[2].strip()
    value = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.write_text(f"version=1\ncluster.id={value}\n")
    return value


class BrokerServer:
    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.logs = LogManager(config.data_dir, config.log, log.info)
        self.cluster_id = cluster_id(config.data_dir)
        self.handlers = BrokerHandlers(config, self.logs, self.cluster_id)
        self.table: HandlerTable = self.handlers.table()
        self.context = BrokerContext(
            config.data_dir,
            config.node_id,
            config.public_host,
            config.public_port,
            self.logs,
            config.group_initial_rebalance_delay_ms,
        )
        self._groups_shutdown: Callable[[], Awaitable[Any]] | None = None
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._connections: set[asyncio.Task[Any]] = set()
        self._debug = log.isEnabledFor(logging.DEBUG)

    def _register_groups(self) -> None:
        try:
            from tidepool.broker.groups.api import register
        except ImportError as exc:
            if exc.name in ("tidepool.broker.groups", "tidepool.broker.groups.api"):
                log.info("no group coordinator installed: consumer-group APIs are not advertised")
            else:
                log.error("group coordinator unavailable, consumer-group APIs not advertised: %s", exc)
            return
        shutdown = register(self.table, self.context)
        if callable(shutdown):
            self._groups_shutdown = shutdown
        log.info("group coordinator registered")

    async def start(self) -> None:
        self._register_groups()
        self.handlers.ranges = {key: (lo, hi) for key, (lo, hi, _) in self.table.items()}
        self._server = await asyncio.start_server(self._serve, self.config.host, self.config.port, limit=1 << 20)
        self._tasks.append(asyncio.create_task(self._maintenance()))
        log.info(
            "listening on %s:%d (advertised %s:%d), data in %s, %d topic(s)",
            self.config.host,
            self.config.port,
            self.config.public_host,
            self.config.public_port,
            self.config.data_dir,
            len(self.logs.topics),
        )

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in [*self._tasks, *self._connections]:
            task.cancel()
        for task in [*self._tasks, *self._connections]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._groups_shutdown is not None:
            await self._groups_shutdown()
        self.logs.close()
        log.info("stopped cleanly")

    async def _maintenance(self) -> None:
        """fsync on the interval policy and apply retention; runs for the server's lifetime."""
        interval = self.config.fsync_interval_ms / 1000
        since_retention = 0.0
        while True:
            await asyncio.sleep(interval)
            try:
                logs = [partition_log for _, _, partition_log in self.logs.all_logs()]
                if self.config.fsync == "interval":
                    await asyncio.to_thread(_sync_each, logs)
                else:
                    for partition_log in logs:
                        partition_log.flush_indexes()
                since_retention += interval
                if since_retention * 1000 >= self.config.retention_check_interval_ms:
                    since_retention = 0.0
                    self.logs.apply_retention()
            except Exception as exc:  # e.g. a topic deleted while its files were being synced; try next round
                log.warning("log maintenance failed: %s: %s", type(exc).__name__, exc)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        if peer:  # the group coordinator shows each member's address (`/127.0.0.1`), as Kafka does
            client_host.set(f"/{peer[0]}")
        frames = FrameBuffer(self.config.max_request_bytes)
        idle = self.config.connections_max_idle_ms / 1000
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(1 << 20), idle)
                except TimeoutError:
                    log.info("closing connection from %s: idle for %.0f s", peer, idle)
                    return
                if not data:
                    return
                frames.feed(data)
                while (frame := frames.next_frame()) is not None:
                    if not await self._answer(frame, writer, peer):
                        return
        except FrameTooLarge as exc:
            log.warning("closing connection from %s: %s", peer, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # shutdown: end the connection quietly (Python 3.11's stream callback logs a cancelled handler task)
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, frame: bytes, writer: asyncio.StreamWriter, peer: Any) -> bool:
        """Handle one request frame; False means close the connection."""
        decoded = decode_request(frame, self.handlers.ranges)
        if isinstance(decoded, Rejection):
            if decoded.reply is None:
                log.warning("closing connection from %s: %s", peer, decoded.reason)
                return False
            writer.write(decoded.reply)
            await writer.drain()
            return True
        _, _, handler = self.table[decoded.api_key]
        if self._debug:
            log.debug(
                "%s v%d #%d from %s (%s)",
                type(decoded.body).__name__,
                decoded.api_version,
                decoded.correlation_id,
                decoded.header.client_id,
                peer,
            )
        try:
            response = await handler(decoded.header, decoded.body)
            if response is None:
                return True
            payload = encode_response(decoded.correlation_id, response)
        except CloseConnection as exc:
            log.info("closing connection from %s: %s", peer, exc)
            return False
        except Exception:
            log.exception("api_key %d v%d from %s failed; closing", decoded.api_key, decoded.api_version, peer)
            return False
        writer.write(payload)
        if writer.transport.get_write_buffer_size() > 1 << 20:
            await writer.drain()
        return True
