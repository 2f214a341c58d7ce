"""A lease renewed while its worker lives: a live worker keeps its row past the lease's length, a
dead one's lapses within a lease, and the renewal never overwrites what someone else wrote."""

from __future__ import annotations

import datetime
import time

import pytest
from django.utils import timezone

from assets.models import Asset
from portal.leases import renewed_lease
from tests.factories import AssetFactory

# The renewal runs in a thread with its own database connection: committed rows only. Each test
# waits on the real clock for leases to be renewed or to lapse, seconds in all (slow).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LEASE = 0.6


def claimed(private_files) -> tuple[Asset, datetime.datetime]:
    lease_end = timezone.now() + datetime.timedelta(seconds=LEASE)
    asset = AssetFactory(status=Asset.Status.UPLOADING, next_attempt_at=lease_end, attempts=1)
    return asset, lease_end


def lapsed(asset: Asset) -> bool:
    return Asset.objects.upload_lease_expired(timezone.now()).filter(pk=asset.pk).exists()


def test_a_live_workers_lease_is_renewed_and_lapses_once_it_stops(private_files):
    asset, lease_end = claimed(private_files)
    rows = Asset.objects.filter(pk=asset.pk, attempts=1)

    with renewed_lease(rows, lease_end=lease_end, lease_seconds=LEASE, max_seconds=60):
        time.sleep(LEASE * 4)  # a call four leases long
        assert not lapsed(asset)

    time.sleep(LEASE * 1.5)  # no more renewals: a dead worker's row is free again
    assert lapsed(asset)


def test_the_renewal_stops_once_the_row_moved_on(private_files):
    asset, lease_end = claimed(private_files)
    rows = Asset.objects.filter(pk=asset.pk, attempts=1)
    later = timezone.now() + datetime.timedelta(hours=1)

    with renewed_lease(rows, lease_end=lease_end, lease_seconds=LEASE, max_seconds=60):
        # The worker records its answer (or a sweeper reclaims the row) meanwhile.
        Asset.objects.filter(pk=asset.pk).update(next_attempt_at=later)
        time.sleep(LEASE * 2)

    assert Asset.objects.get(pk=asset.pk).next_attempt_at == later


def test_a_hung_worker_stops_renewing_after_its_longest_call(private_files):
    asset, lease_end = claimed(private_files)
    rows = Asset.objects.filter(pk=asset.pk, attempts=1)

    with renewed_lease(rows, lease_end=lease_end, lease_seconds=LEASE, max_seconds=LEASE):
        time.sleep(LEASE * 3)
        assert lapsed(asset)
