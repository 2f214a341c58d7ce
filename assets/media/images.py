"""Images: their size as displayed, read from the headers, and their decoding (PNG by hand,
streamed; JPEG at 1/8 scale; GIF frame by frame at each frame's own size; WebP and HEIC whole)."""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

import pillow_heif
from PIL import ExifTags, Image, ImageFile

from assets.media.budget import GifFrame, gif_layout
from assets.media.limits import (
    _CHUNK_BYTES,
    FORMATS,
    LimitViolation,
    MediaInfo,
    MediaRejected,
    check_limits,
)

# EXIF orientations 5 to 8 turn the picture a quarter: the displayed width is the stored height.
_QUARTER_TURNS = {5, 6, 7, 8}


def header_exif(image: Image.Image) -> Image.Exif:
    """The EXIF block read with the header, without decoding pixels; empty if absent or damaged.

    ``Image.getexif()`` decodes a whole PNG when its EXIF chunk is not before the pixel data;
    EXIF after the pixels is rare and ignored here. A damaged EXIF block does not make the
    picture unusable, so it counts as absent rather than making the file unreadable.
    """
    return _exif(image.info.get("exif"))


def probe_image(fileobj: BinaryIO, info: MediaInfo) -> MediaInfo:
    measured = _measure_image(fileobj, info)
    if not check_limits(measured):  # a picture refused anyway is not worth decoding
        _decode_image(fileobj, measured)
    return measured


def _measure_image(fileobj: BinaryIO, info: MediaInfo) -> MediaInfo:
    fileobj.seek(0)
    if info.format == "png":
        # Pillow would read every chunk before the pixels into memory; the PNG is walked here.
        width, height, exif = _png_header(fileobj)
        orientation = exif.get(ExifTags.Base.Orientation)
    else:
        # Pillow refuses a decompression bomb at open() only above twice MAX_IMAGE_PIXELS and
        # merely warns below that; changing the warning into an error would change process-wide
        # state under a threaded server. Decoding checks the limit itself (_decode_image).
        try:
            image = Image.open(fileobj, formats=[FORMATS[info.format].pillow])
        except Image.DecompressionBombError as exc:
            raise MediaRejected([_too_many_pixels(2 * (Image.MAX_IMAGE_PIXELS or 0))]) from exc
        with image:  # leaving the block does not close the caller's file; image.close() would
            width, height = image.size
            orientation = header_exif(image).get(ExifTags.Base.Orientation)
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    return replace(info, width=width, height=height)


def _decode_image(fileobj: BinaryIO, info: MediaInfo) -> None:
    """Decode every pixel (``OSError`` and friends when the picture is damaged or incomplete)."""
    if (limit := Image.MAX_IMAGE_PIXELS) and (info.width or 0) * (info.height or 0) > limit:
        raise MediaRejected([_too_many_pixels(limit, info)])
    fileobj.seek(0)
    if info.format == "png":
        _decode_png(fileobj)
        return
    if info.format == "heic":
        # libheif straight, without Pillow's copy of the decoded picture. The primary picture
        # only: a HEIC's other images are its thumbnails and depth maps.
        heif = pillow_heif.open_heif(fileobj, convert_hdr_to_8bit=True)
        heif[heif.primary_index].load()
        return
    if info.format == "gif":
        _decode_gif(fileobj)
        return
    if info.format == "webp":
        _decode_webp(fileobj)
        return
    with Image.open(fileobj, formats=[FORMATS[info.format].pillow]) as image:
        if info.format == "jpeg":
            # libjpeg reads every coefficient but builds a picture 64 times smaller.
            image.draft(None, (math.ceil(image.width / 8), math.ceil(image.height / 8)))
            image.load()
        else:
            image.load()


def _decode_gif(fileobj: BinaryIO) -> None:
    """Decode each frame of a GIF at its own size, never onto the canvas.

    Whether the file is whole is in each frame's LZW data; painting the frames onto the canvas
    (as Pillow's loader does, converting the canvas to RGB on every frame) costs the canvas per
    frame and adds nothing. Memory: one frame's pixels; time: the frames' pixels.
    """
    for frame in gif_layout(fileobj).frames:
        if frame.width and frame.height:
            _GifFrame(fileobj, frame).load()


