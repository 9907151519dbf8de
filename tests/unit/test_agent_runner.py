"""Runner + outputs.http against a real aiohttp server on loopback: batching, retries, delivery, headers."""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tidepool.agent.config import AgentSettings
from tidepool.agent.filters import MetricFilter
from tidepool.agent.options import PluginOptions
from tidepool.agent.plugins import Accumulator
from tidepool.agent.plugins.outputs.http import HTTPOutput, make_http_output
from tidepool.agent.plugins.serializers.influx import InfluxSerializer
from tidepool.agent.runner import Agent, BuiltAgent, RunningInput, RunningOutput
from tidepool.lineproto import Metric

pytestmark = pytest.mark.timeout(60)


class Sink:
    """An HTTP endpoint that records each request and answers with the next scripted status (then 204)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script: list[int] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        status = self.script.pop(0) if self.script else 204
        return web.Response(status=status, text="" if status < 300 else "boom\nsecond line")

    def lines(self) -> list[bytes]:
        ok = [body for _h, body in self.requests]
        return [line for body in ok for line in body.splitlines()]


def with_sink(test: Callable[[Sink], Awaitable[None]]) -> Callable[[], None]:
    """Run an async test on a fresh loop with a recording HTTP sink on a free loopback port."""

    async def main() -> None:
        recorder = Sink()
        app = web.Application()
        app.router.add_post("/api/v1/write", recorder.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        recorder.url = f"http://127.0.0.1:{port}/api/v1/write?db=public"
        try:
            await test(recorder)
        finally:
            await runner.cleanup()

    @functools.wraps(test)
    def wrapper() -> None:
        asyncio.run(main())

    wrapper.__signature__ = inspect.Signature()  # type: ignore[attr-defined]
    return wrapper


class ListInput:
    """A test input: hands over prepared groups from a thread and records deliveries."""

    def __init__(self, groups: list[list[Metric]]) -> None:
        self.groups = groups
        self.delivered: list[int] = []

    def start(self, acc: Accumulator) -> None:
        def run() -> None:
            for index, metrics in enumerate(self.groups):
                acc.add_group(metrics, lambda i=index: self.delivered.append(i))  # type: ignore[misc]

        threading.Thread(target=run, daemon=True).start()

    def stop(self) -> None:
        pass


def _metric(i: int) -> Metric:
    return Metric("kafka_consumer", {}, {"pressure": float(i)}, 1_000 + i)


def _agent(output: Any, groups: list[list[Metric]], **kw: Any) -> tuple[Agent, ListInput, RunningOutput]:
    source = ListInput(groups)
    running_output = RunningOutput(
        "outputs.http", output, batch_size=kw.get("batch_size", 1000), buffer_limit=10000,
        flush_interval=kw.get("flush_interval", 0.05), flush_jitter=0.0, metric_filter=kw.get("metric_filter"),
    )  # fmt: skip
    running_input = RunningInput(
        "inputs.test", source, filter=kw.get("input_filter"), tags=kw.get("tags", {}),
        name_override=kw.get("name_override", ""), name_prefix=kw.get("name_prefix", ""),
    )  # fmt: skip
    built = BuiltAgent(AgentSettings(), {"host": "buoy"}, [running_input], [running_output])
    return Agent(built), source, running_output


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@with_sink
async def test_batches_are_delivered_in_order_with_host_tag_and_basic_auth(sink: Sink) -> None:
    output = HTTPOutput(InfluxSerializer(), url=sink.url, username="root", password="")
    groups = [[_metric(g * 10 + i) for i in range(10)] for g in range(5)]
    agent, source, _ = _agent(output, groups, batch_size=15)
    await agent.start()
    await _until(lambda: len(source.delivered) == 5)
    await agent.stop()
    assert source.delivered == [0, 1, 2, 3, 4]
    lines = sink.lines()
    assert lines[0] == b"kafka_consumer,host=buoy pressure=0 1000"
    assert len(lines) == 50 and len(set(lines)) == 50
    headers = sink.requests[0][0]
    assert headers["Authorization"] == "Basic cm9vdDo="
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert all(len(body.splitlines()) <= 15 for _h, body in sink.requests)


@with_sink
async def test_failed_write_keeps_the_batch_and_delivers_only_after_success(sink: Sink) -> None:
    sink.script = [500, 503, 500]
    output = HTTPOutput(InfluxSerializer(), url=sink.url)
    agent, source, running = _agent(output, [[_metric(i) for i in range(3)]])
    await agent.start()
    await _until(lambda: len(sink.requests) >= 2)
    assert source.delivered == []
    await _until(lambda: source.delivered == [0])
    await agent.stop()
    bodies = [body for _h, body in sink.requests]
    assert len(bodies) == 4 and len(set(bodies)) == 1  # the same batch, retried until accepted
    assert running.counters.values["errors"] == 3


@with_sink
async def test_write_error_message_is_telegrafs(sink: Sink) -> None:
    sink.script = [500]
    output = HTTPOutput(InfluxSerializer(), url=sink.url)
    await output.connect()
    try:
        with pytest.raises(Exception, match=r"when writing to \[.*\] received status code: 500\. body: boom$"):
            await output.write([_metric(1)])
    finally:
        await output.close()


@with_sink
async def test_non_retryable_status_drops_the_batch_and_counts_as_delivered(sink: Sink) -> None:
    sink.script = [413]
    output = HTTPOutput(InfluxSerializer(), url=sink.url, non_retryable=frozenset({413}))
    agent, source, _ = _agent(output, [[_metric(1)], [_metric(2)]], batch_size=1)
    await agent.start()
    await _until(lambda: source.delivered == [0, 1])
    await agent.stop()
    assert len(sink.requests) == 2


@with_sink
async def test_gzip_and_headers_table_from_options(sink: Sink) -> None:
    opts = PluginOptions(
        {"url": sink.url, "content_encoding": "gzip", "headers": {"X-Sea": "north"}, "method": "post"},
        "outputs.http",
    )
    output = make_http_output(opts, InfluxSerializer())
    await output.connect()
    await output.write([_metric(7)])
    await output.close()
    headers, body = sink.requests[0]
    assert headers["Content-Encoding"] == "gzip" and headers["X-Sea"] == "north"
    assert body == b"kafka_consumer pressure=7 1007\n"  # aiohttp's server decoded the gzip body


@with_sink
async def test_unreachable_endpoint_is_retried_and_nothing_delivered(sink: Sink) -> None:
    output = HTTPOutput(InfluxSerializer(), url="http://127.0.0.1:9/api/v1/write", timeout=1.0)
    agent, source, running = _agent(output, [[_metric(1)]])
    await agent.start()
    await _until(lambda: running.counters.values.get("errors", 0) >= 2)
    await agent.stop()
    assert source.delivered == []
    assert len(running.buffer) == 1


@with_sink
async def test_filtered_out_metrics_count_as_delivered(sink: Sink) -> None:
    output = HTTPOutput(InfluxSerializer(), url=sink.url)
    opts = PluginOptions({"namedrop": ["kafka_*"]}, "outputs.http")
    agent, source, _ = _agent(output, [[_metric(1)]], metric_filter=MetricFilter.from_options(opts))
    await agent.start()
    await _until(lambda: source.delivered == [0])
    await agent.stop()
    assert sink.requests == []


@with_sink
async def test_input_fieldexclude_and_metrics_without_fields_are_dropped(sink: Sink) -> None:
    output = HTTPOutput(InfluxSerializer(), url=sink.url)
    opts = PluginOptions({"fieldexclude": ["temp*"]}, "inputs.test")
    groups = [[Metric("m", {}, {"temperature": 1.0, "pressure": 2.0}, 5), Metric("m", {}, {"temperature": 3.0}, 6)]]
    agent, source, _ = _agent(output, groups, input_filter=MetricFilter.from_options(opts))
    await agent.start()
    await _until(lambda: source.delivered == [0])
    await agent.stop()
    assert sink.lines() == [b"m,host=buoy pressure=2 5"]


@with_sink
async def test_internal_input_writes_the_agents_counters_as_metrics(sink: Sink) -> None:
    from tidepool.agent.plugins.inputs.internal import InternalInput

    output = HTTPOutput(InfluxSerializer(), url=sink.url)
    agent, _source, _output = _agent(output, [[_metric(i) for i in range(4)]])
    agent.built.inputs.append(RunningInput("inputs.internal", InternalInput(0.1)))
    await agent.start()
    await _until(lambda: any(line.startswith(b"internal_write,") for line in sink.lines()))
    await agent.stop()
    lines = sink.lines()
    gather = next(line for line in lines if line.startswith(b"internal_gather,") and b"input=test" in line)
    assert b"metrics_gathered=4i" in gather
    write = next(line for line in lines if line.startswith(b"internal_write,"))
    assert write.startswith(b"internal_write,host=buoy,output=http ")
    assert b"buffer_limit=10000i" in write
    assert any(line.startswith(b"internal_agent,host=buoy ") for line in lines)


def test_filters_select_then_modify_as_telegraf() -> None:
    def flt(table: dict[str, object]) -> MetricFilter:
        built = MetricFilter.from_options(PluginOptions(table, "outputs.http"))
        assert built is not None
        return built

    metric = Metric("cpu.total", {"host": "a", "dc": "eu-1"}, {"usage_user": 1.0, "usage_idle": 2.0, "x": 3.0}, 1)
    assert flt({"namepass": ["cpu.*"]}).apply(metric, copy=True) is metric
    assert flt({"namepass": ["cpu.*"], "namepass_separator": "."}).apply(metric, copy=True) is metric
    deeper = Metric("cpu.total.x", {}, {"v": 1.0}, 1)
    assert flt({"namepass": ["cpu.*"], "namepass_separator": "."}).apply(deeper, copy=True) is None
    assert flt({"namepass": ["cpu.**"], "namepass_separator": "."}).apply(deeper, copy=True) is deeper
    assert flt({"namepass": ["{mem,cpu}.t?tal"]}).apply(metric, copy=True) is metric
    assert flt({"tagpass": {"dc": ["eu-*"]}}).apply(metric, copy=True) is metric
    assert flt({"tagpass": {"dc": ["us-*"]}}).apply(metric, copy=True) is None
    assert flt({"tagdrop": {"host": ["a"]}}).apply(metric, copy=True) is None
    modified = flt({"fieldinclude": ["usage_*"], "fieldexclude": ["*idle"], "taginclude": ["host"]}).apply(
        metric, copy=True
    )
    assert modified is not None and modified is not metric
    assert (modified.fields, modified.tags) == ({"usage_user": 1.0}, {"host": "a"})
    assert metric.fields == {"usage_user": 1.0, "usage_idle": 2.0, "x": 3.0}  # the copy left the original alone
    assert flt({"fieldpass": ["nope"]}).apply(metric, copy=True) is None  # no field left: dropped
    assert MetricFilter.from_options(PluginOptions({}, "outputs.http")) is None


@with_sink
async def test_parser_tags_beat_plugin_tags_which_beat_global_tags_and_names_are_overridden(sink: Sink) -> None:
    output = HTTPOutput(InfluxSerializer(), url=sink.url)
    metric = Metric("kafka_consumer", {"site": "from-json"}, {"v": 1.0}, 9)
    agent, source, _ = _agent(
        output, [[metric]], tags={"site": "plugin", "host": "plugin-host", "zone": "z1"},
        name_override="ocean", name_prefix="sea_",
    )  # fmt: skip
    await agent.start()
    await _until(lambda: source.delivered == [0])
    await agent.stop()
    assert sink.lines() == [b"sea_ocean,host=plugin-host,site=from-json,zone=z1 v=1 9"]
