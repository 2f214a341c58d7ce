"""Small files that make a decoder work hard, written byte by byte (issue 13): a big canvas and
many one-pixel frames. For the tests of ``assets.media.budget`` and ``bin/bench validation``; they
are small (about 23 bytes a GIF frame), their cost is in what a decoder would paint.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

CANVAS = 6000


def gif_of_pixels(frames: int, *, side: int = CANVAS) -> bytes:
    """A GIF with a ``side`` x ``side`` canvas and ``frames`` frames of one pixel each."""
    header = b"GIF89a" + struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    # Graphic control (delay 1/100 s), a 1x1 image at (0, 0), LZW: clear, 0, end in 3-bit codes.
    frame = b"\x21\xf9\x04\x00\x01\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
    frame += b"\x02\x02\x44\x01\x00"
    return header + frame * frames + b"\x3b"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def apng_of_pixels(frames: int, *, side: int = CANVAS) -> bytes:
    """An APNG: a ``side`` x ``side`` grey default picture, then ``frames - 1`` 1x1 frames."""

    def fctl(sequence: int, width: int, height: int) -> bytes:
        return _png_chunk(
            b"fcTL", struct.pack(">IIIIIHHBB", sequence, width, height, 0, 0, 1, 100, 0, 0)
        )

    rows = zlib.compress(bytes(side + 1) * side, 9)  # filter 0, black
    out = [
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)),
    ]
    out += [_png_chunk(b"acTL", struct.pack(">II", frames, 0)), fctl(0, side, side)]
    out.append(_png_chunk(b"IDAT", rows))
    pixel = zlib.compress(b"\x00\x80")
    sequence = 1
    for _ in range(frames - 1):
        out.append(fctl(sequence, 1, 1))
        out.append(_png_chunk(b"fdAT", struct.pack(">I", sequence + 1) + pixel))
        sequence += 2
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


def _riff(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")


def webp_of_pixels(frames: int, *, side: int = CANVAS) -> bytes:
    """An animated WebP with a ``side`` x ``side`` canvas and ``frames`` 1x1 lossless frames."""
    still = io.BytesIO()
    Image.new("RGB", (1, 1), "white").save(still, "WEBP", lossless=True)
    data = still.getvalue()
    vp8l = data[12:]  # the one VP8L chunk after "RIFF", size, "WEBP"
    vp8x = struct.pack("<B3x", 0x02) + (side - 1).to_bytes(3, "little") * 2  # animation
    anim = struct.pack("<IH", 0xFFFFFFFF, 0)
    anmf = bytes(6) + (0).to_bytes(3, "little") * 2 + (1).to_bytes(3, "little") + b"\0"
    frame = _riff(b"ANMF", anmf + vp8l)
    body = b"WEBP" + _riff(b"VP8X", vp8x) + _riff(b"ANIM", anim) + frame * frames
    return b"RIFF" + struct.pack("<I", len(body)) + body
