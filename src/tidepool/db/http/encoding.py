"""HTTP body codings CnosDB accepts and produces: gzip, deflate, br, zstd, snappy, lz4 and identity.

Names match exactly as CnosDB matches them (common/http_protocol/src/encoding.rs): `Content-Encoding` must be one
of the seven names, and the first supported name in `Accept-Encoding` is used for the response. `deflate` is raw
DEFLATE (no zlib header) as in CnosDB's flate2 `DeflateDecoder`; a zlib-wrapped body is accepted too. snappy and
lz4 are their framed formats. Decoding stops with 413 once the decoded body passes the limit (gzip and deflate
are decoded incrementally; the others are checked after decoding).
"""

from __future__ import annotations

import zlib

from tidepool.db.errors import DbError

ENCODINGS = ("gzip", "deflate", "br", "zstd", "snappy", "lz4", "identity")
BAD_REQUEST = 400


class BodyTooLarge(Exception):
    """The (decoded) body is over the limit; answered with an empty 413 as CnosDB does."""


def content_encoding(header: str | None) -> str | None:
    """The request body's coding, or CnosDB's 400 for a name it does not know."""
    if header is None:
        return None
    if header not in ENCODINGS:
        raise DbError("040005", f"Invalid header: content encoding not support: {header}", BAD_REQUEST)
    return header


def accept_encoding(header: str | None) -> str | None:
    """The response coding: the first name CnosDB knows in `Accept-Encoding`; 400 when there is none."""
    if header is None:
        return None
    for name in (part.strip() for part in header.split(",")):
        if name in ENCODINGS:
            return name
    raise DbError(
        "040005",
        f"Invalid header: accept encoding not support: {header}, only support: {', '.join(ENCODINGS)}",
        BAD_REQUEST,
    )


def _decode_error(exc: Exception) -> DbError:
    return DbError("040013", f"Error decode request: {exc}", BAD_REQUEST)


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge
    out += inflater.flush()
    if len(out) > limit:
        raise BodyTooLarge
    if not inflater.eof:
        raise zlib.error("unexpected end of compressed stream")
    return out


def decode(body: bytes, coding: str | None, limit: int) -> bytes:
    """The decoded body; raises BodyTooLarge past `limit` bytes, DbError 040013 for a corrupt body."""
    if coding is None or coding == "identity":
        return body
    try:
        if coding == "gzip":
            return _inflate(body, 16 + zlib.MAX_WBITS, limit)
        if coding == "deflate":
            try:
                return _inflate(body, -zlib.MAX_WBITS, limit)
            except zlib.error:
                return _inflate(body, zlib.MAX_WBITS, limit)
    except zlib.error as exc:
        raise _decode_error(exc) from None
    import cramjam

    codec = {"br": cramjam.brotli, "zstd": cramjam.zstd, "snappy": cramjam.snappy, "lz4": cramjam.lz4}[coding]
    try:
        out = bytes(codec.decompress(body))
    except (cramjam.DecompressionError, ValueError, OSError) as exc:
        raise _decode_error(exc) from None
    if len(out) > limit:
        raise BodyTooLarge
    return out


class StreamEncoder:
    """Encodes a response piece by piece; gzip and deflate stream, the other codings are applied at the end."""

    def __init__(self, coding: str | None) -> None:
        self.coding = coding
        self._zlib = None
        self._held: list[bytes] = []
        if coding == "gzip":
            self._zlib = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._zlib = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)

    @property
    def streams(self) -> bool:
        return self.coding in (None, "identity", "gzip", "deflate")

    def feed(self, piece: bytes) -> bytes:
        if self.coding is None or self.coding == "identity":
            return piece
        if self._zlib is not None:
            return self._zlib.compress(piece) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        self._held.append(piece)
        return b""

    def finish(self) -> bytes:
        if self._zlib is not None:
            return self._zlib.flush()
        if self._held:
            return encode(b"".join(self._held), self.coding)
        return b""


def encode(body: bytes, coding: str | None) -> bytes:
    """`body` in the response coding chosen by `accept_encoding`."""
    if coding is None or coding == "identity":
        return body
    if coding == "gzip":
        compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return compressor.compress(body) + compressor.flush()
    if coding == "deflate":
        compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        return compressor.compress(body) + compressor.flush()
    import cramjam

    codec = {"br": cramjam.brotli, "zstd": cramjam.zstd, "snappy": cramjam.snappy, "lz4": cramjam.lz4}[coding]
    return bytes(codec.compress(body))
