"""inputs.kafka_consumer — a consumer-group member that parses each message into metrics (librdkafka).

Options (Telegraf's defaults):
  brokers                   ["localhost:9092"]
  topics, topic_regexps     topics to subscribe to; regexps as Go/RE2-style patterns matched against topic names
  consumer_group            "telegraf_metrics_consumers"
  offset                    oldest | newest: where a group without committed offsets starts (default oldest)
  balance_strategy          range | roundrobin | sticky (librdkafka's cooperative-sticky)
  max_message_len           bytes; longer messages are logged, counted and committed without parsing (0: no limit)
  max_undelivered_messages  messages read but not yet written by every output; at the limit the consumer pauses
  topic_tag                 tag name that receives the topic
  msg_headers_as_tags       header names whose values become tags
  msg_header_as_metric_name header whose value renames the message's metrics
  timestamp_source          metric (parser's time) | inner | outer (both: the Kafka message timestamp)
  client_id                 "Telegraf"
  consumer_fetch_default, consumer_fetch_min, consumer_fetch_max_wait   librdkafka fetch sizes / wait
  enable_tls, tls_ca, tls_cert, tls_key, insecure_skip_verify, sasl_mechanism, sasl_username, sasl_password,
  sasl_access_token         passed to librdkafka (security.protocol, ssl.*, sasl.*)
  data_format and its parser options (json, influx, value)
Accepted, not acted on (sarama-only): kafka_version, max_processing_time, compression_codec, keep_alive_period,
sasl_version, sasl_extensions, sasl_gssapi_*, sasl_aws_msk_iam_*, metadata_*,
resolve_canonical_bootstrap_servers_only.

Delivery: messages are read in polls; all metrics of one poll are one tracking group, and the offsets of the poll
are stored (then committed by librdkafka every second and on close) only when every output has accepted every
metric. Groups complete in order, so a stored offset never passes an undelivered message.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.agent.plugins import Accumulator, Parser
from tidepool.agent.plugins.inputs import INPUTS, PARSER_INPUTS
from tidepool.lineproto import Metric
from tidepool.logs import get_logger

log = get_logger("agent")

_ACCEPTED = (
    "kafka_version", "max_processing_time", "compression_codec", "keep_alive_period", "sasl_version",
    "sasl_extensions", "sasl_gssapi_service_name", "sasl_gssapi_auth_type", "sasl_gssapi_kerberos_config_path",
    "sasl_gssapi_key_tab_path", "sasl_gssapi_realm", "sasl_gssapi_disable_pafxfast", "sasl_aws_msk_iam_role",
    "sasl_aws_msk_iam_region", "metadata_full", "metadata_retry_max", "metadata_retry_type",
    "metadata_retry_backoff", "metadata_retry_max_duration", "resolve_canonical_bootstrap_servers_only",
    "tls_key_pwd", "tls_server_name", "tls_min_version", "version", "startup_error_behavior", "connection_strategy",
)  # fmt: skip
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")
_STRATEGIES = {"range": "range", "roundrobin": "roundrobin", "sticky": "cooperative-sticky"}
_OFFSETS = {"": "earliest", "oldest": "earliest", "newest": "latest"}
POLL_BATCH = 2000
ERROR_LOG_INTERVAL = 10.0
PAUSE_AFTER = 5.0  # seconds without room before the partitions are paused


@dataclass
class KafkaSettings:
    brokers: list[str]
    topics: list[str]
    topic_regexps: list[str]
    consumer_group: str = "telegraf_metrics_consumers"
    offset: str = "earliest"
    balance_strategy: str = "range"
    max_message_len: int = 0
    max_undelivered_messages: int = 1000
    topic_tag: str = ""
    headers_as_tags: list[str] = field(default_factory=list)
    header_as_metric_name: str = ""
    timestamp_source: str = "metric"
    client_id: str = "Telegraf"
    client_config: dict[str, Any] = field(default_factory=dict)


class KafkaConsumerInput:
    def __init__(self, settings: KafkaSettings, parser: Parser, plugin_id: str = "inputs.kafka_consumer") -> None:
        self.settings = settings
        self.parser = parser
        self.plugin_id = plugin_id
        self._deliveries: queue.SimpleQueue[tuple[dict[tuple[str, int], int], int]] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._acc: Accumulator | None = None
        self._undelivered = 0
        self._paused = False
        self._error_logged: dict[int, float] = {}

    def client_config(self) -> dict[str, Any]:
        s = self.settings
        config: dict[str, Any] = {
            "bootstrap.servers": ",".join(s.brokers),
            "group.id": s.consumer_group,
            "client.id": s.client_id,
            "auto.offset.reset": s.offset,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "enable.auto.offset.store": False,
            "partition.assignment.strategy": s.balance_strategy,
            # sarama's (Telegraf's client) group timings; librdkafka's 45 s session would keep the partitions of a
            # crashed agent unassigned for that long
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 3000,
            "error_cb": self._on_error,
        }
        config.update(s.client_config)
        return config

    def _on_error(self, error: Any) -> None:
        # librdkafka retries by itself and reports each failed attempt; say each kind of failure every 10 s only
        now = time.monotonic()
        key = error.code()
        if now - self._error_logged.get(key, -1e9) >= ERROR_LOG_INTERVAL:
            self._error_logged[key] = now
            log.warning("%s: kafka: %s", self.plugin_id, error.str())

    def start(self, acc: Accumulator) -> None:
        from confluent_kafka import Consumer, KafkaException

        self._acc = acc
        # librdkafka's own log lines repeat what error_cb reports; they are shown with --debug only
        client_log = get_logger("agent.librdkafka")
        if not log.isEnabledFor(logging.DEBUG):
            client_log.setLevel(logging.CRITICAL)
        try:
            self._consumer = Consumer(self.client_config(), logger=client_log)
        except KafkaException as exc:
            raise ConfigError(f"plugin {self.plugin_id}: {exc.args[0].str()}") from None
        subscriptions = list(self.settings.topics) + [
            r if r.startswith("^") else "^" + r for r in self.settings.topic_regexps
        ]
        self._consumer.subscribe(subscriptions, on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._thread = threading.Thread(target=self._run, name=f"{self.plugin_id}-consumer", daemon=True)
        self._thread.start()
        log.info(
            "%s: consuming %s from %s as group %r",
            self.plugin_id,
            ", ".join(subscriptions),
            ",".join(self.settings.brokers),
            self.settings.consumer_group,
        )

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        log.info("%s: assigned %s", self.plugin_id, ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        if self._paused and partitions:
            consumer.pause(partitions)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._drain_deliveries()  # store what was delivered, so the revocation commits it
        log.info("%s: revoked %s", self.plugin_id, ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    def _drain_deliveries(self) -> None:
        while True:
            try:
                item = self._deliveries.get_nowait()
            except queue.Empty:
                return
            self._apply_delivery(*item)

    def _apply_delivery(self, offsets: dict[tuple[str, int], int], count: int) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        self._undelivered -= count
        if offsets:
            stored = [TopicPartition(t, p, o + 1) for (t, p), o in offsets.items()]
            try:
                self._consumer.store_offsets(offsets=stored)
            except KafkaException as exc:  # partition revoked since: its next owner re-reads these
                log.debug("%s: could not store offsets: %s", self.plugin_id, exc)

    def _wait_for_delivery(self, timeout: float) -> None:
        try:
            item = self._deliveries.get(timeout=timeout)
        except queue.Empty:
            return
        self._apply_delivery(*item)
        self._drain_deliveries()

    def _set_paused(self, paused: bool) -> None:
        if paused == self._paused:
            return
        self._paused = paused
        assignment = self._consumer.assignment()
        if assignment:
            (self._consumer.pause if paused else self._consumer.resume)(assignment)
        log.debug("%s: %s", self.plugin_id, "paused (back-pressure)" if paused else "resumed")

    def _run(self) -> None:
        acc = self._acc
        assert acc is not None
        limit = max(1, self.settings.max_undelivered_messages)
        next_lag = 0.0
        blocked_since = 0.0
        try:
            while not self._stopping.is_set():
                self._drain_deliveries()
                now = time.monotonic()
                if now >= next_lag:
                    next_lag = now + 1.0
                    acc.set_gauge("lag", self._lag())
                    acc.set_gauge("undelivered_messages", self._undelivered)
                if self._undelivered >= limit or not acc.has_room():
                    # Wait for deliveries without polling, so librdkafka keeps its prefetched messages; only a
                    # long stall (an output down) pauses the partitions and polls, to stay in the group.
                    blocked_since = blocked_since or now
                    if now - blocked_since < PAUSE_AFTER:
                        self._wait_for_delivery(0.05)
                        continue
                    self._set_paused(True)
                else:
                    blocked_since = 0.0
                    self._set_paused(False)
                room = limit - self._undelivered
                try:
                    messages = self._consumer.consume(num_messages=max(1, min(POLL_BATCH, room)), timeout=0.05)
                except Exception as exc:  # as Telegraf: log `consume: …`, wait 5 s, go on
                    log.error("%s: consume: %s", self.plugin_id, exc)
                    self._stopping.wait(5.0)
                    continue
                if messages:
                    self._handle(messages, acc)
        finally:
            self._drain_deliveries()
            try:
                self._consumer.close()  # commits the stored offsets
            except Exception as exc:
                log.warning("%s: closing consumer: %s", self.plugin_id, exc)

    def _lag(self) -> int:
        total = 0
        try:
            positions = self._consumer.position(self._consumer.assignment())
        except Exception:
            return 0
        for tp in positions:
            try:
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            except Exception:
                continue
            if high >= 0 and tp.offset >= 0:
                total += max(0, high - tp.offset)
        return total

    def _handle(self, messages: list[Any], acc: Accumulator) -> None:
        s = self.settings
        metrics: list[Metric] = []
        offsets: dict[tuple[str, int], int] = {}
        parse = self.parser.parse
        max_len = s.max_message_len
        decorate = bool(s.topic_tag or s.headers_as_tags or s.header_as_metric_name or s.timestamp_source != "metric")
        received = parse_errors = 0
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    log.error("%s: consume: %s", self.plugin_id, error)
                else:
                    log.warning("%s: consume: %s", self.plugin_id, error)
                continue
            received += 1
            offsets[(message.topic(), message.partition())] = message.offset()
            value = message.value() or b""
            if max_len and len(value) > max_len:
                parse_errors += 1
                log.error(
                    "%s: message exceeds max_message_len (actual %d, max %d) at %s[%d]@%d",
                    self.plugin_id,
                    len(value),
                    max_len,
                    message.topic(),
                    message.partition(),
                    message.offset(),
                )
                continue
            try:
                parsed = parse(value)
            except Exception as exc:  # ParseError, or a parser bug: handled alike, so one message cannot stall us
                parse_errors += 1
                log.error(
                    "%s: error parsing message %s[%d]@%d: %s; message: %r",
                    self.plugin_id,
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    exc,
                    value[:512],
                )
                continue
            if decorate and parsed:
                self._decorate(message, parsed)
            metrics.extend(parsed)
        self._undelivered += len(messages)
        acc.count("messages_received", received)
        acc.count("parse_errors", parse_errors)
        acc.count("messages_parsed", received - parse_errors)
        count = len(messages)
        deliveries = self._deliveries
        acc.add_group(metrics, lambda: deliveries.put((offsets, count)))

    def _decorate(self, message: Any, metrics: list[Metric]) -> None:
        s = self.settings
        tags: dict[str, str] = {}
        rename = ""
        headers = message.headers() or []
        for key, raw in headers:
            value = (raw or b"").decode("utf-8", "replace")
            if key == s.header_as_metric_name:
                rename = value
            elif key in s.headers_as_tags:
                tags[key] = value
        if s.topic_tag:
            tags[s.topic_tag] = message.topic()
        stamp = None
        if s.timestamp_source != "metric":
            kind, millis = message.timestamp()
            if kind != 0:  # TIMESTAMP_NOT_AVAILABLE
                stamp = millis * 1_000_000
        for metric in metrics:
            metric.tags.update(tags)
            if rename:
                metric.name = rename
            if stamp is not None:
                metric.time = stamp


def _security_config(opts: PluginOptions) -> dict[str, Any]:
    config: dict[str, Any] = {}
    tls = opts.boolean("enable_tls", False) or any(opts.string(k) for k in ("tls_ca", "tls_cert", "tls_key"))
    mechanism = opts.string("sasl_mechanism")
    username = opts.string("sasl_username")
    password = opts.string("sasl_password")
    token = opts.string("sasl_access_token")
    sasl = bool(mechanism or username)
    if tls or sasl:
        config["security.protocol"] = ("SASL_SSL" if tls else "SASL_PLAINTEXT") if sasl else "SSL"
    for option, key in (
        ("tls_ca", "ssl.ca.location"),
        ("tls_cert", "ssl.certificate.location"),
        ("tls_key", "ssl.key.location"),
    ):
        if opts.string(option):
            config[key] = opts.string(option)
    if opts.boolean("insecure_skip_verify", False):
        config["enable.ssl.certificate.verification"] = False
    if sasl:
        if (mechanism or "PLAIN").upper() not in _SASL_MECHANISMS:
            raise ConfigError(
                f"plugin {opts.plugin}: unsupported sasl_mechanism {mechanism!r} "
                f"(tidepool supports {', '.join(_SASL_MECHANISMS)})"
            )
        config["sasl.mechanism"] = (mechanism or "PLAIN").upper()
        if username:
            config["sasl.username"] = username
            config["sasl.password"] = password
        if token:
            config["sasl.oauthbearer.config"] = f"principal={username or 'telegraf'} token={token}"
    return config


@INPUTS.add("kafka_consumer")
def make_kafka_consumer(opts: PluginOptions, parser: Parser | None, plugin_id: str) -> KafkaConsumerInput:
    assert parser is not None
    offset = opts.string("offset", "oldest")
    if offset.lower() not in _OFFSETS:
        raise ConfigError(f'invalid offset "{offset}"')
    strategy = opts.string("balance_strategy", "range")
    if strategy.lower() not in _STRATEGIES:
        raise ConfigError(f'invalid balance strategy "{strategy}"')
    timestamp_source = opts.string("timestamp_source", "metric")
    if timestamp_source not in ("metric", "inner", "outer"):
        raise ConfigError(f'invalid timestamp source "{timestamp_source}"')
    client: dict[str, Any] = _security_config(opts)
    if "consumer_fetch_default" in opts:
        client["max.partition.fetch.bytes"] = opts.size("consumer_fetch_default")
    if "consumer_fetch_min" in opts:
        client["fetch.min.bytes"] = max(1, opts.size("consumer_fetch_min"))
    if "consumer_fetch_max_wait" in opts:
        client["fetch.wait.max.ms"] = int(opts.duration("consumer_fetch_max_wait") * 1000)
    opts.accept(*_ACCEPTED)
    settings = KafkaSettings(
        brokers=opts.strings("brokers", ["localhost:9092"]),
        topics=opts.strings("topics"),
        topic_regexps=opts.strings("topic_regexps"),
        consumer_group=opts.string("consumer_group", "telegraf_metrics_consumers"),
        offset=_OFFSETS[offset.lower()],
        balance_strategy=_STRATEGIES[strategy.lower()],
        max_message_len=opts.integer("max_message_len", 0),
        max_undelivered_messages=opts.integer("max_undelivered_messages", 1000),
        topic_tag=opts.string("topic_tag"),
        headers_as_tags=opts.strings("msg_headers_as_tags"),
        header_as_metric_name=opts.string("msg_header_as_metric_name"),
        timestamp_source=timestamp_source,
        client_id=opts.string("client_id", "Telegraf"),
        client_config=client,
    )
    if not settings.topics and not settings.topic_regexps:
        raise ConfigError(f"plugin {plugin_id}: no topics or topic_regexps given")
    return KafkaConsumerInput(settings, parser, plugin_id)


PARSER_INPUTS.add("kafka_consumer")
