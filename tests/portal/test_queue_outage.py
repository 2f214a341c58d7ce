"""Sending a task when the broker is unreachable: the committed work stands, the caller learns
that its task waits for a sweeper, and a page pays the broker's timeout once, not per task."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from portal import queue
from sandbox.servers import free_port
from tests.celery_helpers import broker_at

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker_down(monkeypatch):
    monkeypatch.setattr(queue, "_broker_down_until", 0.0)
    with broker_at(f"redis://127.0.0.1:{free_port()}/0"):  # nothing listens there
        yield


def test_an_unreachable_broker_fails_fast_and_leaves_the_tasks_to_the_sweepers(broker_down):
    began = time.monotonic()
    with queue.sends_recorded() as sends, transaction.atomic():
        queue.enqueue_after_commit("mail.tasks.send_email", 1)
    first = time.monotonic() - began
    with queue.sends_recorded() as later, transaction.atomic():
        queue.enqueue_after_commit("mail.tasks.send_email", 2)
        queue.enqueue_after_commit("assets.tasks.submit_asset", 3)
    rest = time.monotonic() - began - first

    assert sends == [queue.Send("mail.tasks.send_email", (1,), sent=False)]
    assert [send.sent for send in later] == [False, False]
    assert first < 3  # one quick retry, then given up
    assert rest < 0.1  # the broker failed moments ago: not tried again


def test_a_reachable_broker_takes_the_task(monkeypatch):
    monkeypatch.setattr(queue, "_broker_down_until", 0.0)
    with queue.sends_recorded() as sends:
        queue.enqueue_after_commit("portal.tasks.record_heartbeat")

    assert sends == [queue.Send("portal.tasks.record_heartbeat", (), sent=True)]
