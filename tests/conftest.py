"""Shared fixtures: free loopback ports and the `tidepool` command of this checkout."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tidepool_cmd() -> list[str]:
    """argv prefix that runs this checkout's tidepool CLI in a fresh interpreter."""
    return [sys.executable, "-m", "tidepool"]
