"""Tiny synchronous HTTP helpers for talking to the servers under test (stdlib only, one call at a time)."""

from __future__ import annotations

import urllib.error
import urllib.request


class HttpResult:
    """Status, headers and body of one response (error statuses included, never raised)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def request(
    url: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
    timeout: float = 30.0,
) -> HttpResult:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpResult(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as err:
        return HttpResult(err.code, dict(err.headers.items()), err.read())


def answers(url: str, expect: tuple[int, ...] = (200, 204)) -> bool:
    """True if GET `url` answers with one of `expect` right now."""
    try:
        return request(url, timeout=1.0).status in expect
    except OSError:
        return False
