"""CnosDB's HTTP API against a real `python -m tidepool db` process, over real sockets.

Expected bodies follow CnosDB's rules as recorded in ../shared/reference/cnosdb.md (CSV header and
`2023-07-28T02:12:11.000000000` timestamps, `1.0` doubles, JSON without null keys, ...), not this server's output.
"""

from __future__ import annotations

import base64
import gzip
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT_AUTH = "Basic " + base64.b64encode(b"root:").decode()


@dataclass
class DbServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_db(data_dir: Path, *extra: str) -> DbServer:
    """Start `tidepool db` on a free port and wait until /api/v1/ping answers."""
    port = free_port()
    log = data_dir.parent / f"{data_dir.name}-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tidepool",
                "db",
                "--data-dir",
                str(data_dir),
                "--listen",
                f"127.0.0.1:{port}",
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tidepool db exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/api/v1/ping", timeout=1) as resp:
                if resp.status == 200:
                    return DbServer(url, process, log)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"tidepool db did not answer within 30 s:\n{log.read_text()}")


def stop_db(server: DbServer) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        assert server.process.wait(timeout=30) == 0, server.log.read_text()
    finally:
        if server.process.poll() is None:
            server.process.kill()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbServer]:
    server = start_db(tmp_path_factory.mktemp("db") / "data")
    yield server
    stop_db(server)


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None, *, auth: str | None = ROOT_AUTH
) -> tuple[int, dict[str, str], bytes]:
    all_headers = dict(headers or {})
    if auth is not None:
        all_headers["Authorization"] = auth
    request = urllib.request.Request(url, data=body, method="POST", headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def sql(server: DbServer, text: str, accept: str | None = None, db: str = "public") -> bytes:
    status, _, body = post(f"{server.url}/api/v1/sql?db={db}", text.encode(), {"Accept": accept} if accept else {})
    assert status == 200, body
    return body


def write(server: DbServer, lines: bytes, db: str = "public", **headers: str) -> None:
    status, _, body = post(f"{server.url}/api/v1/write?db={db}", lines, headers)
    assert (status, body) == (200, b"")


FIXED_DATA = (
    b'air,station=XiaoMaiDao visibility=56,temperature=69.5,pressure=77i,note="a,b" 1690510331000000000\n'
    b"air,station=LianYunGang visibility=65.25,temperature=71 1690510332500000000\n"
)
FIXED_QUERY = "SELECT time, station, visibility, temperature, pressure, note FROM air ORDER BY time"


@pytest.fixture(scope="module")
def fixed_data(db: DbServer) -> DbServer:
    write(db, FIXED_DATA)
    return db


def test_csv_is_the_default_rendering(fixed_data: DbServer) -> None:
    expected = (
        b"time,station,visibility,temperature,pressure,note\n"
        b'2023-07-28T02:12:11.000000000,XiaoMaiDao,56.0,69.5,77,"a,b"\n'
        b"2023-07-28T02:12:12.500000000,LianYunGang,65.25,71.0,,\n"
    )
    assert sql(fixed_data, FIXED_QUERY) == expected
    assert sql(fixed_data, FIXED_QUERY, "*/*") == expected
    assert sql(fixed_data, FIXED_QUERY, "application/csv") == expected


def test_tsv_rendering(fixed_data: DbServer) -> None:
    assert sql(fixed_data, FIXED_QUERY, "text/tsv") == (
        b"time\tstation\tvisibility\ttemperature\tpressure\tnote\n"
        b"2023-07-28T02:12:11.000000000\tXiaoMaiDao\t56.0\t69.5\t77\ta,b\n"
        b"2023-07-28T02:12:12.500000000\tLianYunGang\t65.25\t71.0\t\t\n"
    )


def test_json_and_ndjson_leave_out_nulls(fixed_data: DbServer) -> None:
    first = (
        b'{"time":"2023-07-28T02:12:11","station":"XiaoMaiDao","visibility":56.0,"temperature":69.5,'
        b'"pressure":77,"note":"a,b"}'
    )
    second = b'{"time":"2023-07-28T02:12:12.500","station":"LianYunGang","visibility":65.25,"temperature":71.0}'
    assert sql(fixed_data, FIXED_QUERY, "application/json") == b"[" + first + b"," + second + b"]"
    assert sql(fixed_data, FIXED_QUERY, "application/nd-json") == first + b"\n" + second + b"\n"


def test_table_rendering(fixed_data: DbServer) -> None:
    assert sql(fixed_data, FIXED_QUERY, "text/table").decode() == "\n".join(
        [
            "+-------------------------+-------------+------------+-------------+----------+------+",
            "| time                    | station     | visibility | temperature | pressure | note |",
            "+-------------------------+-------------+------------+-------------+----------+------+",
            "| 2023-07-28T02:12:11     | XiaoMaiDao  | 56.0       | 69.5        | 77       | a,b  |",
            "| 2023-07-28T02:12:12.500 | LianYunGang | 65.25      | 71.0        |          |      |",
            "+-------------------------+-------------+------------+-------------+----------+------+",
        ]
    )


def test_select_one_and_content_types(db: DbServer) -> None:
    status, headers, body = post(f"{db.url}/api/v1/sql?db=public&pretty=true", b"select 1")
    assert (status, headers["Content-Type"], body) == (200, "text/csv", b"Int64(1)\n1\n")
    for accept, content_type in [
        ("application/json", "application/json"),
        ("application/nd-json", "application/nd-json"),
        ("text/tsv", "text/tsv"),
        ("text/table", "text/table"),
    ]:
        status, headers, _ = post(f"{db.url}/api/v1/sql", b"select 1", {"Accept": accept})
        assert (status, headers["Content-Type"]) == (200, content_type)
    status, _, body = post(f"{db.url}/api/v1/sql", b"select 1", {"Accept": "application/ndjson"})
    assert status == 400 and json.loads(body)["error_code"] == "040005"


def test_missing_auth_header_is_400(db: DbServer) -> None:
    for path in ("/api/v1/sql", "/api/v1/write"):
        status, headers, body = post(db.url + path, b"select 1", auth=None)
        assert status == 400
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"error_code": "000000", "error_message": 'Missing request header "authorization"'}


