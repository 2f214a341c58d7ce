"""Probe uploaded media and check it against the upstream's documented limits.

Everything here runs before a file leaves the portal, so a staff user learns at upload time, in
plain words, why a file would be refused (docs: upstream-api.md, "Assets", the limits table).

* The real format is detected from the file's first bytes; the filename is only quoted in messages.
* Only headers are read: Pillow opens images lazily and never decodes pixels here, PyAV reads the
  container's index. The SHA-256 is computed in chunks, so a 50 MB video is never held in memory.
* Functions taking a file object read it from the start and leave it at position 0.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import BinaryIO

import av
from PIL import ExifTags, Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

# AssetsConfig.ready() registers the HEIC opener as well; doing it here keeps this module usable
# without Django (scripts, the sandbox's sample generator). Registering twice is harmless.
register_heif_opener()

# The upstream does not say which megabyte it means; the decimal one is the smaller, so a file
# accepted here is never refused upstream for its size.
MB = 1_000_000

Number = float | Fraction


@dataclass(frozen=True)
class MediaInfo:
    """What was measured in a file; ``kind`` is an ``AssetKind`` value."""

    kind: str
    format: str
    content_type: str
    size_bytes: int
    sha256: str
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    fps: float | None = None


@dataclass(frozen=True)
class LimitViolation:
    """One broken rule: a stable machine ``code`` and a sentence a staff user understands."""

    code: str
    message: str


class MediaRejected(Exception):
    """The file cannot be sent upstream; ``violations`` lists every reason."""

    def __init__(self, violations: list[LimitViolation]) -> None:
        self.violations = violations
        super().__init__(" ".join(v.message for v in violations))


@dataclass(frozen=True)
class Range:
    """An inclusive range: both ends are accepted."""

    low: Number
    high: Number

    def __contains__(self, value: Number) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class KindLimits:
    """The upstream's rules for one kind of asset; ``None`` means the kind has no such rule."""

    formats: dict[str, str]  # format -> content type
    max_bytes: int
    max_bytes_inclusive: bool  # images must be *smaller than* 30 MB, videos *at most* 50 MB
    side_px: Range | None = None
    aspect_ratio: Range | None = None  # width / height
    pixels: Range | None = None  # width * height
    duration_seconds: Range | None = None
    fps: Range | None = None

    def describe(self) -> str:
        """The rules in one line for staff, e.g. "MP3 or WAV, at most 15 MB, 2-15 s"."""
        names = [fmt.upper() for fmt in self.formats]
        parts = [", ".join(names[:-1]) + " or " + names[-1]]
        size = "at most" if self.max_bytes_inclusive else "under"
        parts.append(f"{size} {_num(self.max_bytes / MB)} MB")
        if self.side_px:
            parts.append(f"each side {self.side_px.low}-{self.side_px.high} px")
        if self.aspect_ratio:
            low, high = _num(self.aspect_ratio.low), _num(self.aspect_ratio.high)
            parts.append(f"width/height {low}-{high}")
        if self.pixels:
            parts.append(f"{self.pixels.low:,}-{self.pixels.high:,} pixels")
        if self.duration_seconds:
            parts.append(f"{self.duration_seconds.low}-{self.duration_seconds.high} s")
        if self.fps:
            parts.append(f"{self.fps.low}-{self.fps.high} fps")
        return ", ".join(parts)


