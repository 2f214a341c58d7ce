"""Writing audit events.

``audit_record`` is called by every service that changes something worth proving later, inside
that service's transaction: the event exists exactly when the change does.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.models import QuerySet
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from audit.chain import current_key_id
from audit.context import current_request_id
from audit.models import GENESIS_HASH, AuditEvent, object_type_of
from portal.logredact import mask_file_tokens

# Any constant works: it only has to be the same for every writer of the chain.
_CHAIN_LOCK_KEY = 0x61756469  # "audi"


def audit_record(
    *,
    action: str,
    obj: models.Model | None,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    actor_label: str = "",
    person_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event about ``obj`` (``None``: about no one row, e.g. an export) to the chain.

    ``actor`` is the user who acted; without one, ``actor_label`` names the system part that did
    (``"celery"``, ``"upstream callback"``, ...; default ``"system"``). ``before``/``after``/
    ``detail`` must be JSON-serialisable with Django's encoder (dates, decimals, UUIDs) and must
    never contain secrets; the token of any signed file link in their text is masked all the same
    (an upstream's error may quote the link it could not download). Runs in the caller's
    transaction (or its own), so a rolled-back change leaves no event; writers are serialised so
    the chain has one order.
    """
    user = actor if actor is not None and actor.is_authenticated else None
    label = actor_label or (user.get_username() if user is not None else "system")
    with transaction.atomic():
        previous = _lock_chain_and_read_head()
        event = AuditEvent(
            occurred_at=timezone.now(),
            actor_id=user.pk if user is not None else None,
            actor_label=label[:150],
            action=action,
            object_type=object_type_of(obj) if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "",
            object_repr=str(obj)[:300] if obj is not None else "",
            person_id=person_id,
            before=_as_json(before),
            after=_as_json(after),
            detail=_as_json(detail) or {},
            request_id=current_request_id(),
            previous_hash=previous,
            key_id=current_key_id(),
        )
        event.hash = event.compute_hash()
        event.save()
    return event


def audited_update(
    rows: QuerySet[Any],
    changes: dict[str, Any],
    *,
    obj: models.Model,
    action: str,
    person_id: int | None,
    recorded: tuple[str, ...] = ("status",),
    actor: AbstractBaseUser | AnonymousUser | None = None,
    actor_label: str = "",
    detail: dict[str, Any] | None = None,
) -> int:
    """``rows.update(**changes)`` and, when it changed a row, the event ``action`` about ``obj``,
    in one transaction; how many rows it changed.

    The event records the ``recorded`` fields among ``changes``: before as ``obj`` holds them
    (the caller's conditional ``rows`` guarantee they are still so), after as ``changes`` sets
    them (plain values, not expressions).
    """
    with transaction.atomic():
        count = rows.update(**changes)
        if count:
            fields = [name for name in recorded if name in changes]
            audit_record(
                action=action,
                obj=obj,
                actor=actor,
                actor_label=actor_label,
                person_id=person_id,
                before={name: getattr(obj, name) for name in fields},
                after={name: changes[name] for name in fields},
                detail=detail,
            )
    return count


def snapshot(obj: models.Model, fields: list[str] | None = None) -> dict[str, Any]:
    """The values of ``obj``'s concrete fields (or of ``fields``), for ``before``/``after``.

    Files are recorded by their storage name, related rows by their primary key.
    """
    values: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if fields is not None and field.name not in fields:
            continue
        value = field.value_from_object(obj)
        if isinstance(value, FieldFile):
            value = value.name or ""
        values[field.attname if field.is_relation else field.name] = value
    return values


def lock_chain() -> None:
    """Wait until no other transaction is appending to the chain (until this one ends)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    # SQLite: the portal opens every transaction IMMEDIATE, which already serialises writers.


def _lock_chain_and_read_head() -> str:
    lock_chain()
    head = AuditEvent.objects.order_by("-pk").values_list("hash", flat=True).first()
    return head or GENESIS_HASH


def _as_json(value: dict[str, Any] | None) -> Any:
    """``value`` as it will read back from the JSON column, so its hash can be checked later."""
    if value is None:
        return None
    return _masked(json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


def _masked(value: Any) -> Any:
    """``value`` with the token of every signed file link in its strings masked."""
    if isinstance(value, str):
        return mask_file_tokens(value)
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    return value


def acting_user(user: AbstractBaseUser | AnonymousUser | None) -> Any:
    """The user to record as who acted, or None (anonymous: the person themselves, or the
    system)."""
    return user if user is not None and user.is_authenticated else None
