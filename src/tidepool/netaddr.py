"""`HOST:PORT` addresses as the command line takes them (`--listen`, `--brokers`, `--db-url`), for every component."""

from __future__ import annotations


def split_host_port(address: str, default_host: str) -> tuple[str, int]:
    """`host:port` as (host, port): an IPv6 host may stand in brackets (`[::1]:9092`), an empty host is
    `default_host`. ValueError if the address does not end in `:PORT` with a decimal port."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]") or default_host, int(port)
