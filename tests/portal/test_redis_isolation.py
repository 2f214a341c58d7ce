"""Test runs of several checkouts share one Redis: each keeps to its own keys, flushes nothing."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from portal.tasks import record_heartbeat
from tests.conftest import (
    CELERY_KEY_PREFIX,
    RUN_PREFIX,
    TEST_REDIS_URL,
    delete_prefixed,
    redis_or_unavailable,
    unavailable,
)
from upstream.ratelimit import rate_limiter_from_settings


def test_the_rate_limiter_keeps_its_counters_under_the_configured_prefix(settings, redis_prefix):
    redis = redis_or_unavailable(TEST_REDIS_URL)
    settings.ANYFAST_RATE_LIMIT_ENABLED = True
    settings.ANYFAST_RATE_LIMIT_REDIS_URL = TEST_REDIS_URL
    settings.ANYFAST_RATE_LIMIT_REDIS_PREFIX = redis_prefix

    rate_limiter_from_settings().acquire("GetAsset")

    assert [key.decode() for key in redis.scan_iter(match=f"{redis_prefix}*")]


def test_tasks_this_run_enqueues_wait_under_its_own_broker_prefix():
    broker_url = django_settings.CELERY_BROKER_URL
    if not broker_url.startswith("redis://"):
        unavailable("needs a Redis broker: CELERY_BROKER_URL=redis://... (bin/test sets it)")
    redis = redis_or_unavailable(broker_url)
    queue = f"{CELERY_KEY_PREFIX}sweeps"  # the heartbeat's queue (CELERY_TASK_ROUTES)
    # Earlier tests of this run may have left messages of their own in the queue.
    waiting, unprefixed = redis.llen(queue), redis.llen("sweeps")
    try:
        record_heartbeat.delay()

        assert redis.llen(queue) == waiting + 1
        assert redis.llen("sweeps") == unprefixed  # nothing reached the shared, unprefixed queue
    finally:
        redis.delete(queue)


def test_cleaning_up_deletes_only_the_keys_under_its_prefix(redis_prefix):
    redis = redis_or_unavailable(TEST_REDIS_URL)
    mine, theirs = f"{redis_prefix}counter", f"{RUN_PREFIX}another-test:counter"
    redis.set(mine, 1)
    redis.set(theirs, 1)
    try:
        delete_prefixed(TEST_REDIS_URL, redis_prefix)

        assert not redis.exists(mine)
        assert redis.exists(theirs)
    finally:
        redis.delete(theirs)


@pytest.mark.parametrize("prefix", ["", "*"])
def test_cleaning_up_refuses_a_prefix_that_would_match_every_key(prefix):
    with pytest.raises(ValueError, match="prefix"):
        delete_prefixed(TEST_REDIS_URL, prefix)
