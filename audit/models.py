"""The append-only audit trail.

Each event records who did what to which object, when, with the state before and after, and
the request or task it came from. Events are never changed or deleted: the ORM refuses, the
admin offers no way, and database triggers refuse UPDATE and DELETE (migration 0002); the
portal's production database role may only SELECT and INSERT (``grant_portal_role``). Each event
also stores an HMAC-SHA256 of its content chained to the previous event's hash, under a key the
database never holds (``audit.chain``), so ``manage.py verify_audit`` shows that none was
altered, inserted or removed, even by whoever owns the table.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.conf import settings
from django.db import models

from audit.chain import CONTENT_FIELDS, content_of, keyed_hash

# The hash the first event chains to.
GENESIS_HASH = "0" * 64


class AppendOnlyError(Exception):
    """An attempt to change or delete an audit event."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Audit events cannot be changed.")

    def delete(self) -> NoReturn:  # type: ignore[override]
        raise AppendOnlyError("Audit events cannot be deleted.")

    def for_object(self, obj: models.Model) -> AuditEventQuerySet:
        """Events about ``obj``, those recorded under its model's former label included (a
        model that moved app keeps ``former_audit_labels``: events are never rewritten)."""
        labels = [object_type_of(obj), *getattr(obj, "former_audit_labels", ())]
        return self.filter(object_type__in=labels, object_id=str(obj.pk))


def object_type_of(obj: models.Model) -> str:
    """``app_label.modelname`` of ``obj``, as events name object types."""
    return obj._meta.label_lower


class AuditEvent(models.Model):
    """One thing that happened, recorded in the same transaction as the change itself."""

    occurred_at = models.DateTimeField()
    # No database constraint: a user's deletion must neither cascade nor update an event.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(
        max_length=150, help_text="Who acted, as it read then: a username, or the system part."
    )
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300, blank=True)
    person_id = models.BigIntegerField(
        null=True, blank=True, db_index=True, help_text="The person the event concerns, if any."
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=80, blank=True)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    key_id = models.CharField(
        max_length=32, default="", help_text="The id of the chain key that hashed this event."
    )

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-pk"]
        indexes = [
            models.Index(fields=["object_type", "object_id"]),
            # The list's periods ("occurred_at" filter) and its newest first (issue 16).
            models.Index(fields=["occurred_at"], name="audit_event_occurred_at"),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Audit events cannot be deleted.")

    def content(self) -> dict[str, Any]:
        """What the hash covers: every recorded field but the database id and the hash."""
        return content_of([getattr(self, name) for name in CONTENT_FIELDS])

    def compute_hash(self) -> str:
        """The keyed hash of this event's content (``UnknownChainKey`` when its key is gone)."""
        return keyed_hash(self.content())
