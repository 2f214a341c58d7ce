"""What decoding a file would cost, counted from its structure before any decoder runs.

A small file can make a decoder work without end: a 7 KB GIF with a 6000 x 6000 canvas and 300
one-pixel frames had Pillow paint 300 full canvases (19 s, 240 MB). So the frames of a GIF,
WebP or APNG and the samples of an MP4 or MOV are counted, with their canvas, from the bytes
alone (GIF blocks, RIFF chunks, PNG chunks, ISO boxes; a walk that reads no pixel), and a file
is refused before decoding when a player would have to paint more than ``MAX_DECODE_PIXELS``
(frames x canvas) or when it has more than ``MAX_FRAMES`` frames. A walk that cannot finish
(the file is cut short) raises ``EOFError``: the file is unreadable.

The limits keep every accepted file within about 2 s and 200 MB to validate on the portal's
machine (``bin/bench validation``) and leave room for any real portrait animation: 6000 x 6000
is one 36-megapixel still, 1080 x 1350 a 100-frame loop.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from assets.media.limits import (
    FORMATS,
    LIMITS,
    LimitViolation,
    MediaInfo,
    MediaRejected,
    _dimension_violations,
)

# Frames x canvas pixels a player paints to show the whole file once.
MAX_DECODE_PIXELS = 250_000_000
# Frames of an animation, and samples of a video track (60 fps x 15 s is 900).
MAX_FRAMES = 10_000
# Samples of a video track: 60 fps for 15 s is 900; a variable rate may run a little over.
MAX_VIDEO_FRAMES = 1_000
# A PNG's chunks (a real one has its header, a few metadata chunks and IDATs of 8 KiB or more:
# under 4,000 in 30 MB); more would only make the walk slow.
MAX_PNG_CHUNKS = 20_000


@dataclass(frozen=True)
class Cost:
    """What showing a file once takes: ``frames`` pictures of ``width`` x ``height``."""

    frames: int
    width: int
    height: int
    more_frames: bool = False  # the count stopped at MAX_FRAMES + 1

    @property
    def pixels(self) -> int:
        return self.frames * self.width * self.height


def check_budget(fileobj: BinaryIO, info: MediaInfo, *, filename: str) -> MediaInfo:
    """Raise ``MediaRejected`` (``decode_budget``) when decoding ``fileobj`` would cost more than
    the limits above. A video's size is read here too, so one over the video limits is refused
    with those limits' own messages before FFmpeg opens it; returns ``info`` with it.
    """
    counter = _COUNTERS.get(info.format)
    if counter is None:
        return info
    try:
        cost = counter(fileobj)
    finally:
        fileobj.seek(0)
    if cost is None:
        return info
    name = FORMATS[info.format].name
    limits = LIMITS[info.kind]
    sized = replace(info, width=cost.width, height=cost.height)
    if info.kind == "video":
        info = sized  # measured here before FFmpeg; the same numbers FFmpeg reads
    too_large = limits.side_px is not None and max(cost.width, cost.height) > limits.side_px.high
    too_many = limits.pixels is not None and cost.width * cost.height > limits.pixels.high
    if too_large or too_many:
        # Refused by the limits anyway: with their own words, and before a decoder allocates
        # the picture (a GIF's frames may also overflow its canvas, which players grow).
        raise MediaRejected(_dimension_violations(sized, limits))
    max_frames = MAX_VIDEO_FRAMES if info.kind == "video" else MAX_FRAMES
    if cost.more_frames or cost.frames > max_frames:
        count = f"more than {max_frames:,}" if cost.more_frames else f"{cost.frames:,}"
        message = (
            f"“{filename}” has {count} frames: over the limit of {max_frames:,} frames "
            f"the portal decodes in one {name} file."
        )
        raise MediaRejected([LimitViolation("decode_budget", message)])
    if cost.pixels > MAX_DECODE_PIXELS and info.kind == "image":
        frames = "1 frame" if cost.frames == 1 else f"{cost.frames:,} frames"
        size = f"{cost.width}×{cost.height}"  # noqa: RUF001 (a real multiplication sign)
        message = (
            f"“{filename}” has {frames} of {size}: {cost.pixels:,} pixels to decode, over the "
            f"limit of {MAX_DECODE_PIXELS:,} pixels to decode."
        )
        raise MediaRejected([LimitViolation("decode_budget", message)])
    return info


# --- GIF ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GifFrame:
    """One picture of a GIF: where it goes on the canvas and where its LZW data starts (the
    code size byte, then the sub-blocks)."""

    left: int
    top: int
    width: int
    height: int
    interlaced: bool
    data_offset: int


@dataclass(frozen=True)
class GifLayout:
    width: int  # the canvas, grown to hold every frame (as players and Pillow grow it)
    height: int
    frames: list[GifFrame]
    more_frames: bool


def gif_layout(fileobj: BinaryIO, max_frames: int = MAX_FRAMES) -> GifLayout:
    """The frames of a GIF, from its blocks; stops after ``max_frames + 1`` frames."""
    fileobj.seek(0)
    data = fileobj.read()  # a GIF is under the 30 MB image limit when this runs
    if len(data) < 13:
        raise EOFError("GIF ends in its header")
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames: list[GifFrame] = []
    while at < len(data):
        block = data[at]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: a label, then sub-blocks
            at = _skip_sub_blocks(data, at + 2)
        elif block == 0x2C:  # image descriptor
            if at + 10 > len(data):
                raise EOFError("GIF ends in an image descriptor")
            left, top, w, h, image_flags = struct.unpack_from("<HHHHB", data, at + 1)
            at += 10
            if image_flags & 0x80:
                at += 3 << ((image_flags & 7) + 1)
            frames.append(GifFrame(left, top, w, h, bool(image_flags & 0x40), at))
            width, height = max(width, left + w), max(height, top + h)
            at = _skip_sub_blocks(data, at + 1)  # after the LZW code size
            if len(frames) > max_frames:
                return GifLayout(width, height, frames, more_frames=True)
        else:
            at += 1  # a stray byte: decoders skip it too
    if not frames:
        raise EOFError("GIF has no picture")
    return GifLayout(width, height, frames, more_frames=False)


def _skip_sub_blocks(data: bytes, at: int) -> int:
    while True:
        if at >= len(data):
            raise EOFError("GIF ends inside a block")
        length = data[at]
        at += 1 + length
        if length == 0:
            return at


def _gif_cost(fileobj: BinaryIO) -> Cost:
    layout = gif_layout(fileobj)
    return Cost(len(layout.frames), layout.width, layout.height, layout.more_frames)


# --- WebP ---------------------------------------------------------------------------------------


def _riff_chunks(fileobj: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(fourcc, data offset, length) of the RIFF chunks in ``[start, end)``."""
    at = start
    while at + 8 <= end:
        fileobj.seek(at)
        fourcc, length = struct.unpack("<4sI", fileobj.read(8))
        yield fourcc, at + 8, length
        at += 8 + length + (length & 1)


