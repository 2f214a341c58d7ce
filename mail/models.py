"""The outbox: every email the portal sends, as a row rendered when it is queued.

Invitations, warnings that a consent ends soon, notices to producers and whatever comes next are
all an ``OutboundEmail``: who it goes to, its subject and bodies (rendered once, in the
recipient's language, when the row is made), what it is about (any row, through a generic
relation) and whose it is (``person_id``, for their timeline and audit). ``mail.services`` sends
it and keeps the attempts; its sweeper finds rows whose task message was lost.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.constraints import FieldCheckConstraint


class EmailStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class OutboundEmailQuerySet(models.QuerySet["OutboundEmail"]):
    def about(self, obj: models.Model) -> OutboundEmailQuerySet:
        """The emails about ``obj`` (an invitation, a consent record, a producer notice…)."""
        return self.filter(
            about_type=ContentType.objects.get_for_model(obj, for_concrete_model=False),
            about_id=obj.pk,
        )

    def due(self, now: Any = None) -> OutboundEmailQuerySet:
        """Queued emails whose next attempt has come."""
        return self.filter(status=EmailStatus.QUEUED, next_attempt_at__lte=now or timezone.now())


def emails_about() -> GenericRelation:
    """The relation a model declares to reach the emails about its rows (``row.emails``)."""
    return GenericRelation(
        "mail.OutboundEmail", content_type_field="about_type", object_id_field="about_id"
    )


class OutboundEmail(models.Model):
    """One email the portal sends, and what became of it (attempts, last error, when sent)."""

    Status = EmailStatus

    kind = models.CharField(
        max_length=50, help_text="What sort of email: invitation, consent_expiry_warning, …"
    )
    to = models.EmailField()
    language = models.CharField(max_length=8, blank=True)
    subject = models.CharField(max_length=200)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    attachment = models.FileField(
        blank=True,
        max_length=300,
        editable=False,
        help_text="A stored file sent attached (e.g. a signed consent's copy), by storage name.",
    )
    attachment_name = models.CharField(
        max_length=200, blank=True, editable=False, help_text="The attachment's file name."
    )
    about_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    about_id = models.PositiveBigIntegerField()
    about = GenericForeignKey("about_type", "about_id")
    person_id = models.BigIntegerField(
        null=True, blank=True, db_index=True, help_text="The person it concerns, if any."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OutboundEmailQuerySet.as_manager()
    # Audit events of emails recorded before the outbox name this earlier model.
    former_audit_labels = ("consent.outboundemail",)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "email"
        indexes = [
            models.Index(fields=["about_type", "about_id"]),
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="queued"),
                name="mail_queued_due",
            ),
            models.Index(fields=["-created_at", "-id"], name="email_newest_first"),
        ]
        constraints = [
            FieldCheckConstraint(
                condition=Q(status__in=EmailStatus.values),
                name="email_status_valid",
                field="status",
                violation_error_message="This is not a status an email can have.",
            ),
            FieldCheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="email_sent_has_time",
                field="status",
                violation_error_message="A sent email needs the time it was sent.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} email to {self.to} ({self.get_status_display()})"
