"""What a private file may be called and how it reaches a browser or the upstream.

A private file's type is measured from its bytes (``assets.media`` for likeness media,
``consent.documents`` for signed consent documents), never taken from the name it was uploaded
under. This module turns a measured type into the storage extension, refuses an upload whose
name says otherwise, and builds every response that streams a private file: the signed link
(``assets.views``) and the admin file view (``portal.admin_helpers``).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import IO

from django.http import FileResponse

FALLBACK_CONTENT_TYPE = "application/octet-stream"
# Uploaded bytes may never act as a page of the portal's origin: no MIME sniffing, and a sandbox
# without scripts, forms, plugins or same-origin access even if a browser renders them.
SANDBOX_POLICY = "sandbox; default-src 'none'"


@dataclass(frozen=True)
class FileType:
    """A type the portal stores: its measured content type, a name for people, its extensions.

    ``extensions[0]`` is the one the portal stores; every extension listed is accepted in the
    name of an upload of this type.
    """

    content_type: str
    label: str
    extensions: tuple[str, ...]

    @property
    def extension(self) -> str:
        return self.extensions[0]


# Every type a measurement can yield (assets.media.LIMITS and consent.documents). MP4 and
# QuickTime share one container family told apart by a brand that cameras and phones do not keep
# in step with the name, so each accepts the other's extensions.
FILE_TYPES = (
    FileType("image/jpeg", "JPEG image", (".jpg", ".jpeg", ".jpe", ".jfif")),
    FileType("image/png", "PNG image", (".png",)),
    FileType("image/webp", "WebP image", (".webp",)),
    FileType("image/gif", "GIF image", (".gif",)),
    FileType("image/heic", "HEIC image", (".heic", ".heif")),
    FileType("video/mp4", "MP4 video", (".mp4", ".m4v", ".mov", ".qt")),
    FileType("video/quicktime", "QuickTime video", (".mov", ".qt", ".mp4", ".m4v")),
    FileType("audio/mpeg", "MP3 audio", (".mp3",)),
    FileType("audio/wav", "WAV audio", (".wav", ".wave")),
    FileType("application/pdf", "PDF document", (".pdf",)),
)
_BY_CONTENT_TYPE = {file_type.content_type: file_type for file_type in FILE_TYPES}
_BY_STORED_EXTENSION = {file_type.extension: file_type for file_type in FILE_TYPES}


def file_type(content_type: str) -> FileType | None:
    """The ``FileType`` of a measured content type, or None for a type the portal never stores."""
    return _BY_CONTENT_TYPE.get(content_type)


def stored_extension(content_type: str) -> str:
    """The extension a file of this measured type is stored under ("" for an unknown type)."""
    known = file_type(content_type)
    return known.extension if known else ""


def served_content_type(content_type: str) -> str:
    """``content_type`` if the portal stores that type, else ``application/octet-stream``."""
    return content_type if content_type in _BY_CONTENT_TYPE else FALLBACK_CONTENT_TYPE


def content_type_of_stored_name(name: str) -> str:
    """The content type of a stored file that has no measured type on a row.

    Only the extensions the portal itself gives (``stored_extension``) are trusted; a name from
    before names were derived from the bytes (``.html``, ``.svg``) is served as octet-stream.
    """
    known = _BY_STORED_EXTENSION.get(_extension(name))
    return known.content_type if known else FALLBACK_CONTENT_TYPE


def name_mismatch(filename: str, content_type: str) -> str | None:
    """Why ``filename`` contradicts the measured type, e.g. "portrait.mp4 is a PNG image: …".

    None when the name has no extension or one of the type's own; any other extension (also one
    the portal knows nothing about, like ``.html``) is a contradiction.
    """
    extension = _extension(filename)
    known = file_type(content_type)
    if not extension or known is None or extension in known.extensions:
        return None
    return f"“{filename}” is a {known.label}: rename it to {known.extension} and upload it again."


def download_filename(filename: str, content_type: str) -> str:
    """``filename`` with an extension that agrees with ``content_type``, for saving to disk.

    The name keeps its extension when that is one of the type's own; otherwise it gets the type's
    stored extension, or none for a type the portal does not store (never ``.html`` or ``.svg``).
    """
    known = file_type(content_type)
    if known is not None and _extension(filename) in known.extensions:
        return filename
    stem = posixpath.splitext(filename)[0] or "file"
    return stem + (known.extension if known else "")


def private_file_response(
    fileobj: IO[bytes], *, content_type: str, filename: str, as_attachment: bool
) -> FileResponse:
    """Stream a private file with the headers every private file carries.

    ``content_type`` is a measured type (unknown types go out as octet-stream). Only the copy
    the upstream downloads is ``inline``; browsers get ``attachment``. Nothing may cache it.
    """
    served = served_content_type(content_type)
    response = FileResponse(
        fileobj,
        content_type=served,
        as_attachment=as_attachment,
        filename=download_filename(filename, served),
    )
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = SANDBOX_POLICY
    response["X-Robots-Tag"] = "noindex"
    return response


def _extension(filename: str) -> str:
    return posixpath.splitext(filename.rsplit("\\", 1)[-1])[1].lower()
