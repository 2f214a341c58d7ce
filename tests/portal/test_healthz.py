import datetime

import pytest
from django.test import Client
from django.utils import timezone
from django_celery_results.models import TaskResult

from portal.tasks import record_heartbeat

pytestmark = pytest.mark.django_db


def _heartbeat(seconds_ago: float) -> None:
    result = TaskResult.objects.create(
        task_id=f"heartbeat-{seconds_ago}", task_name=record_heartbeat.name, status="SUCCESS"
    )
    # date_done is auto_now: set it after the fact.
    TaskResult.objects.filter(pk=result.pk).update(
        date_done=timezone.now() - datetime.timedelta(seconds=seconds_ago)
    )


def test_healthz_reports_a_live_worker(client: Client):
    _heartbeat(seconds_ago=30)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    body = response.json()
    assert body["database"] == "ok"
    assert body["worker"]["ok"] is True
    assert body["worker"]["last_heartbeat"]


def test_healthz_flags_a_silent_worker_but_stays_up(client: Client):
    _heartbeat(seconds_ago=600)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["worker"]["ok"] is False


def test_healthz_with_no_worker_ever_seen(client: Client):
    body = client.get("/healthz").json()

    assert body["worker"] == {"last_heartbeat": None, "ok": False}


def test_healthz_answers_503_when_the_database_is_down(client: Client, monkeypatch):
    from django.db import DatabaseError, connection

    def refuse(*args, **kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"database": "unavailable"}


def test_beat_schedules_the_heartbeat_every_interval(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["worker-heartbeat"]
    assert entry["task"] == record_heartbeat.name
    assert entry["schedule"] == settings.HEARTBEAT_INTERVAL_SECONDS