# The single source of truth, keyed by AssetKind value; the sandbox enforces the same table.
LIMITS: dict[str, KindLimits] = {
    "image": KindLimits(
        formats={
            "jpeg": "image/jpeg",
            "png": "image/png",
            "webp": "image/webp",
            "gif": "image/gif",
            "heic": "image/heic",
        },
        max_bytes=30 * MB,
        max_bytes_inclusive=False,
        side_px=Range(300, 6000),
        aspect_ratio=Range(Fraction(2, 5), Fraction(5, 2)),
    ),
    "video": KindLimits(
        formats={"mp4": "video/mp4", "mov": "video/quicktime"},
        max_bytes=50 * MB,
        max_bytes_inclusive=True,
        side_px=Range(300, 6000),
        aspect_ratio=Range(Fraction(2, 5), Fraction(5, 2)),
        pixels=Range(409_600, 2_086_876),
        duration_seconds=Range(2, 15),
        fps=Range(24, 60),
    ),
    "audio": KindLimits(
        formats={"mp3": "audio/mpeg", "wav": "audio/wav"},
        max_bytes=15 * MB,
        max_bytes_inclusive=True,
        duration_seconds=Range(2, 15),
    ),
}

_KIND_OF_FORMAT = {fmt: kind for kind, limits in LIMITS.items() for fmt in limits.formats}
# MP4 and MOV share FFmpeg's QuickTime demuxer. Naming the demuxer stops FFmpeg from guessing.
_DEMUXERS = {"mp4": "mov", "mov": "mov", "mp3": "mp3", "wav": "wav"}
# ISO base media files whose major brand says HEIF (HEIC stills and sequences).
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
# EXIF orientations 5 to 8 turn the picture a quarter: the displayed width is the stored height.
_QUARTER_TURNS = {5, 6, 7, 8}
_CHUNK_BYTES = 1 << 20
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, av.FFmpegError)


def probe_media(fileobj: BinaryIO, *, filename: str) -> MediaInfo:
    """Detect the real format from the content and measure the file.

    Raises ``MediaRejected`` with ``unsupported_format`` (a real format the upstream does not
    accept, e.g. BMP, or an MP4 without video) or ``unreadable`` (not media at all, or damaged).
    Image sizes are reported as displayed, i.e. after the EXIF orientation; every image and video
    limit is symmetric under a quarter turn, so this only affects the recorded width and height.
    Video sizes are the coded ones and the frame rate is FFmpeg's average rate, which also
    measures variable frame rate phone videos.
    """
    try:
        fileobj.seek(0)
        fmt = _sniff(fileobj.read(16))
        if fmt is None:
            raise MediaRejected([_unrecognised(fileobj, filename)])
        kind = _KIND_OF_FORMAT[fmt]
        size_bytes, sha256 = _size_and_sha256(fileobj)
        info = MediaInfo(
            kind=kind,
            format=fmt,
            content_type=LIMITS[kind].formats[fmt],
            size_bytes=size_bytes,
            sha256=sha256,
        )
        fileobj.seek(0)
        try:
            return _measure_image(fileobj, info) if kind == "image" else _measure_av(fileobj, info)
        except _UNREADABLE as exc:
            message = (
                f"“{filename}” has a {fmt.upper()} header but cannot be read: "
                "the file is damaged or incomplete."
            )
            raise MediaRejected([LimitViolation("unreadable", message)]) from exc
    finally:
        fileobj.seek(0)