def _decode_webp(fileobj: BinaryIO) -> None:
    """Decode a WebP's picture, or each frame of an animated one at its own size.

    Through OpenCV's libwebp rather than Pillow's: Pillow composites every frame onto an RGBA
    canvas and copies it twice (589 MB and 3.6 s for a 6000 x 6000 still). OpenCV decodes to
    BGR, then shrinks to 1/8 (about 3 bytes a pixel at the peak); a damaged picture decodes to
    nothing.
    """
    import cv2  # imported on first use: OpenCV is large
    import numpy

    fileobj.seek(0)
    data = fileobj.read()  # libwebp takes the whole file; under the 30 MB image limit
    for picture in _webp_pictures(data):
        pixels = numpy.frombuffer(picture, numpy.uint8)
        if cv2.imdecode(pixels, cv2.IMREAD_REDUCED_COLOR_8) is None:
            raise OSError("a WebP picture does not decode")


def _webp_pictures(data: bytes) -> Iterator[bytes]:
    """The file itself, or for an animated WebP each frame (``ANMF``) as a WebP of its own."""
    chunks = []
    at = 12  # after "RIFF", the RIFF size and "WEBP"
    while at + 8 <= len(data):
        fourcc, length = struct.unpack_from("<4sI", data, at)
        chunks.append((fourcc, at + 8, length))
        at += 8 + length + (length & 1)
    if not chunks or chunks[0][0] != b"VP8X" or not data[chunks[0][1]] & 0x02:
        yield data
        return
    frames = [(offset, length) for fourcc, offset, length in chunks if fourcc == b"ANMF"]
    if not frames:
        raise EOFError("animated WebP without frames")
    for offset, length in frames:
        if offset + length > len(data) or length < 16:
            raise EOFError("WebP frame is cut short")
        size = data[offset + 6 : offset + 12]  # width - 1 and height - 1, 24 bits each
        payload = data[offset + 16 : offset + length]
        alpha = 0x10 if payload[4:8] == b"ALPH" or payload[:4] == b"ALPH" else 0
        vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([alpha, 0, 0, 0]) + size
        body = b"WEBP" + vp8x + payload
        yield b"RIFF" + struct.pack("<I", len(body)) + body


class _GifFrame(ImageFile.ImageFile):
    """One frame of a GIF as a picture of its own size, for Pillow's LZW decoder."""

    format = "GIF"

    def __init__(self, fileobj: BinaryIO, frame: GifFrame) -> None:
        self._frame = frame
        super().__init__(fileobj)

    def _open(self) -> None:
        frame = self._frame
        assert self.fp is not None
        self.fp.seek(frame.data_offset)
        (bits,) = self.fp.read(1) or b"\0"
        self._mode, self._size = "L", (frame.width, frame.height)
        extent = (0, 0, frame.width, frame.height)
        args = (bits, frame.interlaced, -1)  # -1: no transparent colour
        self.tile = [ImageFile._Tile("gif", extent, frame.data_offset + 1, args)]


def _too_many_pixels(limit: int, info: MediaInfo | None = None) -> LimitViolation:
    if info is None:
        measured = f"The image has more than {limit:,} pixels"
    else:
        dims = f"{info.width} × {info.height} px"  # noqa: RUF001 (a real multiplication sign)
        measured = f"The image is {dims} = {(info.width or 0) * (info.height or 0):,} pixels"
    message = f"{measured}; the portal opens images of at most {limit:,} pixels."
    return LimitViolation("image_too_large", message)


def _exif(raw: object) -> Image.Exif:
    exif = Image.Exif()
    if isinstance(raw, bytes) and raw:
        try:
            exif.load(raw)
        except (SyntaxError, struct.error, ValueError, EOFError):
            return Image.Exif()
    return exif


# PNG (ISO/IEC 15948): channels per colour type, and the bit depths each allows.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
# Adam7 interlacing: each pass's first column and row, and its column and row steps.
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
_MAX_PNG_EXIF = 1 << 20
_PNG_CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}  # a decoder refuses any other critical chunk


@dataclass(frozen=True)
class _PngChunk:
    type: bytes
    offset: int  # of the chunk's length field
    length: int

    @property
    def data_offset(self) -> int:
        return self.offset + 8


def _png_chunks(fileobj: BinaryIO) -> Iterator[_PngChunk]:
    """The chunks of a PNG up to IEND, read from their headers (the file position moves)."""
    offset = 8
    while True:
        fileobj.seek(offset)
        header = fileobj.read(8)
        if len(header) < 8:
            raise EOFError("PNG ends before IEND")
        length, chunk_type = struct.unpack(">I4s", header)
        yield _PngChunk(chunk_type, offset, length)
        if chunk_type == b"IEND":
            return
        offset += 12 + length


