"""Signed, expiring links to private files.

The upstream downloads each asset from the URL given to CreateAsset, so the portal hands it a
link that names one file, expires, and cannot be forged. With S3-compatible storage the storage's
own presigned URL is used instead.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core import signing
from django.db.models.fields.files import FieldFile
from django.urls import reverse

from portal.storage import PrivateFileSystemStorage

_SALT = "assets.signing.private-file"


class InvalidFileLink(Exception):
    """The link was forged, altered or has expired."""


def signed_file_url(field_file: FieldFile, *, expires_in: int | None = None) -> str:
    """An absolute URL serving ``field_file`` for ``expires_in`` seconds to whoever holds it.

    ``None`` means ``PRIVATE_FILE_URL_MAX_AGE``; zero or a negative lifetime is a ``ValueError``
    (a link that is dead on arrival is a bug in the caller, not a request for the default).
    """
    if expires_in is not None and expires_in <= 0:
        raise ValueError(f"A signed link must live at least one second, not {expires_in}.")
    lifetime = settings.PRIVATE_FILE_URL_MAX_AGE if expires_in is None else expires_in
    if not isinstance(field_file.storage, PrivateFileSystemStorage):
        return field_file.storage.url(field_file.name, expire=lifetime)  # type: ignore[call-arg]
    token = signing.dumps({"n": field_file.name, "e": int(time.time()) + lifetime}, salt=_SALT)
    filename = field_file.name.rsplit("/", 1)[-1] if field_file.name else "file"
    path = reverse("assets:signed-file", kwargs={"token": token, "filename": filename})
    return f"{settings.PORTAL_PUBLIC_URL}{path}"


def file_name_from_token(token: str) -> str:
    """The storage name a token grants, or ``InvalidFileLink``."""
    try:
        payload = signing.loads(token, salt=_SALT)
    except signing.BadSignature as exc:
        raise InvalidFileLink("This file link is not valid.") from exc
    if payload["e"] < time.time():
        raise InvalidFileLink("This file link has expired.")
    return str(payload["n"])
