"""The one shared throttle (``portal.throttle``): counts in the database, one window per key,
exact under concurrent requests on separate connections, stale rows cleaned on the way."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.db import connection
from django.utils import timezone

from portal.models import ThrottleCount
from portal.throttle import throttle_take

HOUR = 3600


def take(key: str, at: datetime.datetime, *, limit: int = 3, window: int = HOUR) -> bool:
    return throttle_take(key=key, limit=limit, window_seconds=window, now=at)


@pytest.mark.django_db
def test_a_key_is_refused_past_its_limit_until_its_window_ends():
    start = timezone.now()

    answers = [
        take("me-link:client:203.0.113.9", start + datetime.timedelta(minutes=n)) for n in range(5)
    ]

    assert answers == [True, True, True, False, False]
    # The window started at the first request and is not lengthened by refusals.
    assert not take("me-link:client:203.0.113.9", start + datetime.timedelta(minutes=59))
    assert take("me-link:client:203.0.113.9", start + datetime.timedelta(minutes=60))
    assert ThrottleCount.objects.get(key="me-link:client:203.0.113.9").taken == 1


@pytest.mark.django_db
def test_keys_of_different_windows_share_the_table_without_cutting_each_others_short():
    start = timezone.now()
    for _ in range(3):
        take("me-link:address:digest", start)  # an hour's window
    take("code:198.51.100.7", start, window=600)

    # Eleven minutes on, the code's window has ended (its row goes); the link's has not.
    assert take("code:203.0.113.9", start + datetime.timedelta(minutes=11), window=600)

    assert not ThrottleCount.objects.filter(key="code:198.51.100.7").exists()
    assert ThrottleCount.objects.get(key="me-link:address:digest").taken == 3
    assert not take("me-link:address:digest", start + datetime.timedelta(minutes=12))


@pytest.mark.django_db
def test_rows_whose_window_ended_are_deleted_on_the_way():
    now = timezone.now()
    ThrottleCount.objects.bulk_create(
        [
            ThrottleCount(
                key=f"old:{n}", window_ends_at=now - datetime.timedelta(seconds=n), taken=5
            )
            for n in range(150)
        ]
        + [
            ThrottleCount(
                key="current", window_ends_at=now + datetime.timedelta(minutes=5), taken=2
            )
        ]
    )

    take("someone", now)
    take("someone", now)

    assert sorted(ThrottleCount.objects.values_list("key", flat=True)) == ["current", "someone"]


@pytest.mark.django_db(transaction=True)
def test_requests_on_separate_connections_at_once_share_one_exact_count():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions need PostgreSQL")
    barrier = threading.Barrier(12)
    answers: list[bool] = []
    lock = threading.Lock()

    def request() -> None:  # a web worker's thread: a connection of its own
        try:
            barrier.wait()
            for _ in range(3):
                allowed = throttle_take(
                    key="me-link:client:203.0.113.9", limit=10, window_seconds=HOUR
                )
                with lock:
                    answers.append(allowed)
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers) == [False] * 26 + [True] * 10
    assert ThrottleCount.objects.get(key="me-link:client:203.0.113.9").taken == 36
