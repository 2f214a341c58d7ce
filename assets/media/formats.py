"""What a file is, from its first bytes (signatures, ISO ``ftyp`` brands), never from its name;
and, for a refused file, a name for its real format."""

from __future__ import annotations

import io
from typing import BinaryIO

import av
from PIL import Image

from assets.media.limits import (
    _CHUNK_BYTES,
    _PLURALS,
    _REFUSED_NAMES,
    LIMITS,
    LimitViolation,
    _formats,
)

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
