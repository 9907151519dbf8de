"""tidepool.db.http: CnosDB's HTTP API (`/api/v1/write`, `/api/v1/sql`, `/api/v1/ping`, `/write`, `/metrics`).

`serve` is what `tidepool db` awaits: it binds the port, answers until cancelled, then closes its connections.
The handlers live in `server`, body codings in `encoding`, the counters of `/metrics` in `metrics`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tidepool.db.http.server import EngineLike, Limits, make_app

__all__ = ["EngineLike", "Limits", "make_app", "serve"]


async def serve(
    engine: EngineLike,
    host: str,
    port: int,
    *,
    auth_enabled: bool = False,
    max_body_bytes: int | None = None,
    data_dir: Path | None = None,
) -> None:
    """Serve the HTTP API for `engine` on host:port until cancelled.

    `max_body_bytes` limits line-protocol write bodies (CnosDB's default, 160 MiB, when None); SQL bodies are
    limited to CnosDB's 16 MiB or `max_body_bytes`, whichever is smaller. Users and roles persist in
    `data_dir/auth.json` (in memory only when `data_dir` is None).
    """
    from aiohttp import web

    from tidepool.db.auth import AuthStore
    from tidepool.logs import get_logger

    limits = Limits()
    if max_body_bytes is not None:
        limits.write_body_bytes = max_body_bytes
        limits.query_body_bytes = min(limits.query_body_bytes, max_body_bytes)
    auth = AuthStore(data_dir, auth_enabled=auth_enabled)
    app = make_app(engine, auth, limits)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    await site.start()
    get_logger("db.http").info(
        "HTTP API on http://%s:%d (auth %s, write body limit %d bytes)",
        host,
        port,
        "enabled" if auth_enabled else "disabled",
        limits.write_body_bytes,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
