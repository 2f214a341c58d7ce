"""Queue, send and sweep the portal's emails (``OutboundEmail``), the one retry policy for all.

``email_queue`` renders nothing itself: callers pass the subject and bodies they rendered (in the
recipient's language) and the row they are about. The row is sent by ``mail.tasks.send_email``
after commit; a failure is kept on the row and tried again at ``next_attempt_at``
(``RETRY_DELAYS``) by the sweeper, which also finds rows whose task message was lost. After
``MAX_ATTEMPTS`` the email is failed. Every outcome is an audit event about the email.
"""

from __future__ import annotations

import datetime
import logging
import mimetypes
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.mail import EmailMultiAlternatives
from django.db import models, transaction
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils import timezone, translation

from audit.services import acting_user, audit_record
from mail.models import EmailStatus, OutboundEmail
from portal.queue import enqueue_after_commit

logger = logging.getLogger(__name__)

SEND_TASK = "mail.tasks.send_email"
MAX_ATTEMPTS = 5
# Seconds before the 2nd, 3rd, … attempt (the last repeating).
RETRY_DELAYS = (10, 60, 300, 900)
# A queued email this long past due was not picked up by its task: the sweeper sends it again.
LOST_AFTER = datetime.timedelta(seconds=30)
SWEEP_BATCH = 200
WORKER = "worker"

_ACTIONS: dict[str, str] = {
    EmailStatus.SENT: "email.sent",
    EmailStatus.QUEUED: "email.attempt_failed",  # to be tried again
    EmailStatus.FAILED: "email.failed",
}


def render_email(template: str, context: dict[str, Any], *, language: str) -> tuple[str, str, str]:
    """``(subject, text, html)`` of ``template`` in a Django ``language``: the templates
    ``<template>_subject.txt``, ``<template>.txt`` and, when it exists, ``<template>.html``."""
    with translation.override(language):
        subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
        text: str = render_to_string(f"{template}.txt", context)
        try:
            html: str = render_to_string(f"{template}.html", context)
        except TemplateDoesNotExist:  # plain-text emails have no HTML template
            html = ""
    return subject, text, html


def email_queue(
    *,
    kind: str,
    to: str,
    subject: str,
    text: str,
    html: str = "",
    about: models.Model,
    person_id: int | None,
    language: str = "",
    created_by: AbstractBaseUser | AnonymousUser | None = None,
    attachment: str = "",
    attachment_name: str = "",
) -> OutboundEmail:
    """Record an email to ``to`` about ``about`` and send it after commit.

    ``attachment`` is the storage name of a file already stored (default storage), sent
    attached as ``attachment_name``; the file is read when the email is sent."""
    email = OutboundEmail.objects.create(
        kind=kind,
        to=to,
        subject=subject[:200],
        body_text=text,
        body_html=html,
        about=about,
        person_id=person_id,
        language=language,
        created_by=acting_user(created_by),
        attachment=attachment,
        attachment_name=attachment_name,
    )
    enqueue_after_commit(SEND_TASK, email.pk)
    return email


def email_send(*, email_id: int) -> OutboundEmail:
    """Send a queued email whose attempt is due, recording the outcome on the row.

    Idempotent: a sent or failed email, or one not due yet, is left alone; the row is locked
    while sending, so two workers never both send it.
    """
    with transaction.atomic():
        email = OutboundEmail.objects.select_for_update().get(pk=email_id)
        now = timezone.now()
        if email.status != EmailStatus.QUEUED or email.next_attempt_at > now:
            return email
        email.attempts += 1
        try:
            message = EmailMultiAlternatives(email.subject, email.body_text, to=[email.to])
            if email.body_html:
                message.attach_alternative(email.body_html, "text/html")
            if email.attachment:
                name = email.attachment_name or str(email.attachment.name).rsplit("/", 1)[-1]
                with email.attachment.open("rb") as attached:
                    content = attached.read()
                message.attach(name, content, mimetypes.guess_type(name)[0])
            message.send()
        except Exception as exc:  # SMTP, DNS, TLS: every failure is recorded on the row
            email.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if email.attempts >= MAX_ATTEMPTS:
                email.status = EmailStatus.FAILED
            else:
                delay = RETRY_DELAYS[min(email.attempts, len(RETRY_DELAYS)) - 1]
                email.next_attempt_at = now + datetime.timedelta(seconds=delay)
            logger.warning("email %s failed (attempt %d): %s", email.pk, email.attempts, exc)
        else:
            email.status = EmailStatus.SENT
            email.sent_at = now
            email.last_error = ""
        email.save(
            update_fields=[
                "attempts", "last_error", "status", "sent_at", "next_attempt_at", "updated_at"
            ]
        )  # fmt: skip
        audit_record(
            action=_ACTIONS[email.status],
            obj=email,
            actor_label=WORKER,
            person_id=email.person_id,
            after={"status": email.status, "attempts": email.attempts},
            detail={"to": email.to, "kind": email.kind, "error": email.last_error[:500]},
        )
    if email.status == EmailStatus.QUEUED:
        enqueue_after_commit(
            SEND_TASK, email.pk, countdown=(email.next_attempt_at - now).total_seconds()
        )
    return email


def emails_sweep(*, now: datetime.datetime | None = None) -> int:
    """Send again the queued emails whose task never ran (a lost message, a dead worker, a
    broker that was down when they were queued); how many were sent to the queue."""
    now = now or timezone.now()
    lost = OutboundEmail.objects.due(now - LOST_AFTER).order_by("next_attempt_at", "pk")
    ids = list(lost.values_list("pk", flat=True)[:SWEEP_BATCH])
    for email_id in ids:
        enqueue_after_commit(SEND_TASK, email_id)
    return len(ids)
