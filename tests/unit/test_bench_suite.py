"""The suite's own logic: TSBS batches and windows, the HTTP loader, freshness and percentiles."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from bench.common import TSBS_START_NS
from bench.suite import (
    Answer,
    DbSystem,
    TsbsWindow,
    check_stored,
    compare_answers,
    first_error,
    freshness_ms,
    percentile,
    post_batches,
    tsbs_batches,
)


def test_tsbs_batches_hold_every_line_in_batches_of_the_given_size() -> None:
    batches = tsbs_batches(points=7, hosts=10, batch_lines=25)
    lines = [line for b in batches for line in b.decode().split("\n")]
    assert len(lines) == 70
    assert [b.count(b"\n") + 1 for b in batches] == [25, 25, 20]
    assert lines[0].startswith("cpu,hostname=host_0,") and lines[0].endswith(f" {TSBS_START_NS}")


def test_window_spans_the_data_and_query_windows_are_nominal() -> None:
    w = TsbsWindow(points=1008, hosts=100)
    assert w.lines == 100_800
    assert w.end - w.start == 1008 * 10 * 10**9
    assert w.upto(8) == w.start + 8 * 3600 * 10**9  # past the 2.8 h of data: the same window for every system


class _Recorder(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []
    status = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(body)
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_sink() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"bodies": [], "status": 204})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/write?db=bench", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("connections", [1, 3])
def test_every_batch_is_posted_once_over_the_connections(
    http_sink: tuple[str, type[_Recorder]], connections: int
) -> None:
    url, handler = http_sink
    batches = [f"cpu v={i} {i}".encode() for i in range(20)]
    assert post_batches(url, {}, batches, connections) == []
    assert sorted(handler.bodies) == sorted(batches)


def test_a_rejected_batch_is_reported(http_sink: tuple[str, type[_Recorder]]) -> None:
    url, handler = http_sink
    handler.status = 400
    errors = post_batches(url, {}, [b"bad"], 1)
    assert errors and "HTTP 400" in errors[0]


def test_freshness_is_time_to_the_first_count_that_includes_the_message() -> None:
    ms = 1_000_000
    send = [0, 10 * ms, 20 * ms]
    samples = [(5 * ms, 100), (15 * ms, 101), (40 * ms, 103)]  # baseline 100 rows before the run
    assert freshness_ms(send, samples, baseline=100) == [15.0, 30.0, 20.0]


def test_a_message_never_seen_is_an_error_not_a_number() -> None:
    with pytest.raises(ValueError, match="message 1 never became visible"):
        freshness_ms([0, 1], [(5, 1)], baseline=0)


def test_percentile_uses_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0


class _FakeDb:
    def __init__(self, stored: int) -> None:
        self.stored = stored
        self.searchable_calls = 0

    def make_searchable(self) -> None:
        self.searchable_calls += 1


def _counting_system() -> DbSystem:
    return DbSystem(
        "fake db", lambda _dir: None, lambda server, _w: {"count(*)": lambda: Answer(1, server.stored)}, "count(*)"
    )


def test_an_ingest_run_that_lost_lines_is_rejected() -> None:
    window = TsbsWindow(points=10, hosts=10)
    complete = _FakeDb(stored=100)
    check_stored(_counting_system(), complete, window)
    assert complete.searchable_calls == 1
    with pytest.raises(RuntimeError, match="fake db stored 99 of 100 lines"):
        check_stored(_counting_system(), _FakeDb(stored=99), window)


def test_answers_that_differ_between_systems_are_named() -> None:
    agree = {
        "tidepool db": {"count(*)": Answer(1, 100.0), "max per host over 8 h": Answer(100, 5000.0)},
        "InfluxDB": {"count(*)": Answer(1, 100.0), "max per host over 8 h": Answer(100, 5000.0000001)},
    }
    assert compare_answers(agree) == []
    differ = {**agree, "VictoriaMetrics": {"count(*)": Answer(1, 99.0)}}
    (line,) = compare_answers(differ)
    assert line.startswith("answers to 'count(*)' differ: tidepool db 100.0000, InfluxDB 100.0000, VictoriaMetrics")


def test_a_tools_error_is_its_first_failure_line_without_librdkafkas_prefix() -> None:
    stderr = (
        b"%4|1795612634.923|FAIL|rdkafka#producer-1| [thrd:127.0.0.1:4/bootstrap]: 127.0.0.1:4/bootstrap: "
        b"ApiVersionRequest failed: Local: Read underflow\n% ERROR: Local: All broker connections are down\n"
    )
    assert first_error(stderr) == "127.0.0.1:4/bootstrap: ApiVersionRequest failed: Local: Read underflow"
    assert first_error(b"plain trouble\n") == "plain trouble"


def test_sigterm_unwinds_like_an_exception_so_servers_get_stopped() -> None:
    import signal

    from bench.__main__ import _stop_on_sigterm

    with pytest.raises(SystemExit) as stopped:
        _stop_on_sigterm(signal.SIGTERM, None)
    assert stopped.value.code == 128 + signal.SIGTERM
