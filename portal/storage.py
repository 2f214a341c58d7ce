"""Storage for the portal's private files (faces, voices, consent documents)."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import FileSystemStorage

# Only the portal's own user may read the files or list the folders they are in.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700


class PrivateFileSystemStorage(FileSystemStorage):
    """Local storage whose files have no public URL and are readable by the portal's user only.

    A file reaches a browser or the upstream only through ``assets.signing.signed_file_url`` or
    an admin view that checks the user's permissions; asking for a plain URL is a bug. Files are
    created 0600 and folders 0700 unless the storage's options say otherwise, whatever
    ``FILE_UPLOAD_PERMISSIONS`` says (settings.py sets the same values for any other storage).
    """

    def __init__(self, **options: Any) -> None:
        options.setdefault("file_permissions_mode", PRIVATE_FILE_MODE)
        options.setdefault("directory_permissions_mode", PRIVATE_DIRECTORY_MODE)
        super().__init__(**options)

    def url(self, name: str | None) -> str:
        raise ValueError("Private files have no public URL: use assets.signing.signed_file_url")
