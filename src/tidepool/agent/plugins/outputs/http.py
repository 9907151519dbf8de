"""outputs.http — POST serialized metrics to a URL (the tutorial's path into CnosDB's /api/v1/write).

Options (Telegraf's defaults):
  url                       "http://127.0.0.1:8080/telegraf"
  method                    POST | PUT | PATCH (default POST)
  timeout                   request timeout (default 5s; 0 means 5s)
  username, password        HTTP Basic auth when either is non-empty (root/"" → `Basic cm9vdDo=`)
  headers                   table of extra headers (override Content-Type/User-Agent)
  content_encoding          identity | gzip
  use_batch_format          true: one request per batch; false: one request per metric
  non_retryable_statuscodes statuses that drop the batch with a log line instead of retrying (e.g. [409, 413])
  idle_conn_timeout         how long an idle keep-alive connection is kept (0: client default)
  data_format               serializer (default influx) and its options
Accepted, not acted on: max_idle_conn, max_idle_conn_per_host, response_timeout, tls_*, insecure_skip_verify,
http_proxy_url, use_system_proxy, client_id, client_secret, token_url, scopes, cookie_auth_*, aws_*, region,
local_address. A 2xx answer is success; any other status, or a network error, keeps the batch for a retry.
"""

from __future__ import annotations

import base64
import gzip
from typing import Any

from tidepool import __version__
from tidepool.agent.options import ConfigError, PluginOptions
from tidepool.agent.plugins import Serializer, WriteError
from tidepool.agent.plugins.outputs import OUTPUTS
from tidepool.lineproto import Metric
from tidepool.logs import get_logger

log = get_logger("agent")

_ACCEPTED = (
    "max_idle_conn", "max_idle_conn_per_host", "response_timeout", "tls_ca", "tls_cert", "tls_key",
    "tls_key_pwd", "tls_server_name", "tls_min_version", "tls_enable", "insecure_skip_verify", "http_proxy_url",
    "use_system_proxy", "client_id", "client_secret", "token_url", "scopes", "cookie_auth_url",
    "cookie_auth_method", "cookie_auth_username", "cookie_auth_password", "cookie_auth_headers",
    "cookie_auth_body", "cookie_auth_renewal", "aws_service", "region", "access_key", "secret_key", "role_arn",
    "profile", "shared_credential_file", "token", "local_address", "google_application_credentials",
)  # fmt: skip


class HTTPOutput:
    def __init__(
        self,
        serializer: Serializer,
        *,
        url: str,
        method: str = "POST",
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
        username: str = "",
        password: str = "",
        content_encoding: str = "identity",
        use_batch_format: bool = True,
        non_retryable: frozenset[int] = frozenset(),
        idle_conn_timeout: float = 0.0,
    ) -> None:
        self.serializer = serializer
        self.url = url
        self.method = method
        self.timeout = timeout
        self.content_encoding = content_encoding
        self.use_batch_format = use_batch_format
        self.non_retryable = non_retryable
        self.idle_conn_timeout = idle_conn_timeout
        self.headers = {
            "User-Agent": f"tidepool-agent/{__version__} (Telegraf-compatible)",
            "Content-Type": "text/plain; charset=utf-8",
        }
        if username or password:
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        if content_encoding == "gzip":
            self.headers["Content-Encoding"] = "gzip"
        self.headers.update(headers or {})
        self._session: Any = None

    async def connect(self) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(
            keepalive_timeout=self.idle_conn_timeout if self.idle_conn_timeout > 0 else 15.0
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout), auto_decompress=True
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def write(self, metrics: list[Metric]) -> None:
        if self.use_batch_format:
            await self._send(self.serializer.serialize_batch(metrics))
            return
        for metric in metrics:
            try:
                body = self.serializer.serialize(metric)
            except ValueError as exc:
                log.debug("could not serialize metric: %s", exc)
                continue
            await self._send(body)

    async def _send(self, body: bytes) -> None:
        import aiohttp

        if not body:
            return
        if self._session is None:
            await self.connect()
        if self.content_encoding == "gzip":
            body = gzip.compress(body, compresslevel=6)
        try:
            async with self._session.request(self.method, self.url, data=body, headers=self.headers) as response:
                status = response.status
                if 200 <= status < 300:
                    await response.read()
                    return
                text = (await response.read())[:1024].decode("utf-8", "replace").split("\n", 1)[0]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise WriteError(f'{self.method.title()} "{self.url}": {exc or type(exc).__name__}') from None
        if status in self.non_retryable:
            log.error("Received non-retryable status %d. Metrics are lost. body: %s", status, text)
            return
        raise WriteError(f"when writing to [{self.url}] received status code: {status}. body: {text}")


@OUTPUTS.add("http")
def make_http_output(opts: PluginOptions, serializer: Serializer) -> HTTPOutput:
    method = opts.string("method", "POST").upper()
    if method not in ("POST", "PUT", "PATCH"):
        raise ConfigError(f"plugin {opts.plugin}: invalid method [{method}]: only POST, PUT and PATCH are allowed")
    encoding = opts.string("content_encoding", "identity").lower()
    if encoding not in ("identity", "gzip", ""):
        raise ConfigError(f"plugin {opts.plugin}: unsupported content_encoding {encoding!r} (identity or gzip)")
    timeout = opts.duration("timeout", 5.0)
    opts.accept(*_ACCEPTED)
    return HTTPOutput(
        serializer,
        url=opts.string("url", "http://127.0.0.1:8080/telegraf"),
        method=method,
        timeout=timeout if timeout > 0 else 5.0,
        headers=opts.string_table("headers"),
        username=opts.string("username"),
        password=opts.string("password"),
        content_encoding=encoding or "identity",
        use_batch_format=opts.boolean("use_batch_format", True),
        non_retryable=frozenset(opts.integers("non_retryable_statuscodes")),
        idle_conn_timeout=opts.duration("idle_conn_timeout", 0.0),
    )
