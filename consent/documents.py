"""Signed consent documents: PDF, JPEG or PNG, identified from the bytes, within a size limit.

A consent document is evidence that staff open later, so the portal keeps only formats a viewer
shows without running anything of the file (no HTML, SVG or executables), recognised from their
content; the name it was uploaded under is only checked to agree.
"""

from __future__ import annotations

import posixpath
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from PIL import Image

from portal.private_files import name_mismatch

ACCEPTED = "a PDF, JPEG or PNG file"
_SIGNATURES = {
    b"%PDF-": "application/pdf",
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
}
_PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
# A PDF ends with "startxref", the offset of its cross-reference table and "%%EOF"; readers look
# for them in the last 1024 bytes, after which some writers leave a little padding.
_PDF_TAIL_BYTES = 1024
_PDF_TAIL_MARKERS = (b"startxref", b"%%EOF")
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


# For the upload field: the browser's file picker offers these first.
ACCEPT_ATTRIBUTE = "application/pdf,image/jpeg,image/png,.pdf,.jpg,.jpeg,.png"


def document_rules() -> str:
    """The rules in one line for staff, e.g. "PDF, JPEG or PNG, at most 20.0 MB"."""
    return f"PDF, JPEG or PNG, at most {filesizeformat(settings.CONSENT_DOCUMENT_MAX_BYTES)}"


def document_content_type(fileobj: IO[bytes]) -> str | None:
    """The accepted type whose signature starts the file, or None; leaves it at position 0."""
    fileobj.seek(0)
    head = fileobj.read(8)
    fileobj.seek(0)
    return next((kind for sig, kind in _SIGNATURES.items() if head.startswith(sig)), None)


def validate_consent_document(value: Any) -> None:
    """Refuse a document being attached unless it is a readable PDF, JPEG or PNG, small enough.

    ``value`` is the ``FieldFile`` (or an uploaded ``File``). A file already in storage was
    checked when it was attached and is not read again.
    """
    if getattr(value, "_committed", False):
        return
    filename = posixpath.basename(value.name or "") or "The document"
    limit = settings.CONSENT_DOCUMENT_MAX_BYTES
    if value.size > limit:
        raise ValidationError(
            f"“{filename}” is {filesizeformat(value.size)}; a consent document may be at most "
            f"{filesizeformat(limit)}.",
            code="document_too_large",
        )
    content_type = document_content_type(value)
    if content_type is None:
        raise ValidationError(
            f"“{filename}” is not {ACCEPTED}. Scan or export the signed consent as PDF, JPEG "
            "or PNG.",
            code="document_format",
        )
    if not _readable(value, content_type):
        raise ValidationError(
            f"“{filename}” starts like {ACCEPTED} but cannot be read: it is damaged or incomplete.",
            code="document_damaged",
        )
    if mismatch := name_mismatch(filename, content_type):
        raise ValidationError(mismatch, code="document_name")


def _readable(fileobj: IO[bytes], content_type: str) -> bool:
    """Whether the file's structure holds up: a PDF's trailer, or Pillow's check of an image."""
    try:
        if content_type == "application/pdf":
            fileobj.seek(0, 2)
            fileobj.seek(max(0, fileobj.tell() - _PDF_TAIL_BYTES))
            tail = fileobj.read()
            return all(marker in tail for marker in _PDF_TAIL_MARKERS)
        with Image.open(fileobj) as image:
            if image.format != _PILLOW_FORMATS[content_type]:
                return False
            image.verify()
        return True
    except _UNREADABLE:
        return False
    finally:
        fileobj.seek(0)