def _webp_cost(fileobj: BinaryIO) -> Cost | None:
    """Canvas and frames of an animated WebP (``VP8X`` then ``ANMF`` chunks); None for a still
    one (one picture, its own size)."""
    fileobj.seek(0, 2)
    size = fileobj.tell()
    chunks = _riff_chunks(fileobj, 12, size)
    first = next(chunks, None)
    if first is None or first[0] != b"VP8X":
        return None
    fileobj.seek(first[1])
    header = fileobj.read(10)
    if len(header) < 10:
        raise EOFError("WebP ends in its header")
    if not header[0] & 0x02:  # no animation flag
        return None
    width = 1 + int.from_bytes(header[4:7], "little")
    height = 1 + int.from_bytes(header[7:10], "little")
    frames = 0
    for fourcc, _, _ in chunks:
        frames += fourcc == b"ANMF"
        if frames > MAX_FRAMES:
            return Cost(frames, width, height, more_frames=True)
    return Cost(max(frames, 1), width, height)


# --- APNG ---------------------------------------------------------------------------------------


def _png_cost(fileobj: BinaryIO) -> Cost | None:
    """Canvas and frames of an animated PNG (``acTL``, ``fcTL``); None for a still one.

    The frames counted are the ``fcTL`` chunks actually there, not the count ``acTL`` claims.
    """
    fileobj.seek(0, 2)
    size = fileobj.tell()
    at, chunks, frames, animated = 8, 0, 0, False
    width = height = 0
    while at + 8 <= size:
        fileobj.seek(at)
        length, kind = struct.unpack(">I4s", fileobj.read(8))
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise SyntaxError(f"PNG has more than {MAX_PNG_CHUNKS:,} chunks")
        if kind == b"IHDR":
            width, height = struct.unpack(">II", fileobj.read(8))
        elif kind == b"acTL":
            animated = True
        elif kind == b"fcTL":
            frames += 1
            if frames > MAX_FRAMES:
                return Cost(frames, width, height, more_frames=True)
        elif kind == b"IEND":
            break
        at += 12 + length
    return Cost(max(frames, 1), width, height) if animated else None


