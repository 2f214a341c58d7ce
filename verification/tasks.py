"""Celery tasks of verification: thin, by id, safe to run twice.

Each loads nothing but an id, calls a service that claims the row with a conditional update, and
decides only whether to come back later. A message of a former name (``consent.tasks.*``)
still queued at an upgrade is not lost work: the poll sweep finds every pending session.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from portal.celery import app
from verification.services import invitations, sessions

# A callback's confirmation follows the session's own cadence (sessions.poll_interval) for a
# while; beat's sweep keeps polling it afterwards, until its token expires.
CONFIRM_MAX_RETRIES = 30


@app.task(bind=True, name="verification.tasks.confirm_upstream_session", max_retries=None)
def confirm_upstream_session(self: Any, upstream_session_id: int) -> str:
    """Confirm one upstream session now (a callback asked), then again while its GroupId is
    empty and its token lives. Returns the session's status."""
    session = sessions.upstream_session_confirm(upstream_session_id=upstream_session_id, force=True)
    if session.is_pending and self.request.retries < CONFIRM_MAX_RETRIES:
        now = timezone.now()
        when = session.next_poll_at or now
        if session.token_expires_at is None or when < session.token_expires_at:
            raise self.retry(countdown=max(1.0, (when - now).total_seconds()))
    return session.status


@app.task(name="verification.tasks.poll_upstream_sessions")
def poll_upstream_sessions() -> int:
    """Beat: confirm the pending sessions that are due, oldest first, within the rate budget."""
    return sessions.upstream_session_poll_due()


@app.task(name="verification.tasks.expire_invitations")
def expire_invitations() -> int:
    """Beat: end the invitations whose lifetime has passed."""
    return invitations.invitation_expire_overdue()
