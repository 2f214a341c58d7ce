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
from collections.abc import Callable, Sequence
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
_KEY_AT = CONTENT_FIELDS.index("key_id")
# canonical() of an event's content spelled out: the keys in sorted order (the three JSON fields
# are neighbours there, encoded in one call), each value as the encoder writes it.
_LAYOUT = (
    '{"action":%s,"actor_id":%s,"actor_label":%s,%s,"key_id":%s,"object_id":%s,'
    '"object_repr":%s,"object_type":%s,"occurred_at":%s,"person_id":%s,"previous_hash":%s,'
    '"request_id":%s}'
)
# A string as the encoder writes it (ensure_ascii); TypeError for anything else.
_string = json.encoder.encode_basestring_ascii
# No cycle check: the content is JSON (read back, or round-tripped through json by audit_record)
# and cannot hold a cycle; the check is work per event for the verifier.
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), check_circular=False).encode


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


def canonical_values(values: Sequence[Any]) -> bytes:
    """``canonical(content_of(values))`` without building and sorting the dict, for the
    verifier's walk: the same bytes. Values of a type no column gives (a datetime ``occurred_at``,
    say) go the general way."""
    (
        occurred_at,
        actor_id,
        actor_label,
        action,
        object_type,
        object_id,
        object_repr,
        person_id,
        before,
        after,
        detail,
        request_id,
        previous_hash,
        key_id,
    ) = values
    try:
        text = _LAYOUT % (
            _string(action),
            _number(actor_id),
            _string(actor_label),
            _encode({"after": after, "before": before, "detail": detail})[1:-1],
            _string(key_id),
            _string(object_id),
            _string(object_repr),
            _string(object_type),
            _string(occurred_at),
            _number(person_id),
            _string(previous_hash),
            _string(request_id),
        )
    except TypeError:
        return canonical(content_of(values))
    return text.encode()


def _number(value: object) -> str:
    """An id as the encoder writes it; TypeError for anything but an int or None."""
    if value is None:
        return "null"
    if type(value) is not int:  # a bool is an int too, and JSON writes it otherwise
        raise TypeError(value)
    return int.__repr__(value)


def keyed_hash(content: dict[str, Any], *, keys: dict[str, bytes] | None = None) -> str:
    """HMAC-SHA256 (hex) of ``content`` under the key its ``key_id`` names."""
    keys = settings.AUDIT_CHAIN_KEYS if keys is None else keys
    try:
        key = keys[content["key_id"]]
    except KeyError:
        raise UnknownChainKey(content["key_id"]) from None
    return hmac.digest(key, canonical(content), hashlib.sha256).hex()


def chain_digest(keys: dict[str, bytes] | None = None) -> Callable[[Sequence[Any]], str]:
    """``keyed_hash(content_of(values), keys=keys)`` as a function of ``values``, for hashing
    many events: each key's HMAC is set up once and copied per event."""
    keys = settings.AUDIT_CHAIN_KEYS if keys is None else keys
    macs = {key_id: hmac.new(key, digestmod=hashlib.sha256) for key_id, key in keys.items()}

    def digest(values: Sequence[Any]) -> str:
        try:
            mac = macs[values[_KEY_AT]].copy()
        except KeyError:
            raise UnknownChainKey(values[_KEY_AT]) from None
        mac.update(canonical_values(values))
        return mac.hexdigest()

    return digest