def check_limits(info: MediaInfo) -> list[LimitViolation]:
    """Every rule of ``LIMITS`` that ``info`` breaks, in table order (empty when acceptable).

    A measurement a rule needs but ``info`` lacks is reported as ``unreadable``.
    """
    limits = LIMITS[info.kind]
    violations: list[LimitViolation] = []

    if info.format not in limits.formats:
        message = f"{info.format.upper()} is not accepted for {info.kind}; use {_formats(limits)}."
        violations.append(LimitViolation("unsupported_format", message))

    size_ok = (
        info.size_bytes <= limits.max_bytes
        if limits.max_bytes_inclusive
        else info.size_bytes < limits.max_bytes
    )
    if not size_ok:
        bound = "at most" if limits.max_bytes_inclusive else "smaller than"
        message = (
            f"The file is {info.size_bytes:,} bytes ({info.size_bytes / MB:.1f} MB); "
            f"{info.kind} files must be {bound} {limits.max_bytes // MB} MB."
        )
        violations.append(LimitViolation("file_too_large", message))

    if limits.side_px or limits.aspect_ratio or limits.pixels:
        violations += _dimension_violations(info, limits)

    if duration := limits.duration_seconds:
        if info.duration_seconds is None:
            violations.append(_unmeasured(info, "duration"))
        elif info.duration_seconds not in duration:
            code = "too_short" if info.duration_seconds < duration.low else "too_long"
            message = (
                f"The {info.kind} lasts {_num(info.duration_seconds)} s; "
                f"it must last between {_num(duration.low)} and {_num(duration.high)} s."
            )
            violations.append(LimitViolation(code, message))

    if fps := limits.fps:
        if info.fps is None:
            violations.append(_unmeasured(info, "frame rate"))
        elif info.fps not in fps:
            message = (
                f"The {info.kind} runs at {_num(info.fps)} frames per second; "
                f"it must run at between {_num(fps.low)} and {_num(fps.high)}."
            )
            violations.append(LimitViolation("fps", message))

    return violations


def validate_media(fileobj: BinaryIO, *, filename: str) -> MediaInfo:
    """Probe the file and check it; raises ``MediaRejected`` listing every violation."""
    info = probe_media(fileobj, filename=filename)
    if violations := check_limits(info):
        raise MediaRejected(violations)
    return info


def header_exif(image: Image.Image) -> Image.Exif:
    """The EXIF block read with the header, without decoding pixels; empty if absent or damaged.

    ``Image.getexif()`` decodes a whole PNG when its EXIF chunk is not before the pixel data;
    EXIF after the pixels is rare and ignored here. A damaged EXIF block does not make the
    picture unusable, so it counts as absent rather than making the file unreadable.
    """
    exif = Image.Exif()
    if raw := image.info.get("exif"):
        try:
            exif.load(raw)
        except (SyntaxError, struct.error):
            return Image.Exif()
    return exif


def _size_and_sha256(fileobj: BinaryIO) -> tuple[int, str]:
    """Read the file once, 1 MiB at a time."""
    fileobj.seek(0)
    size, digest = 0, hashlib.sha256()
    while chunk := fileobj.read(_CHUNK_BYTES):
        size += len(chunk)
        digest.update(chunk)
    return size, digest.hexdigest()


