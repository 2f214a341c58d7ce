"""Producers told when references they copied are withdrawn: a notice each, and an email.

``reference_copies_notify_withdrawn`` makes one ``ProducerNotice`` per producer not told yet
(shown on their pages until acknowledged) and queues its email through the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from itertools import groupby
from operator import attrgetter
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch
from django.urls import reverse
from django.utils import timezone

from assets.models import ProducerNotice, ReferenceCopy
from audit.services import audit_record
from mail.models import OutboundEmail
from mail.services import email_queue, render_email

logger = logging.getLogger(__name__)


@transaction.atomic
def reference_copies_notify_withdrawn(
    *, asset_ids: Iterable[int], reason: str
) -> list[ProducerNotice]:
    """Tell every producer who copied a reference of ``asset_ids`` to stop using it.

    For whoever withdraws assets (a revocation, an expiry, an asset withdrawn): call it once the
    assets may no longer be used, with ``reason`` in words a producer understands ("The person
    revoked their consent on 2026-05-01."). Each producer with copies of those assets not yet
    told about gets one ``ProducerNotice`` (shown on the references page and in the admin until
    acknowledged) listing each asset once per project (person's display name, ``asset://<Id>``,
    project) with the reason, and one email with the same list when they have an address (a
    ``OutboundEmail`` row, sent by ``assets.tasks.send_email`` after commit). An audit
    event records each notice.

    Safe to call again (a retried task): copies already in a notice are not told twice; the
    copies are locked first, so two concurrent calls do not both tell. Returns the new notices.
    """
    ids = list(asset_ids)
    locked = list(
        ReferenceCopy.objects.filter(asset_id__in=ids)
        .select_for_update()
        .values_list("pk", flat=True)
    )
    untold = (
        ReferenceCopy.objects.filter(pk__in=locked, notices__isnull=True)
        .select_related("user")
        .order_by("user_id", "copied_at", "pk")
    )
    notices = []
    for user, copies in groupby(untold, key=attrgetter("user")):
        notice = ProducerNotice.objects.create(user=user, reason=reason)
        notice.copies.set(list(copies))
        notice = ProducerNotice.objects.prefetch_related(
            Prefetch("copies", ReferenceCopy.objects.select_related("asset__group__person"))
        ).get(pk=notice.pk)
        lines = notice.lines()
        audit_record(
            action="producer_notice.created",
            obj=notice,
            actor_label="system",
            detail={"producer": user.pk, "reason": reason, "references": lines},
        )
        if user.email:
            _queue_notice_email(notice, lines)
        else:
            logger.warning("producer %s has no email address: notice %s only", user.pk, notice.pk)
        notices.append(notice)
    return notices


def _queue_notice_email(notice: ProducerNotice, lines: list[dict[str, str]]) -> OutboundEmail:
    context = {
        "user": notice.user,
        "reason": notice.reason,
        "lines": lines,
        "count": len(lines),
        "references_url": settings.PORTAL_PUBLIC_URL.rstrip("/") + reverse("references:list"),
        "organisation": settings.PORTAL_ORGANISATION_NAME,
    }
    subject, text, html = render_email(
        "assets/email/references_withdrawn", context, language=settings.LANGUAGE_CODE
    )
    return email_queue(
        kind="references_withdrawn",
        to=notice.user.email,
        subject=subject,
        text=text,
        html=html,
        about=notice,
        person_id=None,
    )


def producer_notice_acknowledge(*, notice: ProducerNotice, user: Any) -> bool:
    """The producer read ``notice`` (their own): it leaves their pages. False when it was
    acknowledged already, or is someone else's."""
    with transaction.atomic():
        acknowledged = ProducerNotice.objects.filter(
            pk=notice.pk, user=user, acknowledged_at__isnull=True
        ).update(acknowledged_at=timezone.now())
        if acknowledged:
            audit_record(action="producer_notice.acknowledged", obj=notice, actor=user)
    return bool(acknowledged)
