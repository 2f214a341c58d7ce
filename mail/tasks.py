"""The outbox's tasks: send one email by id; beat's sweep of emails whose message was lost."""

from __future__ import annotations

from mail import services
from portal.celery import app


@app.task(name="mail.tasks.send_email", ignore_result=True)
def send_email(email_id: int) -> None:
    """Send one queued email if it is due; a failure sets its next attempt (the row keeps it)."""
    services.email_send(email_id=email_id)


@app.task(name="mail.tasks.sweep_emails", ignore_result=True)
def sweep_emails() -> int:
    """Beat: queue again the emails whose task never ran."""
    return services.emails_sweep()
