"""curl, as CnosDB's documentation uses it (reference/rest_api, develop/api), against a real `tidepool db`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_db_http_server import DbServer, start_db, stop_db

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbServer]:
    server = start_db(tmp_path_factory.mktemp("curl") / "data")
    yield server
    stop_db(server)


def curl(*args: str) -> str:
    done = subprocess.run(["curl", "-s", *args], capture_output=True, timeout=60, check=True)
    return done.stdout.decode()


def test_documented_write_sql_and_ping(db: DbServer, tmp_path: Path) -> None:
    head = curl("-i", "-u", "root:", "-XPOST", f"{db.url}/api/v1/write?db=public", "-d", "t1,foo=a,bar=b v=1 1")
    assert head.startswith("HTTP/1.1 200 OK\r\n")
    assert "Content-Length: 0\r\n" in head
    created = curl(
        "-X", "POST", f"{db.url}/api/v1/sql?db=public&pretty=true", "-u", "root:",
        "-H", "Content-Type: application/x-www-form-urlencoded",
        "-d", "CREATE TABLE air (\nvisibility DOUBLE,\ntemperature DOUBLE,\npressure DOUBLE,\nTAGS(station)\n);",
    )  # fmt: skip
    assert created == ""
    body = curl("-u", "root:", "-H", "Accept: application/json", "-XPOST", f"{db.url}/api/v1/sql?db=public",
                "-d", "SELECT time, foo, bar, v from t1")  # fmt: skip
    assert body == '[{"time":"1970-01-01T00:00:00.000000001","foo":"a","bar":"b","v":1.0}]'
    assert curl("-G", f"{db.url}/api/v1/ping") == '{"version":"2.4.3","status":"healthy"}'


def test_compressed_answers_decode_in_curl(db: DbServer) -> None:
    curl("-u", "root:", "-XPOST", f"{db.url}/api/v1/write?db=public", "-d", "t2,k=x v=2.5 1")
    for coding in ("gzip", "deflate"):
        body = curl("--compressed", "-H", f"Accept-Encoding: {coding}", "-u", "root:", "-XPOST",
                    f"{db.url}/api/v1/sql?db=public", "-d", "select k, v from t2")  # fmt: skip
        assert body == "k,v\nx,2.5\n", coding