def _png_header(fileobj: BinaryIO) -> tuple[int, int, Image.Exif]:
    """Width, height and EXIF of a PNG, from the chunks before its pixel data."""
    chunks = _png_chunks(fileobj)
    ihdr = next(chunks)
    if ihdr.type != b"IHDR" or ihdr.length != 13:
        raise SyntaxError("PNG does not start with its header chunk")
    fileobj.seek(ihdr.data_offset)
    width, height = struct.unpack(">II", fileobj.read(8))
    if not width or not height:
        raise SyntaxError("PNG has no pixels")
    exif = Image.Exif()
    for chunk in chunks:
        if chunk.type == b"IDAT":
            break
        if chunk.type == b"eXIf" and chunk.length <= _MAX_PNG_EXIF:
            fileobj.seek(chunk.data_offset)
            exif = _exif(fileobj.read(chunk.length))
    return width, height, exif


def _decode_png(fileobj: BinaryIO) -> None:
    """Check every chunk's CRC and that the pixel data inflates to exactly the picture's rows.

    The pixel stream is inflated 1 MiB at a time and counted, never kept; each row's filter type
    byte is checked. Raises ``SyntaxError`` or ``zlib.error`` on damage.
    """
    chunks = list(_png_chunks(fileobj))  # raises EOFError when IEND is missing
    fileobj.seek(chunks[0].data_offset)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", fileobj.read(13))
    if depth not in _PNG_DEPTHS.get(colour, ()) or interlace not in (0, 1):
        raise SyntaxError("PNG header names an impossible pixel format")
    rows = _PngRows(width, height, _PNG_CHANNELS[colour] * depth, interlaced=interlace == 1)
    inflater = zlib.decompressobj()
    idat = [index for index, chunk in enumerate(chunks) if chunk.type == b"IDAT"]
    if not idat or idat != list(range(idat[0], idat[0] + len(idat))):
        raise SyntaxError("PNG pixel data is missing or not in one run of IDAT chunks")
    if colour == 3 and b"PLTE" not in {chunk.type for chunk in chunks[: idat[0]]}:
        raise SyntaxError("PNG with a palette has no palette before its pixels")
    if unknown := {c.type for c in chunks if c.type[:1].isupper()} - _PNG_CRITICAL:
        raise SyntaxError(f"PNG has critical chunks no decoder knows: {unknown}")
    for chunk in chunks:
        fileobj.seek(chunk.data_offset)
        crc = zlib.crc32(chunk.type)
        remaining = chunk.length
        while remaining:
            data = fileobj.read(min(remaining, _CHUNK_BYTES))
            if not data:
                raise EOFError("PNG chunk is cut short")
            remaining -= len(data)
            crc = zlib.crc32(data, crc)
            if chunk.type == b"IDAT":
                while data:
                    rows.feed(inflater.decompress(data, _CHUNK_BYTES))
                    data = inflater.unconsumed_tail
        if fileobj.read(4) != crc.to_bytes(4, "big"):
            raise SyntaxError(f"PNG {chunk.type!r} chunk fails its CRC")
    rows.feed(inflater.flush())
    rows.finish()


class _PngRows:
    """Counts a PNG's inflated pixel stream against the rows its header declares."""

    def __init__(self, width: int, height: int, bits_per_pixel: int, *, interlaced: bool) -> None:
        passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
        self._rows: list[tuple[int, int]] = []  # (bytes per row with its filter byte, rows)
        for x0, y0, dx, dy in passes:
            columns, count = math.ceil((width - x0) / dx), math.ceil((height - y0) / dy)
            if columns > 0 and count > 0:
                self._rows.append((1 + math.ceil(columns * bits_per_pixel / 8), count))
        self.expected = sum(stride * count for stride, count in self._rows)
        self._seen = 0
        self._filters = self._filter_offsets()
        self._next_filter: int | None = next(self._filters, None)

    def _filter_offsets(self) -> Iterator[int]:
        start = 0
        for stride, count in self._rows:
            yield from range(start, start + stride * count, stride)
            start += stride * count

    def feed(self, data: bytes) -> None:
        end = self._seen + len(data)
        if end > self.expected:
            raise SyntaxError("PNG holds more pixel data than its size")
        while self._next_filter is not None and self._next_filter < end:
            if data[self._next_filter - self._seen] > 4:
                raise SyntaxError("PNG row has an unknown filter type")
            self._next_filter = next(self._filters, None)
        self._seen = end

    def finish(self) -> None:
        if self._seen != self.expected:
            raise SyntaxError(f"PNG holds {self._seen} of {self.expected} bytes of pixel data")
