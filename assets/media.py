"""Judge an uploaded file against the upstream's documented limits before it leaves the portal.

A staff user learns at upload time, in plain words, why a file would be refused (docs:
upstream-api.md, "Assets", the limits table). Every input ends in a verdict: a ``MediaInfo`` or
``MediaRejected``, never another exception. The steps go from cheapest to dearest, so a refused
file costs little:

1. **Size**, found by seeking, before a byte is read: a file over its kind's limit is refused
   unread, so a 300 MB upload costs no memory.
2. **Format**, from the first bytes only (signatures; for ISO base media, the ``ftyp`` brands:
   MP4, MOV and HEIC are accepted, 3GP, M4A and AVIF are not), never from the name. FFmpeg is
   always told which demuxer to use, and when it is asked to name a refused format it sees the
   bytes without the upload's name.
3. **Measurements** from the headers (pixels as displayed after the EXIF orientation, duration,
   frame rate) and the SHA-256, read in 1 MiB chunks.
4. **Decoding**, only for a file that passes every limit, so memory stays bounded by the limits
   (at most 6000 x 6000 pixels, 2,086,876 per video frame) and never grows with the file's size:
   JPEG is decoded at 1/8 scale (every coefficient is still read); a PNG's chunks are checked
   against their CRCs and its pixel stream is inflated in 1 MiB steps and counted, never held;
   GIF, WebP and HEIC are decoded; every packet of the audio or video track is read, audio is
   decoded whole and video's first frame and last group of pictures are decoded. A file that is
   cut short, zeroed or otherwise damaged is refused as ``unreadable``.

Metadata never decides: tags that are not valid UTF-8 are ignored. Functions taking a file object
read it from the start and leave it at position 0.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import shutil
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, BinaryIO

import av
import pillow_heif
from django.conf import settings
from PIL import ExifTags, Image, ImageOps, ImageSequence

if TYPE_CHECKING:
    from av.container import InputContainer

# AssetsConfig.ready() registers the HEIC opener as well; doing it here keeps this module usable
# without Django (scripts, the sandbox's sample generator). Registering twice is harmless.
pillow_heif.register_heif_opener()

logger = logging.getLogger(__name__)

# The upstream does not say which megabyte it means; the decimal one is the smaller, so a file
# accepted here is never refused upstream for its size.
MB = 1_000_000

Number = float | Fraction


@dataclass(frozen=True)
class MediaFormat:
    """An accepted format: its name as people write it and its content type (the extension a
    file of that type is stored under is ``portal.private_files``' to say)."""

    name: str
    content_type: str
    pillow: str = ""  # Pillow's name for it, for images


# The formats of the upstream's limits table, keyed by the code ``MediaInfo.format`` holds.
FORMATS: dict[str, MediaFormat] = {
    "jpeg": MediaFormat("JPEG", "image/jpeg", "JPEG"),
    "png": MediaFormat("PNG", "image/png", "PNG"),
    "webp": MediaFormat("WebP", "image/webp", "WEBP"),
    "gif": MediaFormat("GIF", "image/gif", "GIF"),
    "heic": MediaFormat("HEIC", "image/heic", "HEIF"),
    "mp4": MediaFormat("MP4", "video/mp4"),
    "mov": MediaFormat("MOV", "video/quicktime"),
    "mp3": MediaFormat("MP3", "audio/mpeg"),
    "wav": MediaFormat("WAV", "audio/wav"),
}


@dataclass(frozen=True)
class MediaInfo:
    """What was measured in a file; ``kind`` is an ``AssetKind`` value, ``format`` a key of
    ``FORMATS``."""

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


class LocationNotRemovable(Exception):
    """``strip_location`` could not walk the file's metadata, so cannot promise it is gone."""


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

    formats: tuple[str, ...]  # keys of FORMATS
    max_bytes: int
    max_bytes_inclusive: bool  # images must be *smaller than* 30 MB, videos *at most* 50 MB
    side_px: Range | None = None
    aspect_ratio: Range | None = None  # width / height
    pixels: Range | None = None  # width * height
    duration_seconds: Range | None = None
    fps: Range | None = None

    def describe(self) -> str:
        """The rules in one line for staff, e.g. "MP3 or WAV, at most 15 MB, 2-15 s"."""
        size = "at most" if self.max_bytes_inclusive else "under"
        parts = [_formats(self), f"{size} {_num(self.max_bytes / MB)} MB"]
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
        formats=("jpeg", "png", "webp", "gif", "heic"),
        max_bytes=30 * MB,
        max_bytes_inclusive=False,
        side_px=Range(300, 6000),
        aspect_ratio=Range(Fraction(2, 5), Fraction(5, 2)),
    ),
    "video": KindLimits(
        formats=("mp4", "mov"),
        max_bytes=50 * MB,
        max_bytes_inclusive=True,
        side_px=Range(300, 6000),
        aspect_ratio=Range(Fraction(2, 5), Fraction(5, 2)),
        pixels=Range(409_600, 2_086_876),
        duration_seconds=Range(2, 15),
        fps=Range(24, 60),
    ),
    "audio": KindLimits(
        formats=("mp3", "wav"),
        max_bytes=15 * MB,
        max_bytes_inclusive=True,
        duration_seconds=Range(2, 15),
    ),
}

_PLURALS = {"image": "images", "video": "videos", "audio": "audio"}
_KIND_OF_FORMAT = {fmt: kind for kind, limits in LIMITS.items() for fmt in limits.formats}
# MP4 and MOV share FFmpeg's QuickTime demuxer. Naming the demuxer stops FFmpeg from guessing.
_DEMUXERS = {"mp4": "mov", "mov": "mov", "mp3": "mp3", "wav": "wav"}