def test_unknown_database_is_cnosdb_error(db: DbServer) -> None:
    expected = {"error_code": "030017", "error_message": 'Database not found: "nope"'}
    status, _, body = post(f"{db.url}/api/v1/write?db=nope", b"m f=1 1")
    assert (status, json.loads(body)) == (422, expected)
    status, _, body = post(f"{db.url}/api/v1/sql?db=nope", b"select * from m")
    assert (status, json.loads(body)) == (422, expected)


def test_gzip_write_and_gzip_response(db: DbServer) -> None:
    lines = b"".join(b"gz,host=h%d v=%di %d\n" % (i % 3, i, 1700000000000000000 + i) for i in range(1000))
    write(db, gzip.compress(lines), **{"Content-Encoding": "gzip"})
    status, headers, body = post(
        f"{db.url}/api/v1/sql", b"select count(*) from gz", {"Accept-Encoding": "gzip", "Accept": "application/json"}
    )
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    [row] = json.loads(gzip.decompress(body))
    assert list(row.values()) == [1000]


def test_ten_megabyte_write(db: DbServer) -> None:
    line = b"big,host=h%d,region=eu-west-1 usage_user=%d.5,usage_system=12.25,usage_idle=80.125 %d\n"
    lines = b"".join(line % (i % 100, i % 97, 1600000000000000000 + i * 1000) for i in range(120_000))
    assert len(lines) >= 10 * 1024 * 1024
    write(db, lines)
    assert sql(db, "select count(*) from big").splitlines()[1:] == [b"120000"]


