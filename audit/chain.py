"""The audit chain's keyed hash: HMAC-SHA256 of an event's canonical content.

The key (``AUDIT_CHAIN_KEY``, ``AUDIT_CHAIN_RETIRED_KEYS``) lives in the environment of the
portal's processes, never in the database: whoever can write the audit table, even its owner
with the triggers switched off, cannot recompute a chain that verifies. Each event stores the id
of the key that hashed it, so keys can be rotated and older events still checked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from django.conf import settings

# What the hash covers, in the order verification reads the columns: every recorded field but
# the database id and the hash. The key id is covered too, so it cannot be swapped.
CONTENT_FIELDS = (
    "occurred_at",
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "person_id",
    "before",
    "after",
    "detail",
    "request_id",
    "previous_hash",
    "key_id",
)
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


class UnknownChainKey(LookupError):
    """An event names a key id that this portal's settings do not hold."""


def current_key_id() -> str:
    return str(settings.AUDIT_CHAIN_KEY_ID)


def content_of(values: Sequence[Any]) -> dict[str, Any]:
    """The hashed content of an event given the values of ``CONTENT_FIELDS`` in that order
    (``occurred_at`` a datetime or its ``isoformat()``, the JSON fields as read back from the
    database)."""
    content = dict(zip(CONTENT_FIELDS, values, strict=True))
    if not isinstance(occurred_at := content["occurred_at"], str):
        content["occurred_at"] = occurred_at.isoformat()
    return content


def canonical(content: dict[str, Any]) -> bytes:
    """The bytes that are hashed: JSON, keys sorted at every level, no spaces, ASCII only."""
    return _encode(content).encode()


def keyed_hash(content: dict[str, Any], *, keys: dict[str, bytes] | None = None) -> str:
    """HMAC-SHA256 (hex) of ``content`` under the key its ``key_id`` names."""
    keys = settings.AUDIT_CHAIN_KEYS if keys is None else keys
    try:
        key = keys[content["key_id"]]
    except KeyError:
        raise UnknownChainKey(content["key_id"]) from None
    return hmac.digest(key, canonical(content), hashlib.sha256).hex()
