"""Kafka framing: every message is an int32 size followed by that many bytes.

`FrameBuffer` accumulates received bytes and hands out whole frames; it owns the request size limit, so a peer
announcing an absurd size is refused before any memory is reserved for it.
"""

from __future__ import annotations

import struct

_SIZE = struct.Struct(">i")


class FrameTooLarge(Exception):
    """The peer announced a frame larger than the limit (or a negative size): the connection must be closed."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class FrameBuffer:
    """Bytes received so far on one connection; invariant: `_buf[_pos:]` is the unconsumed tail."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next complete frame body (without its size prefix), or None until more bytes arrive."""
        available = len(self._buf) - self._pos
        if available < 4:
            return None
        (size,) = _SIZE.unpack_from(self._buf, self._pos)
        if size < 0 or size > self.max_frame_bytes:
            raise FrameTooLarge(size, self.max_frame_bytes)
        if available < 4 + size:
            return None
        start = self._pos + 4
        frame = bytes(self._buf[start : start + size])
        self._pos = start + size
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        return frame

    def pending_bytes(self) -> int:
        return len(self._buf) - self._pos