def _sniff(head: bytes) -> str | None:
    """The supported format whose signature starts the file, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF"):
        return {b"WEBP": "webp", b"WAVE": "wav"}.get(head[8:12])
    if head[4:8] == b"ftyp":  # ISO base media: the major brand tells HEIC, QuickTime and MP4 apart
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "heic"
        return "mov" if brand == b"qt  " else "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free"):  # QuickTime files older than ftyp
        return "mov"
    # An ID3 tag, or a bare MPEG audio frame: 11 sync bits, then layer bits 01 (layer III).
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "mp3"
    return None


def _measure_image(fileobj: BinaryIO, info: MediaInfo) -> MediaInfo:
    # Pillow refuses a decompression bomb at open() only above twice MAX_IMAGE_PIXELS and merely
    # warns below that; turning the warning into an error would change process-wide state under
    # a threaded server, so the header's own size is checked here, before anything (a thumbnail,
    # a face check) decodes the pixels.
    try:
        image = Image.open(fileobj)
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels() from exc
    with image:  # leaving the block does not close the caller's file; image.close() would
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and image.width * image.height > limit:
            raise _too_many_pixels()
        width, height = image.size
        if header_exif(image).get(ExifTags.Base.Orientation) in _QUARTER_TURNS:
            width, height = height, width
    return replace(info, width=width, height=height)


def _too_many_pixels() -> MediaRejected:
    message = f"The image has more than {Image.MAX_IMAGE_PIXELS:,} pixels, too many to open safely."
    return MediaRejected([LimitViolation("image_too_large", message)])


def _measure_av(fileobj: BinaryIO, info: MediaInfo) -> MediaInfo:
    with av.open(fileobj, mode="r", format=_DEMUXERS[info.format]) as container:
        # container.duration (µs) is what ffprobe calls Duration; MP3 encoder padding is excluded.
        duration = container.duration / av.time_base if container.duration else None
        if info.kind == "audio":
            if not container.streams.audio:
                raise ValueError("no audio track")
            return replace(info, duration_seconds=duration)
        if not container.streams.video:
            message = (
                f"This {info.format.upper()} file has no video track; "
                f"use {_formats(LIMITS['audio'])} for audio."
            )
            raise MediaRejected([LimitViolation("unsupported_format", message)])
        stream = container.streams.video[0]
        return replace(
            info,
            width=stream.width,
            height=stream.height,
            duration_seconds=duration,
            fps=float(stream.average_rate) if stream.average_rate else None,
        )


def _unrecognised(fileobj: BinaryIO, filename: str) -> LimitViolation:
    """Why a file with no supported signature is refused, naming its real format if known."""
    accepted = "; ".join(f"{kind} {_formats(limits)}" for kind, limits in LIMITS.items())
    if name := _identify(fileobj):
        message = f"“{filename}” is a {name} file, which is not accepted. Accepted: {accepted}."
        return LimitViolation("unsupported_format", message)
    message = f"“{filename}” is not a readable image, video or audio file. Accepted: {accepted}."
    return LimitViolation("unreadable", message)


def _identify(fileobj: BinaryIO) -> str | None:
    """A name for a format the libraries can read but the upstream refuses, e.g. ``BMP image``."""
    fileobj.seek(0)
    try:
        with Image.open(fileobj) as image:
            return f"{image.format} image"
    except (UnidentifiedImageError, Image.DecompressionBombError):
        pass  # not an image: ask FFmpeg
    fileobj.seek(0)
    try:
        with av.open(fileobj, mode="r") as container:
            return container.format.long_name
    except av.FFmpegError:
        return None


def _dimension_violations(info: MediaInfo, limits: KindLimits) -> list[LimitViolation]:
    """The side, aspect ratio and pixel count rules."""
    width, height = info.width, info.height
    if not width or not height:
        return [_unmeasured(info, "width and height")]
    violations = []
    dims = f"The {info.kind} is {width} × {height} px"  # noqa: RUF001 (a real multiplication sign)
    if sides := limits.side_px:
        message = f"{dims}; each side must be between {sides.low} and {sides.high} px."
        if min(width, height) < sides.low:
            violations.append(LimitViolation(f"{info.kind}_too_small", message))
        if max(width, height) > sides.high:
            violations.append(LimitViolation(f"{info.kind}_too_large", message))
    ratio = Fraction(width, height)  # exact: 750 by 300 is 2.5, not a float near it
    if (aspect := limits.aspect_ratio) and ratio not in aspect:
        message = (
            f"{dims}, a width/height ratio of {_num(ratio)}; "
            f"it must be between {_num(aspect.low)} and {_num(aspect.high)}."
        )
        violations.append(LimitViolation("aspect_ratio", message))
    if (pixels := limits.pixels) and width * height not in pixels:
        message = (
            f"{dims} = {width * height:,} pixels; "
            f"it must have between {pixels.low:,} and {pixels.high:,} pixels."
        )
        violations.append(LimitViolation("pixel_count", message))
    return violations


def _unmeasured(info: MediaInfo, what: str) -> LimitViolation:
    return LimitViolation("unreadable", f"The {info.kind}'s {what} could not be measured.")


def _formats(limits: KindLimits) -> str:
    return ", ".join(fmt.upper() for fmt in limits.formats)


def _num(value: Number) -> str:
    """A measurement for a message: at most three decimals, no trailing zeros."""
    return f"{float(value):.3f}".rstrip("0").rstrip(".")
