"""Queues by urgency: uploads, withdrawals, verification, emails and beat's sweeps never share one,
and the processes of the Procfile consume every queue."""

from __future__ import annotations

import re

from django.conf import settings

from portal.celery import app


def queue_of(task_name: str) -> str:
    return app.amqp.router.route({}, task_name)["queue"].name


def test_every_task_has_a_queue_by_its_urgency():
    app.loader.import_default_modules()
    portal_tasks = {name for name in app.tasks if not name.startswith("celery.")}
    assert portal_tasks <= set(settings.CELERY_TASK_ROUTES), "a task without a route"
    assert queue_of("assets.tasks.submit_asset") == "uploads"
    assert queue_of("assets.tasks.withdraw_item") == "withdrawals"
    assert queue_of("verification.tasks.confirm_upstream_session") == "verification"
    assert queue_of("verification.tasks.poll_upstream_sessions") == "verification"
    assert queue_of("mail.tasks.send_email") == "emails"
    for sweep in ("assets.tasks.sweep_assets", "assets.tasks.sweep_withdrawals"):
        assert queue_of(sweep) == "sweeps"
    assert queue_of("mail.tasks.sweep_emails") == "sweeps"


def test_the_procfile_consumes_every_queue_and_uploads_apart():
    procfile = (settings.BASE_DIR / "Procfile").read_text()
    consumed = {
        name: set(queues.split(","))
        for name, queues in re.findall(r"^(\w+): celery .*--queues (\S+)", procfile, re.M)
    }
    assert set().union(*consumed.values()) == set(settings.WORKER_QUEUES)
    assert consumed["uploads"] == {"uploads"}  # a backlog of uploads delays nothing else
