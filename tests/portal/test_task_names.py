"""Tasks are sent by name (``portal.queue``, beat's schedule): every name sent is a task a worker
has, so a typo cannot leave rows waiting for their sweeper."""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

from portal.celery import app
from tests.portal.test_layering import portal_modules

SENDERS = {"enqueue_after_commit", "send_task"}


def _names_sent() -> set[str]:
    """Task names given as a literal to a sender, or as a module constant named ``*_TASK``."""
    names = set()
    for path in portal_modules():
        tree = ast.parse(Path(path).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in SENDERS:
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                target = node.targets[0]
                if isinstance(target, ast.Name) and target.id.endswith("_TASK"):
                    names.add(node.value.value)
    return names


def test_every_task_the_portal_sends_is_registered():
    app.loader.import_default_modules()
    sent = _names_sent() | {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    sent |= set(settings.CELERY_TASK_ROUTES)  # a route of a misspelt name would route nothing

    assert "assets.tasks.submit_asset" in sent and "mail.tasks.send_email" in sent
    assert sorted(sent - set(app.tasks)) == []