# --- MP4 and MOV --------------------------------------------------------------------------------

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _quicktime_cost(fileobj: BinaryIO) -> Cost | None:
    """Samples and size of the first video track, from ``moov`` (``stsd`` and ``stsz``), read
    before FFmpeg opens the file (opening decodes frames). None when they cannot be found here:
    FFmpeg's own measurements and the video limits then decide."""
    fileobj.seek(0, 2)
    size = fileobj.tell()
    moov = next((box for box in _boxes(fileobj, 0, size) if box[0] == b"moov"), None)
    if moov is None or moov[2] > 64 * 1_000_000:
        return None
    fileobj.seek(moov[1])
    data = fileobj.read(moov[2])
    _, start, end = next(_data_boxes(data, 0, len(data)))  # moov's own payload
    for trak in _children(data, start, end, b"trak"):
        found = _video_track(data, trak)
        if found is not None:
            return found
    return None


def _video_track(data: bytes, trak: tuple[int, int]) -> Cost | None:
    boxes: dict[bytes, tuple[int, int]] = {}

    def walk(start: int, end: int) -> None:
        for kind, at, payload_end in _data_boxes(data, start, end):
            boxes.setdefault(kind, (at, payload_end))
            if kind in _CONTAINERS:
                walk(at, payload_end)

    walk(*trak)
    hdlr, stsd, stsz = boxes.get(b"hdlr"), boxes.get(b"stsd"), boxes.get(b"stsz")
    if hdlr is None or data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide" or stsd is None:
        return None
    entry = stsd[0] + 8  # after version, flags and the entry count
    # A visual sample entry: size, format, 6 reserved, data reference (2), 16 pre-defined, then
    # width and height.
    width, height = struct.unpack_from(">HH", data, entry + 32)
    samples = 1
    if stsz is not None:
        (samples,) = struct.unpack_from(">I", data, stsz[0] + 8)
    return Cost(samples, width, height)


def _boxes(fileobj: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset, size) of the top-level boxes of a file."""
    at = start
    while at + 8 <= end:
        fileobj.seek(at)
        header = fileobj.read(16)
        size, kind = struct.unpack_from(">I4s", header)
        if size == 1 and len(header) == 16:
            (size,) = struct.unpack_from(">Q", header, 8)
        elif size == 0:
            size = end - at
        if size < 8:
            raise SyntaxError(f"box {kind!r} is shorter than its header")
        yield kind, at, size
        at += size


def _data_boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload offset, payload end) of the boxes in ``data[start:end]``."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise SyntaxError(f"box {kind!r} overruns its parent")
        yield kind, at + header, at + size
        at += size


def _children(data: bytes, start: int, end: int, kind: bytes) -> Iterator[tuple[int, int]]:
    for child, at, payload_end in _data_boxes(data, start, end):
        if child == kind:
            yield at, payload_end


_COUNTERS = {
    "gif": _gif_cost,
    "webp": _webp_cost,
    "png": _png_cost,
    "mp4": _quicktime_cost,
    "mov": _quicktime_cost,
}
