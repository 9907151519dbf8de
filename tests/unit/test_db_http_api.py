"""The HTTP layer in-process, over a real socket, with a stand-in engine defined here (the engine itself is
tested elsewhere; the same behaviours against the real `tidepool db` process are in tests/integration)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import cramjam
import pyarrow as pa
from aiohttp.test_utils import TestServer

from tidepool.db.auth import AuthStore
from tidepool.db.errors import DbError, database_not_found
from tidepool.db.http import Limits, make_app
from tidepool.lineproto import parse


@dataclass
class Result:
    schema: pa.Schema
    batches: Any


class StandInEngine:
    """Counts points per database; answers `select 1`, `select n` (n rows over many batches) and `create ...`."""

    def __init__(self) -> None:
        self.points: dict[str, int] = {"public": 0}
        self.bodies: list[bytes] = []

    def write_lines(self, tenant: str, database: str, body: bytes, precision: str = "ns") -> int:
        if database not in self.points:
            raise database_not_found(database)
        parsed = parse(body, precision)
        self.points[database] += parsed.num_points
        self.bodies.append(body)
        return int(parsed.num_points)

    def execute(self, tenant: str, database: str, sql: str) -> Result:
        if database not in self.points:
            raise database_not_found(database)
        if sql.lower().startswith("create"):
            return Result(pa.schema([]), iter([]))
        if sql == "select 1":
            schema = pa.schema([("Int64(1)", pa.int64())])
            return Result(schema, iter([pa.record_batch([pa.array([1])], schema=schema)]))
        if sql.startswith("select n "):
            rows = int(sql.split()[2])
            schema = pa.schema([("n", pa.int64())])
            return Result(
                schema,
                (
                    pa.record_batch([pa.array(range(i, min(i + 1000, rows)))], schema=schema)
                    for i in range(0, rows, 1000)
                ),
            )
        raise DbError("010009", f"sql parser error: {sql}")

    def stats(self) -> dict[str, int | float]:
        return {"points_written": sum(self.points.values()), "wal_bytes": 123}


def basic(user: str, password: str = "") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ROOT = basic("root")


def serve(
    test: Callable[[aiohttp.ClientSession, str, StandInEngine], Awaitable[None]],
    *,
    auth_enabled: bool = False,
    data_dir: Path | None = None,
    limits: Limits | None = None,
) -> None:
    async def main() -> None:
        engine = StandInEngine()
        app = make_app(engine, AuthStore(data_dir, auth_enabled=auth_enabled), limits)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:
                await test(client, f"http://127.0.0.1:{server.port}", engine)
        finally:
            await server.close()

    asyncio.run(main())


def test_missing_authorization_is_400_with_cnosdb_json() -> None:
    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        for path in ("/api/v1/sql", "/api/v1/write"):
            async with client.post(url + path, data=b"select 1") as resp:
                assert resp.status == 400
                assert resp.headers["Content-Type"] == "application/json"
                assert await resp.read() == (
                    b'{"error_code":"000000","error_message":"Missing request header \\"authorization\\""}'
                )

    serve(check)


def test_bearer_scheme_is_a_malformed_basic_auth() -> None:
    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        async with client.post(url + "/api/v1/sql", data=b"select 1", headers={"Authorization": "Bearer x"}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error_code"] == "040006"

    serve(check)


def test_routes_answer_404_and_405_with_empty_bodies_and_ping_is_json() -> None:
    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        async with client.get(url + "/nope") as resp:
            assert (resp.status, await resp.read()) == (404, b"")
        async with client.get(url + "/api/v1/sql") as resp:
            assert (resp.status, await resp.read()) == (405, b"")
        async with client.post(url + "/api/v1/ping") as resp:
            assert (resp.status, await resp.read()) == (405, b"")
        async with client.get(url + "/api/v1/ping") as resp:
            assert resp.status == 200
            assert await resp.json() == {"version": "2.4.3", "status": "healthy"}
        async with client.head(url + "/api/v1/ping") as resp:
            assert resp.status == 200

    serve(check)


def test_write_then_unknown_params_are_ignored_and_success_is_empty_200() -> None:
    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        async with client.post(
            url + "/api/v1/write?db=public&pretty=true", data=b"m,t=a f=1 1\nm,t=b f=2 2", headers=ROOT
        ) as resp:
            assert (resp.status, await resp.read()) == (200, b"")
        assert engine.points["public"] == 2
        async with client.post(url + "/api/v1/write?db=nope", data=b"m f=1 1", headers=ROOT) as resp:
            assert resp.status == 422
            assert await resp.json() == {"error_code": "030017", "error_message": 'Database not found: "nope"'}

    serve(check)


def test_compressed_bodies_are_decoded_and_unknown_coding_is_rejected() -> None:
    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        lines = b"m,t=a f=1 1\nm,t=b f=2 2\nm,t=c f=3 3"
        raw_deflate = zlib.compressobj(wbits=-15)
        for coding, body in (
            ("gzip", gzip.compress(lines)),
            ("deflate", raw_deflate.compress(lines) + raw_deflate.flush()),
            ("identity", lines),
        ):
            headers = {**ROOT, "Content-Encoding": coding}
            async with client.post(url + "/api/v1/write", data=body, headers=headers) as resp:
                assert resp.status == 200, coding
        assert engine.points["public"] == 9
        for coding, codec in (
            ("br", cramjam.brotli),
            ("zstd", cramjam.zstd),
            ("snappy", cramjam.snappy),
            ("lz4", cramjam.lz4),
        ):
            headers = {**ROOT, "Content-Encoding": coding}
            async with client.post(url + "/api/v1/write", data=bytes(codec.compress(lines)), headers=headers) as resp:
                assert resp.status == 200, coding
            query_headers = {**ROOT, "Accept-Encoding": coding}
            async with (
                aiohttp.ClientSession(auto_decompress=False) as raw_client,
                raw_client.post(url + "/api/v1/sql", data=b"select 1", headers=query_headers) as resp,
            ):
                assert resp.headers["Content-Encoding"] == coding
                assert bytes(codec.decompress(await resp.read())) == b"Int64(1)\n1\n"
        assert engine.points["public"] == 21
        async with client.post(url + "/api/v1/write", data=lines, headers={**ROOT, "Content-Encoding": "xz"}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error_code"] == "040005"
        async with client.post(
            url + "/api/v1/write", data=b"not gzip", headers={**ROOT, "Content-Encoding": "gzip"}
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error_code"] == "040013"
        assert engine.points["public"] == 21

    serve(check)


def test_body_over_the_limit_is_413_and_nothing_is_written() -> None:
    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        body = b"m f=1 1\n" * 200
        async with client.post(url + "/api/v1/write", data=body, headers=ROOT) as resp:
            assert resp.status == 413
        bomb = gzip.compress(b"m f=1 1\n" * 50_000)
        assert len(bomb) < 1024
        async with client.post(url + "/api/v1/write", data=bomb, headers={**ROOT, "Content-Encoding": "gzip"}) as resp:
            assert resp.status == 413
        assert engine.points["public"] == 0

    serve(check, limits=Limits(write_body_bytes=1024, query_body_bytes=1024))


def test_half_sent_body_and_half_sent_headers_time_out() -> None:
    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\nAuthorization: Basic cm9vdDo=\r\n"
            b"Content-Length: 1000\r\n\r\nm f=1"
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert status_line.startswith(b"HTTP/1.1 408")
        writer.close()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /api/v1/write HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        writer.close()
        assert engine.points["public"] == 0

    serve(check, limits=Limits(body_timeout_s=0.5, idle_timeout_s=0.5))


def test_large_result_streams_and_equals_one_shot_rendering() -> None:
    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        async with client.post(url + "/api/v1/sql", data=b"select n 300000", headers=ROOT) as resp:
            assert resp.status == 200
            assert resp.headers.get("Transfer-Encoding") == "chunked"
            body = await resp.read()
        assert body == b"n\n" + b"".join(b"%d\n" % i for i in range(300000))
        async with client.post(
            url + "/api/v1/sql?chunked=true", data=b"select n 2500", headers={**ROOT, "Accept": "application/json"}
        ) as resp:
            body = await resp.read()
        # chunked=true renders each batch on its own, as CnosDB's stream does
        assert body.count(b"[") == 3 and body.endswith(b'{"n":2499}]')

    serve(check)


def test_auth_enabled_checks_passwords_and_users_persist(tmp_path: Path) -> None:
    async def setup(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        async with client.post(url + "/api/v1/sql", data=b"alter user root set password='abc'", headers=ROOT) as resp:
            assert resp.status == 200
        sql = b"CREATE USER IF NOT EXISTS test WITH PASSWORD='123456', MUST_CHANGE_PASSWORD=false, COMMENT = 'test'"
        async with client.post(url + "/api/v1/sql", data=sql, headers=basic("root", "abc")) as resp:
            assert resp.status == 200
        async with client.post(url + "/api/v1/sql", data=b"create role writer inherit member", headers=ROOT) as resp:
            assert resp.status == 200
        async with client.post(
            url + "/api/v1/sql", data=b"grant write on database public to role writer", headers=ROOT
        ) as resp:
            assert resp.status == 200
        async with client.post(
            url + "/api/v1/sql", data=b"alter tenant cnosdb add user test as writer", headers=ROOT
        ) as resp:
            assert resp.status == 200

    serve(setup, data_dir=tmp_path)

    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        async with client.post(url + "/api/v1/sql", data=b"select 1", headers=basic("root", "ab")) as resp:
            assert resp.status == 422
            assert await resp.read() == (
                b'{"error_code":"010016","error_message":"Auth error: Access denied for user \'root\' '
                b'(using xxx) username or password invalid"}'
            )
        async with client.post(url + "/api/v1/sql", data=b"select 1", headers=basic("root", "abc")) as resp:
            assert (resp.status, await resp.read()) == (200, b"Int64(1)\n1\n")
        async with client.post(url + "/api/v1/write", data=b"m f=1 1", headers=basic("test", "123456")) as resp:
            assert resp.status == 200
        async with client.post(url + "/api/v1/sql", data=b"select 1", headers=basic("test", "123456")) as resp:
            assert resp.status == 200  # write implies read
        async with client.post(url + "/api/v1/sql", data=b"drop user root", headers=basic("root", "abc")) as resp:
            assert await resp.json() == {
                "error_code": "010074",
                "error_message": "User 'root' is prohibited from being dropped",
            }
        async with client.post(url + "/api/v1/sql", data=b"create user x", headers=basic("test", "123456")) as resp:
            assert await resp.json() == {
                "error_code": "010004",
                "error_message": "Insufficient privileges, expected [maintainer for system]",
            }

    serve(check, auth_enabled=True, data_dir=tmp_path)


def test_member_without_privileges_cannot_write() -> None:
    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        for sql in (b"create user u2", b"alter tenant cnosdb add user u2 as member"):
            async with client.post(url + "/api/v1/sql", data=sql, headers=ROOT) as resp:
                assert resp.status == 200
        async with client.post(url + "/api/v1/write", data=b"m f=1 1", headers=basic("u2")) as resp:
            assert resp.status == 422
            assert await resp.json() == {
                "error_code": "010004",
                "error_message": "Insufficient privileges, expected [Write on database public of tenant "
                "78322384368497284380257291774744000001]",
            }
        async with client.post(url + "/api/v1/sql", data=b"select 1", headers=basic("nobody")) as resp:
            assert resp.status == 422
            assert (await resp.json())["error_code"] == "010016"
        assert engine.points["public"] == 0

    serve(check)


def test_metrics_are_prometheus_text() -> None:
    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        async with client.post(url + "/api/v1/write", data=b"m f=1 1\nm f=2 2", headers=ROOT) as resp:
            assert resp.status == 200
        async with client.get(url + "/metrics") as resp:
            text = await resp.text()
        assert 'tidepool_http_requests_total{api="api_v1_write"} 1' in text
        assert "tidepool_http_points_written_total 2" in text
        assert "tidepool_db_wal_bytes 123" in text
        assert 'tidepool_http_request_duration_seconds_count{api="api_v1_write"} 1' in text

    serve(check)


def test_system_tables_show_users_members_roles_and_privileges() -> None:
    async def check(client: aiohttp.ClientSession, url: str, engine: StandInEngine) -> None:
        for sql in (
            b"create user u1 with must_change_password=true, comment='abc'",
            b"create role r5 inherit member",
            b"grant read on database db1 to r5",
            b"alter tenant cnosdb add user u1 as r5",
        ):
            async with client.post(url + "/api/v1/sql", data=sql, headers=ROOT) as resp:
                assert resp.status == 200, await resp.read()
        query = b"SELECT * FROM cluster_schema.users where user_name='u1'"
        async with client.post(url + "/api/v1/sql", data=query, headers=ROOT) as resp:
            assert await resp.read() == (
                b"user_name,is_admin,user_options\n"
                b'u1,false,"{""hash_password"":""*****"",""must_change_password"":true,""comment"":""abc""}"\n'
            )
        async with client.post(
            url + "/api/v1/sql", data=b"select * from information_schema.roles", headers=ROOT
        ) as resp:
            assert (
                await resp.read()
                == b"role_name,role_type,inherit_role\nowner,system,\nmember,system,\nr5,custom,member\n"
            )
        async with client.post(
            url + "/api/v1/sql", data=b"select * from information_schema.roles", headers=basic("u1")
        ) as resp:
            assert await resp.read() == b"role_name,role_type,inherit_role\n"  # only owners see the roles
        query = b"select * from information_schema.database_privileges"
        async with client.post(url + "/api/v1/sql", data=query, headers=basic("u1")) as resp:
            assert await resp.read() == b"tenant_name,database_name,privilege_type,role_name\ncnosdb,db1,Read,r5\n"
        query = b"select user_name from cluster_schema.users order by user_name"
        async with client.post(url + "/api/v1/sql", data=query, headers=basic("u1")) as resp:
            assert await resp.read() == b"user_name\nu1\n"  # a non-admin sees only itself
        query = b"select role_name from information_schema.members where user_name = 'root'"
        async with client.post(url + "/api/v1/sql", data=query, headers=ROOT) as resp:
            assert await resp.read() == b"role_name\nowner\n"

    serve(check)
