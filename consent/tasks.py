"""Celery tasks of the verification workflow and the consent lifecycle: thin, by id, safe to
run twice.

Each loads nothing but an id, calls a service (``consent.services``) that claims the row with a
conditional update, and decides only whether to come back later.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from consent import services
from consent.models import EmailStatus
from portal.celery import app

# A callback's confirmation follows the session's own cadence (services.poll_interval) for a
# while; beat's sweep keeps polling it afterwards, until its token expires.
CONFIRM_MAX_RETRIES = 30
EMAIL_RETRY_COUNTDOWNS = (10, 60, 300, 900)


@app.task(bind=True, name="consent.tasks.confirm_upstream_verification", max_retries=None)
def confirm_upstream_verification(self: Any, upstream_verification_id: int) -> str:
    """Confirm one upstream session now (a callback asked), then again while its GroupId is
    empty and its token lives. Returns the session's status."""
    verification = services.upstream_verification_confirm(
        upstream_verification_id=upstream_verification_id, force=True
    )
    if verification.is_pending and self.request.retries < CONFIRM_MAX_RETRIES:
        now = timezone.now()
        when = verification.next_poll_at or now
        if verification.token_expires_at is None or when < verification.token_expires_at:
            raise self.retry(countdown=max(1.0, (when - now).total_seconds()))
    return verification.status


@app.task(name="consent.tasks.poll_upstream_verifications")
def poll_upstream_verifications() -> int:
    """Beat: confirm the pending sessions that are due, oldest first, within the rate budget."""
    return services.upstream_verification_poll_due()


@app.task(name="consent.tasks.expire_invitations")
def expire_invitations() -> int:
    """Beat: end the invitations whose lifetime has passed."""
    return services.invitation_expire_overdue()


@app.task(bind=True, name="consent.tasks.send_outbound_email", max_retries=None)
def send_outbound_email(self: Any, outbound_email_id: int) -> str:
    """Send one recorded email; a failure is retried later (the row counts the attempts)."""
    email = services.outbound_email_send(outbound_email_id=outbound_email_id)
    if email.status == EmailStatus.QUEUED:
        countdowns = EMAIL_RETRY_COUNTDOWNS
        raise self.retry(countdown=countdowns[min(self.request.retries, len(countdowns) - 1)])
    return email.status


@app.task(name="consent.tasks.expire_consents")
def expire_consents() -> list[int]:
    """Beat: end the approved consents past their end date; each starts its withdrawal."""
    return services.consent_expire_due()


@app.task(name="consent.tasks.warn_expiring_consents")
def warn_expiring_consents() -> list[int]:
    """Beat: warn the person and staff of consents ending within CONSENT_EXPIRY_WARNING_DAYS."""
    return services.consent_warn_expiring()