# ISO base media files (MP4, MOV, HEIF, 3GP, ...) say what they are in their ftyp box's brands.
# Brands of the accepted formats, and of refused ones that would otherwise pass for them.
_ISO_BRANDS: dict[bytes, str] = {
    b"qt  ": "mov",
    **dict.fromkeys(
        [b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V "],
        "mp4",
    ),
    **dict.fromkeys([b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"], "heic"),
    **dict.fromkeys([b"avif", b"avis"], "avif"),
    **dict.fromkeys(
        [b"3gp4", b"3gp5", b"3gp6", b"3gp7", b"3ge6", b"3ge7", b"3gg6", b"3g2a", b"3g2b", b"3g2c"],
        "3gp",
    ),
    **dict.fromkeys([b"M4A ", b"M4B ", b"M4P "], "m4a"),
    b"crx ": "cr3",
}
# HEIF's structural brands: the codec brand beside them tells HEIC (HEVC) from AVIF (AV1).
_HEIF_BRANDS = {b"mif1", b"msf1", b"miaf"}
# Names of refused formats recognised by their signature, for "is in <name> format".
_REFUSED_NAMES = {
    "avif": "AVIF",
    "3gp": "3GP",
    "m4a": "M4A (MPEG-4 audio)",
    "cr3": "Canon CR3 raw",
    "heif": "HEIF without HEVC",
    "iso": "an unrecognised MPEG-4 family",
}
# Nicer names than the libraries' own for common refused formats.
_PILLOW_NAMES = {"JPEG2000": "JPEG 2000", "MPO": "MPO (multi-picture JPEG)"}
_FFMPEG_NAMES = {
    "matroska,webm": "Matroska/WebM",
    "ogg": "Ogg",
    "flac": "FLAC",
    "aac": "AAC",
    "avi": "AVI",
    "asf": "Windows Media",
    "flv": "Flash video",
    "mpegts": "MPEG transport stream",
    "mpeg": "MPEG program stream",
    "aiff": "AIFF",
    "amr": "AMR",
}

# EXIF orientations 5 to 8 turn the picture a quarter: the displayed width is the stored height.
_QUARTER_TURNS = {5, 6, 7, 8}
_CHUNK_BYTES = 1 << 20
# A file's packets must cover this share of the duration its header claims (MP3 and WAV headers
# estimate it; MP4 and MOV indexes are exact and are also checked packet by packet).
_MIN_COVERAGE = Fraction(95, 100)


def probe_media(fileobj: BinaryIO, *, filename: str) -> MediaInfo:
    """Detect the real format from the content, measure the file and, if it passes every limit,
    decode it.

    Raises ``MediaRejected`` with ``unsupported_format`` (a real format the upstream does not
    accept, e.g. BMP, or an MP4 without video), ``file_too_large`` (the size is checked first and
    alone), ``image_too_large`` (more pixels than Pillow opens safely) or ``unreadable`` (empty,
    not media at all, or damaged). Otherwise returns the measurements, which may still break a
    limit: ``check_limits`` says which (``validate_media`` does both).

    Image sizes are reported as displayed, i.e. after the EXIF orientation; every image and video
    limit is symmetric under a quarter turn, so this only affects the recorded width and height.
    Video sizes are the coded ones and the frame rate is FFmpeg's average rate, which also
    measures variable frame rate phone videos.
    """
    try:
        return _probe(fileobj, filename)
    finally:
        fileobj.seek(0)


def check_limits(info: MediaInfo) -> list[LimitViolation]:
    """Every rule of ``LIMITS`` that ``info`` breaks, in table order (empty when acceptable).

    One violation per rule. A measurement a rule needs but ``info`` lacks is reported as
    ``unreadable``. Measured numbers are shown with as many decimals as it takes to see that
    they are outside the limit (15.0004 s, not 15 s).
    """
    limits = LIMITS[info.kind]
    violations: list[LimitViolation] = []

    if info.format not in limits.formats:
        message = (
            f"{_format_name(info.format)} is not accepted for {info.kind}; use {_formats(limits)}."
        )
        violations.append(LimitViolation("unsupported_format", message))

    if too_large := _size_violation(info.kind, info.size_bytes):
        violations.append(too_large)

    if limits.side_px or limits.aspect_ratio or limits.pixels:
        violations += _dimension_violations(info, limits)

    if duration := limits.duration_seconds:
        if info.duration_seconds is None:
            violations.append(_unmeasured(info, "duration"))
        elif info.duration_seconds not in duration:
            code = "too_short" if info.duration_seconds < duration.low else "too_long"
            message = (
                f"The {info.kind} lasts {_outside(info.duration_seconds, duration)} s; "
                f"it must last between {_num(duration.low)} and {_num(duration.high)} s."
            )
            violations.append(LimitViolation(code, message))

    if fps := limits.fps:
        if info.fps is None:
            violations.append(_unmeasured(info, "frame rate"))
        elif info.fps not in fps:
            message = (
                f"The {info.kind} has {_outside(info.fps, fps)} frames per second; "
                f"it must have between {_num(fps.low)} and {_num(fps.high)}."
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
    return _exif(image.info.get("exif"))


def face_precheck(fileobj: BinaryIO, info: MediaInfo) -> list[str]:
    """Warnings for staff when an accepted image shows no face or several, else ``[]``.

    A hint before an upload is spent, never a verdict: OpenCV's Haar cascade finds frontal faces
    only and is easily fooled, and the upstream's own check decides (``FaceMismatch``). Returns
    ``[]`` for video and audio and when ``settings.MEDIA_FACE_PRECHECK`` is off. ``fileobj`` is
    the file ``validate_media`` measured as ``info``; the cascade looks at it 800 px a side at
    most (a JPEG is also decoded at about that size).
    """
    if info.kind != "image" or not settings.MEDIA_FACE_PRECHECK:
        return []
    try:
        count = _count_faces(fileobj, info)
    finally:
        fileobj.seek(0)
    if count == 1:
        return []
    if count == 0:
        return [
            "No face was found in this picture. The upstream compares the face in every image "
            "with the verified person and refuses a picture without one (FaceMismatch): use a "
            "clear, front-facing portrait."
        ]
    return [
        f"{count} faces were found in this picture. The upstream refuses a picture that shows "
        "several people: use a portrait of the verified person alone."
    ]


def strip_location(fileobj: BinaryIO, info: MediaInfo) -> BinaryIO | None:
    """The copy of an accepted file that the upstream downloads: without location metadata.

    The contract, for the upload pipeline:

    * ``fileobj`` is the file ``validate_media`` accepted as ``info``. It is never modified (the
      stored original keeps its bytes and its ``sha256``) and is left at position 0.
    * Returns ``None`` when the file holds none of the metadata below: send the original.
    * Otherwise returns a new anonymous temporary file (removed when closed), at position 0, of
      exactly the original's size and format: store it beside the original (e.g.
      ``storage.save(name, File(copy, name))``, with the original's extension), sign the
      upstream's URL to it, and close it. It validates to the same measurements but ``sha256``.
    * Raises ``LocationNotRemovable`` when the file's metadata cannot be walked to be sure; do
      not send such a file (it does not happen to files written by cameras and phones).

    What is removed, in place (every length and offset is kept, so nothing is re-encoded or
    remuxed and the copy decodes exactly like the original):

    * EXIF GPS (JPEG, PNG, WebP, HEIC): the GPS directory is emptied and the values it points to
      are zeroed; the rest of EXIF, orientation above all, is kept. EXIF that cannot be parsed
      is zeroed whole;
    * XMP (JPEG, PNG, WebP, HEIC, MP4, MOV), replaced by an empty packet: it names places in
      many vocabularies (``exif:GPS*``, ``photoshop:City``, ``Iptc4xmpCore:Location``, ...) and
      holds nothing the upstream needs; IPTC (JPEG APP13, PNG raw profiles), zeroed: it holds
      city, region and country;
    * MP4 and MOV: ``©xyz`` and 3GPP ``loci`` boxes become ``free`` boxes, and the values of
      Apple's ``com.apple.quicktime.location.*`` keys are zeroed.

    GIF, MP3 and WAV files are returned as they are (``None``): cameras, phones and recorders
    write no location into them.
    """
    find_edits = _LOCATION_EDITS.get(info.format)
    if find_edits is None:
        return None
    try:
        edits = find_edits(fileobj, info.size_bytes)
    except (struct.error, IndexError, KeyError, ValueError, EOFError, SyntaxError) as exc:
        raise LocationNotRemovable(f"the {info.format} metadata cannot be walked: {exc}") from exc
    finally:
        fileobj.seek(0)
    if not edits:
        return None
    copy = tempfile.TemporaryFile()  # noqa: SIM115 (the caller owns and closes it)
    shutil.copyfileobj(fileobj, copy, _CHUNK_BYTES)
    fileobj.seek(0)
    for offset, data in edits:
        copy.seek(offset)
        copy.write(data)
    copy.seek(0)
    return copy


# --- Probing ------------------------------------------------------------------------------------


def _probe(fileobj: BinaryIO, filename: str) -> MediaInfo:
    fileobj.seek(0, io.SEEK_END)
    size = fileobj.tell()
    if size == 0:
        raise MediaRejected([LimitViolation("unreadable", f"“{filename}” is empty.")])
    fmt = _sniff(fileobj)
    if fmt not in FORMATS:
        raise MediaRejected([_unrecognised(fileobj, fmt, filename)])
    kind = _KIND_OF_FORMAT[fmt]
    if too_large := _size_violation(kind, size):
        raise MediaRejected([too_large])  # unread: neither hashed nor decoded
    info = MediaInfo(
        kind=kind,
        format=fmt,
        content_type=FORMATS[fmt].content_type,
        size_bytes=size,
        sha256=_sha256(fileobj),
    )
    try:
        info = _probe_image(fileobj, info) if kind == "image" else _probe_av(fileobj, info)
    except MediaRejected:
        raise
    except Exception as exc:
        # The parsers are C libraries fed untrusted bytes; whatever they raise (OSError,
        # ValueError, SyntaxError, EOFError, struct.error, av.FFmpegError, ...) means the file
        # cannot be read, which is this function's verdict for it.
        logger.info("%s file %r is unreadable: %r", fmt, filename, exc)
        message = (
            f"“{filename}” cannot be read as {FORMATS[fmt].name}: "
            "the file is damaged or incomplete."
        )
        raise MediaRejected([LimitViolation("unreadable", message)]) from exc
    return info


def _sha256(fileobj: BinaryIO) -> str:
    """Read the file once, 1 MiB at a time."""
    fileobj.seek(0)
    digest = hashlib.sha256()
    while chunk := fileobj.read(_CHUNK_BYTES):
        digest.update(chunk)
    return digest.hexdigest()


def _size_violation(kind: str, size: int) -> LimitViolation | None:
    limits = LIMITS[kind]
    inclusive = limits.max_bytes_inclusive
    if size <= limits.max_bytes if inclusive else size < limits.max_bytes:
        return None
    accepted = Range(0, Fraction(limits.max_bytes if inclusive else limits.max_bytes - 1, MB))
    megabytes = _outside(Fraction(size, MB), accepted, decimals=1, strip=False)
    bound = "at most" if inclusive else "smaller than"
    message = (
        f"The file is {size:,} bytes ({megabytes} MB); "
        f"{kind} files must be {bound} {limits.max_bytes // MB} MB."
    )
    return LimitViolation("file_too_large", message)


# --- Formats ------------------------------------------------------------------------------------


def _sniff(fileobj: BinaryIO) -> str | None:
    """The format code whose signature starts the file: an accepted one (a key of ``FORMATS``),
    a refused one of ``_REFUSED_NAMES``, or None."""
    fileobj.seek(0)
    head = fileobj.read(256)
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF"):
        return {b"WEBP": "webp", b"WAVE": "wav"}.get(head[8:12])
    if head[4:8] == b"ftyp":
        return _iso_format(head)
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):  # QuickTime before ftyp
        return "mov"
    if head.startswith(b"ID3") and len(head) >= 10:
        # An ID3v2 tag (its size is "syncsafe": 7 bits a byte) then, in an MP3, a frame.
        tag_size = 10 + sum((byte & 0x7F) << (7 * (3 - i)) for i, byte in enumerate(head[6:10]))
        if head[5] & 0x10:  # a footer follows the tag
            tag_size += 10
        fileobj.seek(tag_size)
        head = fileobj.read(4)
    return "mp3" if _mpeg_audio_frame(head) else None


def _iso_format(head: bytes) -> str:
    """The format an ISO base media file's ftyp brands name (major brand first)."""
    box_size = int.from_bytes(head[:4], "big")
    major = head[8:12]
    compatible = [head[i : i + 4] for i in range(16, min(box_size, len(head)) - 3, 4)]
    if major in _HEIF_BRANDS:
        codecs = {_ISO_BRANDS.get(brand) for brand in compatible}
        return "heic" if "heic" in codecs else "avif" if "avif" in codecs else "heif"
    for brand in (major, *compatible):
        if brand in _ISO_BRANDS:
            return _ISO_BRANDS[brand]
    return "iso"


def _mpeg_audio_frame(header: bytes) -> bool:
    """Whether ``header`` starts an MPEG audio layer III frame (the MP3 in "MP3")."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return False  # no 11-bit frame sync
    version, layer = (header[1] >> 3) & 0b11, (header[1] >> 1) & 0b11
    bitrate, sample_rate = header[2] >> 4, (header[2] >> 2) & 0b11
    return version != 0b01 and layer == 0b01 and bitrate != 0b1111 and sample_rate != 0b11


def _unrecognised(fileobj: BinaryIO, fmt: str | None, filename: str) -> LimitViolation:
    """Why a file with no accepted signature is refused, naming its real format if known."""
    accepted = "; ".join(
        f"{_PLURALS[kind]} in {_formats(limits)}" for kind, limits in LIMITS.items()
    )
    if name := _REFUSED_NAMES.get(fmt or "") or _identify(fileobj):
        message = f"“{filename}” is in {name} format, which is not accepted. Accepted: {accepted}."
        return LimitViolation("unsupported_format", message)
    message = f"“{filename}” is not a readable image, video or audio file. Accepted: {accepted}."
    return LimitViolation("unreadable", message)


def _identify(fileobj: BinaryIO) -> str | None:
    """A name for a format the libraries can read but the upstream refuses, e.g. ``BMP``."""
    return _pillow_name(fileobj) or _ffmpeg_name(fileobj)


def _pillow_name(fileobj: BinaryIO) -> str | None:
    fileobj.seek(0)
    try:
        with Image.open(fileobj) as image:
            return _PILLOW_NAMES.get(image.format or "", image.format)
    except Exception:
        # Not an image, or a damaged one: Pillow's plugins raise whatever their parsers hit.
        return None


def _ffmpeg_name(fileobj: BinaryIO) -> str | None:
    fileobj.seek(0)
    try:
        with av.open(
            _Unnamed(fileobj),
            mode="r",
            metadata_errors="ignore",
            # Naming the format needs the first bytes only, whatever the file's size.
            container_options={"probesize": str(_CHUNK_BYTES), "analyzeduration": "1"},
        ) as container:
            name = container.format.name
            long_name = container.format.long_name
    except Exception:
        return None  # not something FFmpeg reads either (it raises several error classes)
    if name.endswith("_pipe") or name in ("image2", "tty"):
        return None  # pictures are Pillow's to name; "tty" is FFmpeg's name for plain text
    return _FFMPEG_NAMES.get(name, long_name)


class _Unnamed:
    """The upload without its name: PyAV passes a file object's ``name`` to FFmpeg, which would
    weigh the extension when it guesses a format (the upload's name is the uploader's claim)."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._fileobj = fileobj

    def read(self, size: int = -1) -> bytes:
        return self._fileobj.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._fileobj.seek(offset, whence)
        return self._fileobj.tell()

    def tell(self) -> int:
        return self._fileobj.tell()


# --- Images -------------------------------------------------------------------------------------


def _probe_image(fileobj: BinaryIO, info: MediaInfo) -> MediaInfo:
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
    with Image.open(fileobj, formats=[FORMATS[info.format].pillow]) as image:
        if info.format == "jpeg":
            # libjpeg reads every coefficient but builds a picture 64 times smaller.
            image.draft(None, (math.ceil(image.width / 8), math.ceil(image.height / 8)))
            image.load()
        else:
            for frame in ImageSequence.Iterator(image):  # every frame of a GIF or WebP
                frame.load()


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


# --- Video and audio ----------------------------------------------------------------------------


def _open_av(fileobj: BinaryIO, fmt: str) -> InputContainer:
    fileobj.seek(0)
    return av.open(_Unnamed(fileobj), mode="r", format=_DEMUXERS[fmt], metadata_errors="ignore")


def _probe_av(fileobj: BinaryIO, info: MediaInfo) -> MediaInfo:
    if info.format == "wav" and not _wav_data_is_whole(fileobj, info.size_bytes):
        # FFmpeg would shorten the duration to what is there, so a cut WAV would pass as short.
        raise EOFError("the WAV's sound data is cut short")
    with _open_av(fileobj, info.format) as container:  # opening costs a frame's decoding: once
        measured = _measure_av(container, info)
        if not check_limits(measured):  # a file refused anyway is not worth decoding
            _decode_av(container, measured)
    return measured


def _measure_av(container: InputContainer, info: MediaInfo) -> MediaInfo:
    name = FORMATS[info.format].name
    # container.duration (µs) is what ffprobe calls Duration; MP3 encoder padding is excluded.
    duration = container.duration / av.time_base if container.duration else None
    if info.kind == "audio":
        if not container.streams.audio:
            raise ValueError("no audio track")
        return replace(info, duration_seconds=duration)
    if not container.streams.video:
        message = f"This {name} file has no video track; audio must be {_formats(LIMITS['audio'])}."
        raise MediaRejected([LimitViolation("unsupported_format", message)])
    stream = container.streams.video[0]
    context = stream.codec_context
    if context is None:  # FFmpeg has no decoder for it
        message = f"This {name} file's video is encoded in a way the portal cannot decode."
        raise MediaRejected([LimitViolation("unsupported_format", message)])
    return replace(
        info,
        width=context.width,
        height=context.height,
        duration_seconds=duration,
        fps=float(stream.average_rate) if stream.average_rate else None,
    )


def _wav_data_is_whole(fileobj: BinaryIO, size: int) -> bool:
    """Whether the WAV's ``data`` chunk holds as many bytes as its header says."""
    offset = 12  # after "RIFF", the RIFF size and "WAVE"
    while offset + 8 <= size:
        fileobj.seek(offset)
        chunk_id, length = struct.unpack("<4sI", fileobj.read(8))
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF mean "unknown": a recorder that could not seek back to write it.
            return length in (0, 0xFFFFFFFF) or offset + 8 + length <= size
        offset += 8 + length + (length & 1)  # chunks are padded to an even size
    return False


def _decode_av(container: InputContainer, info: MediaInfo) -> None:
    """Read every packet of the measured track: all must be there and whole, and those shown
    must cover the duration. Audio is decoded whole; video's first frame and its last group of
    pictures (from the last key frame) are decoded, so its last frame is too.

    Packets an edit list leaves out (a phone's trim, an encoder's delay) are read but not shown:
    FFmpeg flags them "discard" and its decoders drop their frames.
    """
    audio = info.kind == "audio"
    stream = container.streams.audio[0] if audio else container.streams.video[0]
    context = stream.codec_context
    packets = decoded = shown_end = 0
    shown: list[int] = []  # the timestamps of the packets shown
    keys: list[int] = []
    for packet in container.demux(stream):
        if packet.size == 0 and packet.pts is None:
            continue  # the empty packet that marks the end
        if packet.is_corrupt:
            raise EOFError("a packet is cut short")
        packets += 1
        if packet.pts is not None:
            if packet.is_keyframe:
                keys.append(packet.pts)
            if not packet.is_discard:
                shown.append(packet.pts)
                shown_end = max(shown_end, packet.pts + (packet.duration or 0))
        if audio or not decoded:
            decoded += len(context.decode(packet))
    decoded += len(context.decode(None))
    if not packets or not decoded or not shown:
        raise EOFError("no packet decodes")
    if stream.frames and packets < stream.frames:
        raise EOFError(f"{packets} of {stream.frames} packets are there")
    first, last = min(shown), max(shown)
    time_base = stream.time_base or Fraction(1, av.time_base)
    claimed = (
        stream.duration * time_base
        if stream.duration
        else Fraction(container.duration or 0, av.time_base)
    )
    if (shown_end - first) * time_base < claimed * _MIN_COVERAGE:
        raise EOFError("the packets end before the duration the header claims")
    if isinstance(stream, av.VideoStream):
        last_key = max((key for key in keys if key <= last), default=first)
        _decode_last_frames(container, stream, last_key=last_key, last_pts=last)


def _decode_last_frames(
    container: InputContainer, stream: av.VideoStream, *, last_key: int, last_pts: int
) -> None:
    """Decode from the last key frame to the end; the last frame shown must come out."""
    container.seek(last_key, stream=stream, backward=True, any_frame=False)
    stream.codec_context.flush_buffers()
    for packet in container.demux(stream):  # the empty packet at the end flushes the decoder
        if any(frame.pts == last_pts for frame in packet.decode()):
            return
    raise EOFError("the last frame does not decode")


# --- Limits and messages ------------------------------------------------------------------------


def _dimension_violations(info: MediaInfo, limits: KindLimits) -> list[LimitViolation]:
    """The side, aspect ratio and pixel count rules."""
    width, height = info.width, info.height
    if not width or not height:
        return [_unmeasured(info, "width and height")]
    violations = []
    dims = f"The {info.kind} is {width} × {height} px"  # noqa: RUF001 (a real multiplication sign)
    if sides := limits.side_px:
        too_small, too_large = min(width, height) < sides.low, max(width, height) > sides.high
        if too_small or too_large:
            code = f"{info.kind}_too_small" if too_small else f"{info.kind}_too_large"
            message = f"{dims}; each side must be between {sides.low} and {sides.high} px."
            violations.append(LimitViolation(code, message))
    ratio = Fraction(width, height)  # exact: 750 by 300 is 2.5, not a float near it
    if (aspect := limits.aspect_ratio) and ratio not in aspect:
        message = (
            f"{dims}, a width/height ratio of {_outside(ratio, aspect)}; "
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


def _format_name(fmt: str) -> str:
    return FORMATS[fmt].name if fmt in FORMATS else _REFUSED_NAMES.get(fmt, fmt.upper())


def _formats(limits: KindLimits) -> str:
    """The kind's formats for a sentence: "JPEG, PNG, WebP, GIF or HEIC"."""
    names = [FORMATS[fmt].name for fmt in limits.formats]
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _num(value: Number) -> str:
    """A number for a message: at most three decimals, no trailing zeros."""
    return f"{float(value):.3f}".rstrip("0").rstrip(".")


def _outside(value: Number, accepted: Range, *, decimals: int = 3, strip: bool = True) -> str:
    """``value``, known to be outside ``accepted``, with the fewest decimals (at least
    ``decimals``) that still show it outside: 0.3996 next to a 0.4 limit, never "0.4"."""
    shown = ""
    for places in range(decimals, 10):
        shown = f"{float(value):.{places}f}"
        if strip and "." in shown:
            shown = shown.rstrip("0").rstrip(".")
        if Fraction(shown) not in accepted:
            break
    return shown


# --- Faces --------------------------------------------------------------------------------------

_FACE_SIDE = 800
_cascades = threading.local()  # a CascadeClassifier is not safe to share between threads


def _count_faces(fileobj: BinaryIO, info: MediaInfo) -> int:
    import cv2  # imported on first use: OpenCV is large and only this check needs it
    import numpy

    fileobj.seek(0)
    with Image.open(fileobj, formats=[FORMATS[info.format].pillow]) as image:
        image.draft("L", (_FACE_SIDE, _FACE_SIDE))  # JPEG: decode at a fraction of the size
        picture = ImageOps.exif_transpose(image).convert("L")
    picture.thumbnail((_FACE_SIDE, _FACE_SIDE))
    if not hasattr(_cascades, "face"):
        cascades = cv2.data.haarcascades  # type: ignore[attr-defined]  # missing from the stubs
        _cascades.face = cv2.CascadeClassifier(cascades + "haarcascade_frontalface_default.xml")
    gray = cv2.equalizeHist(numpy.asarray(picture))
    smallest = max(24, min(picture.size) // 12)
    faces = _cascades.face.detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest)
    )
    return len(faces)


# --- Location metadata --------------------------------------------------------------------------

_Edit = tuple[int, bytes]  # bytes to write at a file offset
_EMPTY_XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/><?xpacket end="w"?>'
)
_XMP_JPEG = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_JPEG_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"
_XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")  # XMP in an ISO base media file
_PNG_METADATA_KEYWORDS = {
    b"XML:com.adobe.xmp",
    b"Raw profile type exif",
    b"Raw profile type APP1",
    b"Raw profile type xmp",
    b"Raw profile type iptc",
}
_PNG_BLANK_CHUNK = b"prVt"  # ancillary, private, safe to copy: every reader skips it
# Bytes per value of the TIFF field types 1 to 13 (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE,
# UNDEFINED, SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE, IFD).
_TIFF_TYPE_SIZES = dict(enumerate((1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4), start=1))
_GPS_IFD = 0x8825


def _empty_xmp(length: int) -> bytes:
    """An empty XMP packet padded with spaces (XMP's own padding) to ``length`` bytes."""
    return (_EMPTY_XMP if length >= len(_EMPTY_XMP) else b"").ljust(length, b" ")


def _exif_edits(tiff: bytes, base: int) -> list[_Edit]:
    """Edits emptying the GPS directory of the EXIF (TIFF) block ``tiff`` at file offset
    ``base``; edits zeroing the whole block when it cannot be parsed."""
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        magic, ifd0 = struct.unpack_from(order + "HI", tiff, 2)
        if magic != 42:
            raise ValueError("not a TIFF header")
        gps = next((value for tag, _, _, value in _ifd(tiff, ifd0, order) if tag == _GPS_IFD), None)
        if gps is None:
            return []
        entries = _ifd(tiff, gps, order)
        edits = []
        for _, value_type, count, value in entries:
            size = _TIFF_TYPE_SIZES[value_type] * count
            if size > 4:  # stored apart from the entry, at offset `value`
                if value + size > len(tiff):
                    raise ValueError("GPS value outside the EXIF block")
                edits.append((base + value, bytes(size)))
        # No entries and no next directory: a valid, empty GPS directory.
        edits.append((base + gps, bytes(2 + 12 * len(entries) + 4)))
        return edits
    except (KeyError, ValueError, struct.error):
        return [(base, bytes(len(tiff)))]


def _ifd(tiff: bytes, offset: int, order: str) -> list[tuple[int, int, int, int]]:
    """(tag, type, count, value or offset) of each entry of the TIFF directory at ``offset``."""
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    struct.unpack_from(order + "I", tiff, offset + 2 + 12 * count)  # the next-directory pointer
    return [struct.unpack_from(order + "HHII", tiff, offset + 2 + 12 * i) for i in range(count)]


def _jpeg_location(fileobj: BinaryIO, size: int, start: int = 0) -> list[_Edit]:
    """EXIF GPS, XMP and IPTC in the segments before the JPEG's scan, and in the other pictures
    of a multi-picture file (MPO: phones' depth maps and previews)."""
    edits: list[_Edit] = []
    offset = start + 2  # after SOI
    while offset + 4 <= size:
        fileobj.seek(offset)
        marker = fileobj.read(2)
        if marker[0] != 0xFF:
            raise ValueError("JPEG segment without a marker")
        if marker[1] == 0xFF:  # fill byte
            offset += 1
            continue
        if marker[1] in (0xD9, 0xDA):  # EOI, or the scan: metadata comes before it
            break
        (length,) = struct.unpack(">H", fileobj.read(2))
        if length < 2:
            raise ValueError("JPEG segment shorter than its length field")
        payload, at = fileobj.read(length - 2), offset + 4
        if marker[1] == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            edits += _exif_edits(payload[6:], at + 6)
        elif marker[1] == 0xE1 and payload.startswith(_XMP_JPEG):
            edits.append((at + len(_XMP_JPEG), _empty_xmp(len(payload) - len(_XMP_JPEG))))
        elif (marker[1] == 0xE1 and payload.startswith(_XMP_JPEG_EXTENSION)) or marker[1] == 0xED:
            edits.append((at, bytes(len(payload))))  # extended XMP, IPTC: an unknown segment
        elif marker[1] == 0xE2 and payload.startswith(b"MPF\x00") and start == 0:
            for picture in _mpo_pictures(payload[4:]):
                edits += _jpeg_location(fileobj, size, at + 4 + picture)
        offset += 2 + length
    return edits


def _mpo_pictures(tiff: bytes) -> list[int]:
    """Offsets of a multi-picture JPEG's other pictures, from its MP index (CIPA DC-007)."""
    order = {b"II": "<", b"MM": ">"}[tiff[:2]]
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    for tag, _, count, value in _ifd(tiff, ifd, order):
        if tag == 0xB002:  # MP entries: 16 bytes each; the first is the primary picture
            return [
                struct.unpack_from(order + "I", tiff, value + entry + 8)[0]
                for entry in range(16, count, 16)
            ]
    return []


def _png_location(fileobj: BinaryIO, size: int) -> list[_Edit]:
    """EXIF GPS in ``eXIf``; text chunks holding XMP, EXIF or IPTC become blank chunks."""
    edits: list[_Edit] = []
    for chunk in _png_chunks(fileobj):
        if chunk.type not in (b"eXIf", b"tEXt", b"zTXt", b"iTXt"):
            continue
        fileobj.seek(chunk.data_offset)
        data = fileobj.read(chunk.length)
        if chunk.type == b"eXIf":
            chunk_type, blanked = chunk.type, bytearray(data)
            for at, blank in _exif_edits(data, 0):
                blanked[at : at + len(blank)] = blank
        elif data.split(b"\x00", 1)[0] in _PNG_METADATA_KEYWORDS:
            chunk_type, blanked = _PNG_BLANK_CHUNK, bytearray(len(data))
        else:
            continue
        if blanked != data:  # a chunk's CRC covers its type and data: write all three
            crc = zlib.crc32(chunk_type + blanked).to_bytes(4, "big")
            edits.append((chunk.offset + 4, chunk_type + blanked + crc))
    return edits


def _webp_location(fileobj: BinaryIO, size: int) -> list[_Edit]:
    edits: list[_Edit] = []
    offset = 12  # after "RIFF", the RIFF size and "WEBP"
    while offset + 8 <= size:
        fileobj.seek(offset)
        fourcc, length = struct.unpack("<4sI", fileobj.read(8))
        at = offset + 8
        if fourcc == b"EXIF":
            data = fileobj.read(length)
            skip = 6 if data.startswith(b"Exif\x00\x00") else 0
            edits += _exif_edits(data[skip:], at + skip)
        elif fourcc == b"XMP ":
            edits.append((at, _empty_xmp(length)))
        offset = at + length + (length & 1)
    return edits


def _box_header(header: bytes, offset: int, end: int) -> tuple[bytes, int, int]:
    """(type, size, header size) of the ISO base media box at ``offset`` whose first bytes (16
    at most) are ``header``; its parent, or the file, ends at ``end``."""
    size, box_type = struct.unpack_from(">I4s", header)
    header_size = 8
    if size == 1:  # the size follows the type, in 64 bits
        (size,) = struct.unpack_from(">Q", header, 8)
        header_size = 16
    elif size == 0:  # the box runs to the end
        size = end - offset
    if size < header_size or offset + size > end:
        raise ValueError(f"box {box_type!r} overruns its parent")
    return box_type, size, header_size


def _iso_boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, offset, size, header size) of the ISO base media boxes in ``data[start:end]``."""
    offset = start
    while offset + 8 <= end:
        box_type, size, header = _box_header(data[offset : offset + 16], offset, end)
        yield box_type, offset, size, header
        offset += size


def _file_boxes(fileobj: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int, int]]:
    """Like ``_iso_boxes`` for the top level of a file, reading box headers only (a video's
    samples are never read)."""
    offset = 0
    while offset + 8 <= size:
        fileobj.seek(offset)
        box_type, box_size, header = _box_header(fileobj.read(16), offset, size)
        yield box_type, offset, box_size, header
        offset += box_size


def _read_box(fileobj: BinaryIO, box: tuple[bytes, int, int, int]) -> bytes:
    fileobj.seek(box[1])
    return fileobj.read(box[2])


def _heic_location(fileobj: BinaryIO, size: int) -> list[_Edit]:
    """EXIF GPS and XMP in the items of a HEIF file's ``meta`` box."""
    meta = next((box for box in _file_boxes(fileobj, size) if box[0] == b"meta"), None)
    if meta is None:
        return []
    data, meta_offset = _read_box(fileobj, meta), meta[1]
    children = {box[0]: box for box in _iso_boxes(data, 12, len(data))}  # after a FullBox header
    if b"iinf" not in children or b"iloc" not in children:
        return []
    idat = children.get(b"idat")
    idat_start = meta_offset + idat[1] + idat[3] if idat else None
    locations = _iloc(_box_payload(data, children[b"iloc"]), idat_start)
    edits: list[_Edit] = []
    for item, (item_type, content_type) in _iinf(_box_payload(data, children[b"iinf"])).items():
        extents = locations.get(item, [])
        if item_type == b"Exif" and len(extents) == 1:
            at, length = extents[0]
            fileobj.seek(at)
            exif = fileobj.read(length)
            tiff = 4 + int.from_bytes(exif[:4], "big")  # after the offset to the TIFF header
            edits += _exif_edits(exif[tiff:], at + tiff)
        elif item_type == b"Exif":
            edits += [(at, bytes(length)) for at, length in extents]
        elif item_type == b"mime" and content_type == b"application/rdf+xml":
            edits += [
                (at, _empty_xmp(length) if index == 0 else b" " * length)
                for index, (at, length) in enumerate(extents)
            ]
    return edits


def _box_payload(data: bytes, box: tuple[bytes, int, int, int]) -> bytes:
    _, offset, size, header = box
    return data[offset + header : offset + size]


def _iinf(payload: bytes) -> dict[int, tuple[bytes, bytes]]:
    """Item id -> (item type, MIME content type) from a HEIF item information box."""
    entries_at = 4 + (2 if payload[0] == 0 else 4)  # FullBox header, then the entry count
    items = {}
    for box in _iso_boxes(payload, entries_at, len(payload)):
        if box[0] != b"infe":
            continue
        infe = _box_payload(payload, box)
        version = infe[0]
        if version < 2:
            continue  # item types came with version 2
        id_size = 2 if version == 2 else 4
        item = int.from_bytes(infe[4 : 4 + id_size], "big")
        at = 4 + id_size + 2  # after the protection index
        item_type = infe[at : at + 4]
        name_end = infe.index(b"\x00", at + 4)
        content_type = infe[name_end + 1 :].split(b"\x00", 1)[0] if item_type == b"mime" else b""
        items[item] = (item_type, content_type)
    return items


def _iloc(payload: bytes, idat_start: int | None) -> dict[int, list[tuple[int, int]]]:
    """Item id -> [(file offset, length)] from a HEIF item location box (ISO/IEC 14496-12)."""
    version, at = payload[0], 4

    def number(size: int) -> int:
        nonlocal at
        if at + size > len(payload):
            raise ValueError("iloc box is cut short")
        at += size
        return int.from_bytes(payload[at - size : at], "big")

    sizes = number(2)
    offset_size, length_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
    index_size = sizes & 15 if version in (1, 2) else 0
    locations = {}
    for _ in range(number(2 if version < 2 else 4)):
        item = number(2 if version < 2 else 4)
        method = number(2) & 15 if version in (1, 2) else 0
        number(2)  # data reference index: 0 means "this file"
        base = number(base_size)
        extents = []
        for _ in range(number(2)):
            number(index_size)
            offset, length = number(offset_size), number(length_size)
            if method == 0:
                extents.append((base + offset, length))
            elif method == 1 and idat_start is not None:
                extents.append((idat_start + base + offset, length))
            else:
                raise ValueError(f"item {item} is stored in a way that cannot be located")
        locations[item] = extents
    return locations


def _quicktime_location(fileobj: BinaryIO, size: int) -> list[_Edit]:
    """Location and XMP boxes in an MP4 or MOV's ``moov``, and XMP at its top level."""
    edits: list[_Edit] = []
    for box in _file_boxes(fileobj, size):
        box_type, offset, _, header = box
        if box_type == b"uuid":
            fileobj.seek(offset + header)
            if fileobj.read(16) != _XMP_UUID:
                continue
        elif box_type != b"moov":
            continue
        data = _read_box(fileobj, box)
        edits += [(offset + at, blank) for at, blank in _qt_edits(data, 0, len(data))]
    return edits


def _qt_edits(data: bytes, start: int, end: int) -> list[_Edit]:
    """Edits blanking the location and XMP boxes in ``data[start:end]`` and the boxes within."""
    edits: list[_Edit] = []
    for box_type, offset, size, header in _iso_boxes(data, start, end):
        payload = offset + header
        is_xmp = box_type == b"XMP_" or (
            box_type == b"uuid" and data[payload : payload + 16] == _XMP_UUID
        )
        if box_type in (b"\xa9xyz", b"loci") or is_xmp:
            edits.append((offset + 4, b"free"))
            edits.append((payload, bytes(size - header)))
        elif box_type in (b"moov", b"trak", b"udta"):
            edits += _qt_edits(data, payload, offset + size)
        elif box_type == b"meta":
            # ISO's meta is a FullBox (4 bytes of version and flags); QuickTime's is not.
            full = data[payload + 4 : payload + 8] != b"hdlr"
            edits += _qt_meta_edits(data, payload + (4 if full else 0), offset + size)
    return edits


def _qt_meta_edits(data: bytes, start: int, end: int) -> list[_Edit]:
    """In a ``meta`` box: ``©xyz`` items of an iTunes-style list, and the values of Apple's
    location keys (``keys`` names them, ``ilst`` items are numbered after them)."""
    children = list(_iso_boxes(data, start, end))
    location_keys: set[int] = set()
    for box_type, offset, _, header in children:
        if box_type == b"keys":
            at = offset + header + 8  # after version, flags and the entry count
            for index in range(1, int.from_bytes(data[at - 4 : at], "big") + 1):
                key_size = int.from_bytes(data[at : at + 4], "big")
                if key_size < 8:
                    raise ValueError("keys entry too short")
                if b"location" in data[at + 8 : at + key_size].lower():
                    location_keys.add(index)
                at += key_size
    edits: list[_Edit] = []
    for box_type, offset, size, header in children:
        if box_type != b"ilst":
            continue
        for item_type, item_offset, item_size, item_header in _iso_boxes(
            data, offset + header, offset + size
        ):
            if item_type == b"\xa9xyz":
                edits.append((item_offset + 4, b"free"))
                edits.append((item_offset + item_header, bytes(item_size - item_header)))
            elif int.from_bytes(item_type, "big") in location_keys:
                for value in _iso_boxes(data, item_offset + item_header, item_offset + item_size):
                    if value[0] == b"data":  # type indicator and locale, then the value
                        value_at = value[1] + value[3] + 8
                        edits.append((value_at, bytes(value[1] + value[2] - value_at)))
    return edits


_LOCATION_EDITS: dict[str, Callable[[BinaryIO, int], list[_Edit]]] = {
    "jpeg": _jpeg_location,
    "png": _png_location,
    "webp": _webp_location,
    "heic": _heic_location,
    "mp4": _quicktime_location,
    "mov": _quicktime_location,
}
