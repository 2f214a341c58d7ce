"""Celery tasks of the consent lifecycle (beat's daily work): thin, safe to run twice."""

from __future__ import annotations

from consent import services
from portal.celery import app


@app.task(name="consent.tasks.expire_consents")
def expire_consents() -> list[int]:
    """Beat: end the approved consents past their end date; each starts its withdrawal."""
    return services.consent_expire_due()


@app.task(name="consent.tasks.warn_expiring_consents")
def warn_expiring_consents() -> list[int]:
    """Beat: warn the person and staff of consents ending within CONSENT_EXPIRY_WARNING_DAYS."""
    return services.consent_warn_expiring()
