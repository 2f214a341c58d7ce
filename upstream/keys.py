"""API-key hygiene: the fingerprint stored instead of the key, and redaction.

The Anyfast key is a bearer credential for the whole account. It goes into exactly one place,
the ``Authorization`` header of each request; everything else (rows, logs, errors, command
output) carries its fingerprint. ``key_fingerprint`` is the one fingerprint function of the
project: the portal's rows and the sandbox's (which stands in for the upstream) both use it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

FINGERPRINT_PREFIX = "sha256:"
# 16 hex digits (64 bits) tell keys apart without helping anyone guess one; with the prefix the
# fingerprint is 23 characters and fits the models' ``api_key_fingerprint`` (max 32).
_FINGERPRINT_HEX_DIGITS = 16

REDACTED = "***"

# Text quoted back by an upstream or a library may carry a secret URL-encoded, once or twice
# (``%2F``, ``%252F``), or JSON-escaped (``\/``): every pattern below accepts those forms.
_ESCAPE = r"%(?:25)?[0-9A-Fa-f]{2}"
# Where a secret may begin: not inside a word, or right after an escape (``%20sk-…``).
_START = r"(?:(?<![A-Za-z0-9])|(?<=%[0-9A-Fa-f]{2})|(?<=%25[0-9A-Fa-f]{2}))"


def _either_form(char: str) -> str:
    """A pattern for ``char`` as itself or percent-encoded (any hex case, once or twice)."""
    escapes = "".join(
        "%(?:25)?" + "".join(f"[{d.upper()}{d.lower()}]" for d in f"{byte:02x}")
        for byte in char.encode()
    )
    return f"(?:{re.escape(char)}|{escapes})"


_SLASH = rf"(?:\\/|{_either_form('/')})"
_SPACE = rf"(?:\s|\+|{_either_form(' ')})"
_EQUALS = _either_form("=")
# A value runs until a space, a quote or a separator (``&``, ``/``), plain or encoded.
_VALUE = rf"(?:[^\s\"'\\&/%]|(?!%(?:25)?(?:26|2[Ff]|20))(?:{_ESCAPE}))+"

# Keys in the shapes Anyfast (new-api) issues: ``sk-`` followed by the secret. Anything that
# looks like one is masked even when it is not the configured key (a body echoing another key).
_KEY_PATTERN = re.compile(
    rf"{_START}sk{_either_form('-')}(?:[A-Za-z0-9_-]|%(?:25)?(?:2[Dd]|5[Ff])){{6,}}"
)
_BEARER_PATTERN = re.compile(rf"(?i){_START}bearer{_SPACE}+{_VALUE}")
# The portal's signed file links (assets.signing) are credentials too while they last: an
# upstream error quoting the URL it could not download must not put a live link in the logs.
_SIGNED_LINK_PATTERN = re.compile(rf"({_SLASH})files({_SLASH}){_VALUE}({_SLASH})")
# Presigned storage URLs (S3's X-Amz-*, the upstream's TOS X-Tos-*).
_PRESIGNED_PATTERN = re.compile(
    rf"(?i){_START}((?:X-[A-Za-z]+-)?(?:Signature|Security-Token|Credential))({_EQUALS}){_VALUE}"
)


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
    """``text`` with every given secret, ``sk-…`` key, bearer token, signed file link and
    presigned-URL signature masked, in plain, URL-encoded or JSON-escaped form."""
    for secret in secrets:
        if secret:
            pattern = "".join(_either_form(char) for char in secret)
            text = re.sub(pattern, REDACTED, text)
    text = _BEARER_PATTERN.sub(f"Bearer {REDACTED}", text)
    text = _SIGNED_LINK_PATTERN.sub(rf"\1files\2{REDACTED}\3", text)
    text = _PRESIGNED_PATTERN.sub(rf"\1\2{REDACTED}", text)
    return _KEY_PATTERN.sub(f"sk-{REDACTED}", text)
