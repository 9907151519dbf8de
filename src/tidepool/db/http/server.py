"""The CnosDB-compatible HTTP API on aiohttp: routes, limits, auth, error mapping and result streaming.

Routes as CnosDB serves them (main/src/http/http_service.rs): `POST /api/v1/write`, `POST /api/v1/sql`,
`GET|HEAD /api/v1/ping`, InfluxDB's `POST /write` and `/metrics`. A known path with another method is an empty
405, an unknown path an empty 404, a body over the limit an empty 413, a `DbError` its JSON with its status and
anything unexpected an empty 500 (logged here, never sent to the client).

The engine is blocking: every call to it, and the rendering of result batches, runs in a thread pool (one for
writes, one for queries). A result up to `STREAM_AFTER_BYTES` is answered with a Content-Length; a larger one
switches to chunked transfer and streams batch by batch, so memory stays bounded whatever the result size.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import pyarrow as pa
from aiohttp import web

from tidepool.db.auth import DEFAULT_TENANT, ROOT, AuthStore, Principal, UserInfo
from tidepool.db.errors import DbError, internal
from tidepool.db.formats import Renderer, ResultFormat, format_from_accept, render
from tidepool.db.http import encoding, system_tables
from tidepool.db.http.metrics import HttpMetrics
from tidepool.logs import get_logger

log = get_logger("db.http")

DEFAULT_DATABASE = "public"
PING_VERSION = "2.4.3"  # the CnosDB release whose HTTP API this one follows
QUERY_BODY_LIMIT = 16 * 1024 * 1024  # CnosDB's query_sql_limit
STREAM_AFTER_BYTES = 1024 * 1024
PRECISIONS = ("ns", "us", "ms")


class QueryResultLike(Protocol):
    schema: pa.Schema
    batches: Any  # Iterator[pa.RecordBatch] or an iterable of them


class EngineLike(Protocol):
    """The part of `tidepool.db.engine.Engine` the HTTP layer uses (see docs/http-api.md)."""

    def write_lines(self, tenant: str, database: str, body: bytes, precision: str = "ns") -> int: ...

    def execute(self, tenant: str, database: str, sql: str) -> Any: ...

    def stats(self) -> dict[str, int | float]: ...


@dataclass
class Limits:
    write_body_bytes: int = 160 * 1024 * 1024  # CnosDB's write_sql_limit
    query_body_bytes: int = QUERY_BODY_LIMIT
    body_timeout_s: float = 30.0  # a body not fully received by then is abandoned (408)
    write_threads: int = 8
    query_threads: int = 8
    idle_timeout_s: float = 75.0  # a connection idle, or stuck in its request headers, this long is closed


class _EmptyStatus(Exception):
    """Answer with this status and an empty body (CnosDB's 404/405/413/500)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class _Measured:
    """What one request moved, filled in as it is answered, for `HttpMetrics.record`."""

    bytes_in: int = 0
    bytes_out: int = 0
    points: int = 0
    failed: bool = True


def _error_response(error: DbError) -> web.Response:
    return web.Response(
        status=error.http_status,
        body=orjson.dumps(error.to_json()),
        headers={"Content-Type": "application/json"},
    )


class HttpApi:
    """Request handlers bound to one engine, auth store, limits and metrics."""

    def __init__(self, engine: EngineLike, auth: AuthStore, limits: Limits) -> None:
        self.engine = engine
        self.auth = auth
        self.limits = limits
        self.metrics = HttpMetrics()
        # Writes and queries get their own threads, so long queries cannot starve ingest (nor the reverse).
        self.write_pool = ThreadPoolExecutor(limits.write_threads, thread_name_prefix="db-http-write")
        self.query_pool = ThreadPoolExecutor(limits.query_threads, thread_name_prefix="db-http-query")
        self.routes: dict[str, tuple[tuple[str, ...], Callable[[web.Request], Awaitable[web.StreamResponse]]]] = {
            "/api/v1/write": (("POST",), self.write),
            "/api/v1/sql": (("POST",), self.sql),
            "/api/v1/ping": (("GET", "HEAD"), self.ping),
            "/write": (("POST",), self.influx_write),
            "/metrics": (("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"), self.prometheus),
        }

    # dispatch ------------------------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        route = self.routes.get(request.path.rstrip("/") or "/")
        if route is None:
            return web.Response(status=404)
        methods, handler = route
        if request.method not in methods:
            return web.Response(status=405)
        try:
            return await handler(request)
        except DbError as error:
            return _error_response(error)
        except _EmptyStatus as empty:
            return web.Response(status=empty.status)
        except encoding.BodyTooLarge:
            return web.Response(status=413)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return web.Response(status=500)

    async def _read_body(self, request: web.Request, limit: int) -> bytes:
        """The raw body, at most `limit` bytes, received within the body timeout."""
        length = request.content_length
        if length is not None and length > limit:
            raise _EmptyStatus(413)
        body = bytearray()

        async def read_all() -> None:
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    return
                body.extend(chunk)
                if len(body) > limit:
                    raise _EmptyStatus(413)

        try:
            await asyncio.wait_for(read_all(), self.limits.body_timeout_s)
        except TimeoutError:
            log.info("%s %s: body not received within %.0f s", request.method, request.path, self.limits.body_timeout_s)
            raise _EmptyStatus(408) from None
        return bytes(body)

    async def _decoded(self, request: web.Request, raw: bytes, limit: int, pool: ThreadPoolExecutor) -> bytes:
        """The body after its `Content-Encoding`; inflating runs in `pool`, off the event loop."""
        coding = encoding.content_encoding(request.headers.get("Content-Encoding"))
        if coding is None or coding == "identity":
            return raw
        decoded: bytes = await self._blocking(pool, encoding.decode, raw, coding, limit)
        return decoded

    async def _blocking(self, pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    def shutdown(self) -> None:
        self.write_pool.shutdown(wait=True, cancel_futures=True)
        self.query_pool.shutdown(wait=True, cancel_futures=True)

    async def _received(self, request: web.Request, measured: _Measured, limit: int, pool: ThreadPoolExecutor) -> bytes:
        """The decoded body; its size as received is counted in `measured`."""
        raw = await self._read_body(request, limit)
        measured.bytes_in = len(raw)
        return await self._decoded(request, raw, limit, pool)

    @contextmanager
    def _measured(self, api: str) -> Iterator[_Measured]:
        """Record one request of `api` in the metrics when it ends, however it ends."""
        started = time.perf_counter()
        measured = _Measured()
        try:
            yield measured
        finally:
            self.metrics.record(
                api,
                seconds=time.perf_counter() - started,
                bytes_in=measured.bytes_in,
                bytes_out=measured.bytes_out,
                failed=measured.failed,
                points=measured.points,
            )

    # writes --------------------------------------------------------------------------------------------------

    async def _write(
        self, measured: _Measured, principal: Principal, database: str, body: bytes, precision: str
    ) -> web.StreamResponse:
        self.auth.check_write(principal, database)
        measured.points = await self._blocking(
            self.write_pool, self.engine.write_lines, principal.tenant, database, body, precision
        )
        measured.failed = False
        return web.Response(status=200)

    async def write(self, request: web.Request) -> web.StreamResponse:
        with self._measured("api_v1_write") as measured:
            body = await self._received(request, measured, self.limits.write_body_bytes, self.write_pool)
            tenant = request.query.get("tenant") or DEFAULT_TENANT
            principal = self.auth.authenticate(request.headers.get("Authorization"), tenant)
            database = request.query.get("db") or DEFAULT_DATABASE
            precision = (request.query.get("precision") or "ns").lower()
            if precision not in PRECISIONS:
                precision = "ns"
            return await self._write(measured, principal, database, body, precision)

    async def influx_write(self, request: web.Request) -> web.StreamResponse:
        """InfluxDB 1.x `/write?db=`: no auth header needed (runs as root), precision always ns."""
        with self._measured("write") as measured:
            body = await self._received(request, measured, self.limits.write_body_bytes, self.write_pool)
            root = self.auth.users.get(ROOT) or UserInfo(ROOT)
            principal = Principal(user=root, tenant=DEFAULT_TENANT, role="owner")
            database = request.query.get("db") or DEFAULT_DATABASE
            return await self._write(measured, principal, database, body, "ns")

    # queries -------------------------------------------------------------------------------------------------

    async def sql(self, request: web.Request) -> web.StreamResponse:
        with self._measured("api_v1_sql") as measured:
            body = await self._received(request, measured, self.limits.query_body_bytes, self.query_pool)
            tenant = request.query.get("tenant") or DEFAULT_TENANT
            principal = self.auth.authenticate(request.headers.get("Authorization"), tenant)
            fmt = format_from_accept(request.headers.get("Accept"))
            response_coding = encoding.accept_encoding(request.headers.get("Accept-Encoding"))
            database = request.query.get("db") or DEFAULT_DATABASE
            chunked = request.query.get("chunked", "false").lower() == "true"
            sql = body.decode("utf-8", errors="replace")
            handled = await self._blocking(self.query_pool, self.auth.handle_statement, principal, sql)
            if handled:
                measured.failed = False
                return web.Response(status=200, headers={"Content-Type": fmt.content_type})
            if system_tables.mentions_system_table(sql):
                self.auth.require_password_changed(principal)
                result = await self._blocking(self.query_pool, system_tables.query, self.auth, principal, sql)
            else:
                self.auth.check_sql(principal, database, sql)
                result = await self._blocking(self.query_pool, self.engine.execute, tenant, database, sql)
            response, measured.bytes_out = await self._send_result(request, fmt, result, chunked, response_coding)
            measured.failed = response.status >= 400
            return response

    async def _send_result(
        self, request: web.Request, fmt: ResultFormat, result: Any, chunked: bool, coding: str | None
    ) -> tuple[web.StreamResponse, int]:
        """Render and send one result; (response, body bytes sent)."""
        schema: pa.Schema = result.schema
        pieces = _pieces(fmt, schema, iter(result.batches), chunked)
        headers = {"Content-Type": fmt.content_type}
        if coding is not None:
            headers["Content-Encoding"] = coding
        buffered: list[bytes] = []
        size = 0
        encoder = encoding.StreamEncoder(coding)
        while True:
            piece = await self._blocking(
                self.query_pool, next, pieces, None
            )  # DbError before the first byte → error response
            if piece is None:
                body = encoding.encode(b"".join(buffered), coding)
                return web.Response(status=200, body=body, headers=headers), len(body)
            buffered.append(piece)
            size += len(piece)
            if encoder.streams and size > STREAM_AFTER_BYTES:
                break
        response = web.StreamResponse(status=200, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0
        for piece in buffered:
            out = encoder.feed(piece)
            await response.write(out)
            sent += len(out)
        while True:
            try:
                piece = await self._blocking(self.query_pool, next, pieces, None)
            except Exception as exc:  # the status line is gone: the error goes into the body, as CnosDB does
                if not isinstance(exc, DbError):
                    log.exception("streaming a result failed")
                error = exc if isinstance(exc, DbError) else internal(f"{type(exc).__name__}: {exc}")
                piece = orjson.dumps(error.to_json())
                out = encoder.feed(piece)
                await response.write(out)
                sent += len(out)
                break
            if piece is None:
                break
            out = encoder.feed(piece)
            await response.write(out)
            sent += len(out)
        out = encoder.finish()
        await response.write(out)
        sent += len(out)
        await response.write_eof()
        return response, sent

    # misc ----------------------------------------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.StreamResponse:
        self.metrics.record("api_v1_ping", seconds=0.0, bytes_in=0, bytes_out=0, failed=False)
        body = orjson.dumps({"version": PING_VERSION, "status": "healthy"})
        return web.Response(status=200, body=body, headers={"Content-Type": "application/json"})

    async def prometheus(self, request: web.Request) -> web.StreamResponse:
        stats = await self._blocking(self.query_pool, self.engine.stats)
        text = self.metrics.render(stats)
        return web.Response(status=200, body=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4"})


def _pieces(fmt: ResultFormat, schema: pa.Schema, batches: Iterator[pa.RecordBatch], chunked: bool) -> Iterator[bytes]:
    """Body pieces of a result. Without `chunked` the bytes equal CnosDB's one-shot rendering of all batches;
    with it, each non-empty batch is rendered on its own (header only on the first), as CnosDB's stream does."""
    if not chunked:
        yield from render(fmt, schema, batches)
        return
    first = True
    for batch in batches:
        if batch.num_rows == 0:
            continue
        renderer = Renderer(fmt, schema, with_header=first)
        piece = renderer.feed(batch) + renderer.finish()
        first = False
        if piece:
            yield piece
    if first:  # no rows at all: the header alone, as without `chunked`
        yield from render(fmt, schema, ())


API_KEY = web.AppKey("api", HttpApi)


def make_app(engine: EngineLike, auth: AuthStore, limits: Limits | None = None) -> web.Application:
    """The aiohttp application serving CnosDB's HTTP API over `engine`."""
    api = HttpApi(engine, auth, limits or Limits())
    # aiohttp's own body limit is replaced by the per-route limits above, and bodies reach the handlers still
    # encoded so that decoding can be bounded (a small gzip body may inflate to gigabytes).
    app = web.Application(
        client_max_size=max(api.limits.write_body_bytes, api.limits.query_body_bytes) + 1,
        handler_args={"auto_decompress": False, "keepalive_timeout": api.limits.idle_timeout_s},
    )
    app[API_KEY] = api

    async def stop_threads(_app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, api.shutdown)

    app.on_cleanup.append(stop_threads)
    app.router.add_route("*", "/{tail:.*}", api.dispatch)
    return app
