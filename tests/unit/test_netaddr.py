"""HOST:PORT parsing shared by `broker --listen`, `db --listen` and `up`."""

from __future__ import annotations

import pytest

from tidepool.netaddr import split_host_port


def test_host_and_port_are_split_at_the_last_colon() -> None:
    assert split_host_port("10.0.0.5:9092", default_host="127.0.0.1") == ("10.0.0.5", 9092)


def test_bracketed_ipv6_host_loses_its_brackets() -> None:
    assert split_host_port("[::1]:8902", default_host="127.0.0.1") == ("::1", 8902)


def test_empty_host_is_the_default_host() -> None:
    assert split_host_port(":9092", default_host="0.0.0.0") == ("0.0.0.0", 9092)


@pytest.mark.parametrize("address", ["localhost", "localhost:", "localhost:http", "host:-1"])
def test_address_without_a_decimal_port_is_rejected(address: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        split_host_port(address, default_host="127.0.0.1")
