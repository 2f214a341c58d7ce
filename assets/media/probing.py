"""``probe_media`` and ``validate_media``: size, format, decoding budget, measurements, decoding."""

from __future__ import annotations

import hashlib
import io
import logging
from typing import BinaryIO

from assets.media import audio_video, images
from assets.media.budget import check_budget
from assets.media.formats import _sniff, _unrecognised
from assets.media.limits import (
    _CHUNK_BYTES,
    _KIND_OF_FORMAT,
    FORMATS,
    LimitViolation,
    MediaInfo,
    MediaRejected,
    _size_violation,
    check_limits,
)

logger = logging.getLogger("assets.media")


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


def sniff_kind(fileobj: BinaryIO) -> str | None:
    """The kind (an ``AssetKind`` value) the file's first bytes say it is, None when they name no
    accepted format. Reads 256 bytes and decodes nothing: for checks that must come first."""
    try:
        return _KIND_OF_FORMAT.get(_sniff(fileobj) or "")
    finally:
        fileobj.seek(0)


def validate_media(fileobj: BinaryIO, *, filename: str) -> MediaInfo:
    """Probe the file and check it; raises ``MediaRejected`` listing every violation."""
    info = probe_media(fileobj, filename=filename)
    if violations := check_limits(info):
        raise MediaRejected(violations)
    return info


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
        info = check_budget(fileobj, info, filename=filename)  # before any decoder runs
        probe = images.probe_image if kind == "image" else audio_video.probe_av
        info = probe(fileobj, info)
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
