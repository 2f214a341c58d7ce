"""Storage for the portal's private files (faces, voices, consent documents)."""

from django.core.files.storage import FileSystemStorage


class PrivateFileSystemStorage(FileSystemStorage):
    """Local storage whose files have no public URL.

    A file reaches a browser or the upstream only through ``assets.signing.signed_file_url`` or
    an admin view that checks the user's permissions; asking for a plain URL is a bug.
    """

    def url(self, name: str | None) -> str:
        raise ValueError("Private files have no public URL: use assets.signing.signed_file_url")
