"""Identifiers shaped like the upstream's (docs/upstream.md §2.3).

What the sandbox stores instead of a caller's key is the portal's own fingerprint
(``upstream.keys.key_fingerprint``, re-exported here), so that both name a key alike.
"""

from __future__ import annotations

import datetime
import secrets
import string

from django.utils import timezone

from upstream.keys import key_fingerprint

__all__ = [
    "key_fingerprint",
    "new_asset_id",
    "new_byted_token",
    "new_group_id",
    "new_link_id",
]

# Upstream ids carry the creation time in China Standard Time (UTC+8), whatever the caller's zone.
UPSTREAM_ZONE = datetime.timezone(datetime.timedelta(hours=8), "UTC+8")
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def _stamp(now: datetime.datetime | None) -> str:
    """``YYYYMMDDhhmmss`` of ``now`` (default: the current time) in UTC+8."""
    moment = now or timezone.now()
    return moment.astimezone(UPSTREAM_ZONE).strftime("%Y%m%d%H%M%S")


def _suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def new_group_id(now: datetime.datetime | None = None) -> str:
    """``group-YYYYMMDDhhmmss-xxxxx``, e.g. ``group-20260521163909-kbdhw``."""
    return f"group-{_stamp(now)}-{_suffix()}"


def new_asset_id(now: datetime.datetime | None = None) -> str:
    """``asset-YYYYMMDDhhmmss-xxxxx``, e.g. ``asset-20260521164235-zggcb``."""
    return f"asset-{_stamp(now)}-{_suffix()}"


def new_byted_token(now: datetime.datetime | None = None) -> str:
    """34 characters: the UTC+8 timestamp and 20 uppercase hex digits."""
    return _stamp(now) + secrets.token_hex(10).upper()


def new_link_id() -> str:
    """The unguessable part of an H5 link: whoever holds it can verify as the session."""
    return secrets.token_urlsafe(18)
