"""CreateAsset's download of the caller's URL, as the upstream does it (reference G5)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import requests

from sandbox.errors import ApiError, invalid_parameter

# Connect and read timeouts, in seconds. Short enough that a dead URL fails the call quickly.
TIMEOUT = (5.0, 30.0)
# Above every type's limit (video: 50 MB), so that an oversized file is still measured and
# refused by the limit checks; past this the download stops.
MAX_BYTES = 64 * 1024 * 1024
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class Downloaded:
    content: bytes
    filename: str
    content_type: str


def download(url: str) -> Downloaded:
    """The file at ``url``, or ``InvalidParameter.URL`` (400) when it cannot be fetched."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid_parameter("URL", f"The URL {url} is not a valid http(s) URL.")
    try:
        with requests.get(url, timeout=TIMEOUT, stream=True) as response:
            if response.status_code != 200:
                raise _unreachable(url, f"HTTP {response.status_code}")
            content = _read_capped(response)
            content_type = response.headers.get("Content-Type", "")
    except requests.RequestException as exc:
        raise _unreachable(url, type(exc).__name__) from exc
    filename = posixpath.basename(unquote(parts.path)) or "download"
    return Downloaded(content=content, filename=filename, content_type=content_type)


def _read_capped(response: requests.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(_CHUNK):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BYTES:
            raise invalid_parameter(
                "FileSize", f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB."
            )
    return b"".join(chunks)


def _unreachable(url: str, reason: str) -> ApiError:
    return invalid_parameter("URL", f"The URL {url} could not be downloaded ({reason}).")