def test_32_concurrent_writers_lose_no_point(db: DbServer) -> None:
    writers, batches, per_batch = 32, 5, 200
    errors: list[str] = []

    def writer(n: int) -> None:
        for b in range(batches):
            lines = b"".join(
                b"conc,writer=w%d v=%di %d\n" % (n, i, 1650000000000000000 + (b * per_batch + i) * 1000)
                for i in range(per_batch)
            )
            status, _, body = post(f"{db.url}/api/v1/write?db=public", lines)
            if status != 200:
                errors.append(f"{status} {body!r}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sql(db, "select count(*) from conc").splitlines()[1:] == [b"%d" % (writers * batches * per_batch)]
    per_writer = sql(db, "select writer, count(*) from conc group by writer order by writer")
    assert per_writer.splitlines()[1:] == [
        b"w%d,%d" % (n, batches * per_batch) for n in sorted(range(writers), key=str)
    ]


def test_influxdb_write_endpoint_needs_no_auth(db: DbServer) -> None:
    status, _, body = post(f"{db.url}/write?db=public", b"influx,host=a v=1.5 1700000000000000000", auth=None)
    assert (status, body) == (200, b"")
    assert sql(db, "select host, v from influx") == b"host,v\na,1.5\n"


def test_cnos_connector_writes_and_queries(db: DbServer) -> None:
    from cnosdb_connector import connect

    conn = connect(url=db.url + "/", user="root", password="", database="public")
    conn.write_lines(
        [
            "connector,station=a temperature=20.5 1690000000000000000",
            "connector,station=b temperature=21 1690000001000000000",
        ]
    )
    cursor = conn.cursor()
    cursor.execute("SELECT time, station, temperature FROM connector ORDER BY time")
    assert cursor.fetchall() == [
        ["2023-07-22T04:26:40", "a", 20.5],
        ["2023-07-22T04:26:41", "b", 21.0],
    ]
    assert [d[0] for d in cursor.description] == ["time", "station", "temperature"]
    assert conn.list_database() == [{"database_name": "public"}]
    conn.create_user("alice", "secret")  # sent as `CREATE USER alice WITH PASSWORD = secret`, unquoted
    alice = "Basic " + base64.b64encode(b"alice:secret").decode()
    status, _, body = post(f"{db.url}/api/v1/sql", b"select 1", auth=alice)
    assert (status, json.loads(body)["error_message"]) == (
        422,
        "Auth error: The member alice of tenant cnosdb not found",
    )
    conn.drop_user("alice")
    status, _, body = post(f"{db.url}/api/v1/sql", b"select 1", auth=alice)
    assert (status, json.loads(body)["error_message"]) == (422, "Auth error: The user alice not found")


def test_bad_password_with_auth_on_is_422_010016(tmp_path: Path) -> None:
    server = start_db(tmp_path / "authdb", "--auth")
    try:
        status, _, body = post(f"{server.url}/api/v1/sql", b"select 1")  # root, empty password: the default
        assert (status, body) == (200, b"Int64(1)\n1\n")
        bad = "Basic " + base64.b64encode(b"root:wrong").decode()
        status, _, body = post(f"{server.url}/api/v1/sql", b"select 1", auth=bad)
        assert status == 422
        assert body == (
            b'{"error_code":"010016","error_message":"Auth error: Access denied for user \'root\' (using xxx) '
            b'username or password invalid"}'
        )
        status, _, _ = post(f"{server.url}/api/v1/write", b"m f=1 1", auth=bad)
        assert status == 422
    finally:
        stop_db(server)


def test_large_result_is_streamed_in_chunks(db: DbServer) -> None:
    rows = 60_000
    write(db, b"".join(b"stream,host=h%d v=%d.25 %d\n" % (i % 10, i, 1500000000000000000 + i) for i in range(rows)))
    request = urllib.request.Request(
        f"{db.url}/api/v1/sql?db=public",
        data=b"select time, host, v from stream order by time",
        headers={"Authorization": ROOT_AUTH},
    )
    with urllib.request.urlopen(request, timeout=120) as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert resp.headers.get("Content-Length") is None
        lines = resp.read().splitlines()
    assert lines[0] == b"time,host,v"
    assert len(lines) == rows + 1
    assert lines[1] == b"2017-07-14T02:40:00.000000000,h0,0.25"
    assert lines[-1] == b"2017-07-14T02:40:00.000059999,h9,59999.25"


def test_metrics_report_http_and_engine_counters(db: DbServer) -> None:
    write(db, b"metered,host=a v=1 1\nmetered,host=b v=2 2\n")
    sql(db, "select * from metered")
    with urllib.request.urlopen(db.url + "/metrics", timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert int(samples['tidepool_http_requests_total{api="api_v1_write"}']) >= 1
    assert int(samples["tidepool_http_points_written_total"]) >= 2
    assert int(samples['tidepool_http_request_duration_seconds_count{api="api_v1_sql"}']) >= 1
    assert float(samples["tidepool_db_wal_bytes"]) > 0
    assert "tidepool_db_parquet_bytes" in samples
