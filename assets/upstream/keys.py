"""API-key hygiene: the fingerprint the portal stores instead of the key, and redaction.

The Anyfast key is a bearer credential for the whole account. It goes into exactly one place,
the ``Authorization`` header of each request; everything else (rows, logs, errors, command
output) carries its fingerprint.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

FINGERPRINT_PREFIX = "sha256:"
# 16 hex digits (64 bits) tell keys apart without helping anyone guess one; with the prefix the
# fingerprint is 23 characters and fits the models' ``api_key_fingerprint`` (max 32).
_FINGERPRINT_HEX_DIGITS = 16

# Keys in the shapes Anyfast (new-api) issues: ``sk-`` followed by the secret. Anything that
# looks like one is masked even when it is not the configured key (a body echoing another key).
_KEY_PATTERN = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_BEARER_PATTERN = re.compile(r"(?i)\bbearer\s+\S+")
# The portal's signed file links (assets.signing) are credentials too while they last: an
# upstream error quoting the URL it could not download must not put a live link in the logs.
_SIGNED_LINK_PATTERN = re.compile(r"/files/[^/\s]+/")
_PRESIGNED_PATTERN = re.compile(r"(?i)\b(X-Amz-Signature|Signature)=[^&\s\"']+")

REDACTED = "***"


def key_fingerprint(api_key: str) -> str:
    """A short, stable, non-reversible identifier of ``api_key``: ``sha256:<16 hex digits>``.

    Store this (e.g. ``VerificationSession.api_key_fingerprint``) to remember which key owns an
    upstream object; groups belong to the key that created the verification session. An empty
    key has the empty fingerprint.
    """
    if not api_key:
        return ""
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    return FINGERPRINT_PREFIX + digest[:_FINGERPRINT_HEX_DIGITS]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every given secret, ``sk-…`` key, bearer token and signed link masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _BEARER_PATTERN.sub(f"Bearer {REDACTED}", text)
    text = _SIGNED_LINK_PATTERN.sub(f"/files/{REDACTED}/", text)
    text = _PRESIGNED_PATTERN.sub(rf"\1={REDACTED}", text)
    return _KEY_PATTERN.sub(f"sk-{REDACTED}", text)
