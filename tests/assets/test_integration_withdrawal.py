"""A revocation reaches the upstream through real Celery worker processes on Redis, against the
sandbox, even when the worker deleting an asset is killed mid-call.

The sandbox is served by the live server in this process, so the test holds the first DeleteAsset
open (``HeldCreates`` wraps any action) while it kills the worker that sent it, then lets that
delete land: the asset is gone upstream, but nobody recorded it. Beat's withdrawal sweeper in a
second worker must resume the item within a minute of the death (the shipped lease and sweep
settings; the upstream's NotFound now confirms it), work the rest, delete the group, and tell the
producers.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from assets import tasks
from assets.models import (
    Asset,
    AssetGroup,
    Withdrawal,
    WithdrawalItem,
    WithdrawalOutcome,
    WithdrawalProof,
)
from assets.services import pipeline
from consent.services import consent_revoke
from sandbox import actions, counters
from sandbox.demo import demo_group_create
from sandbox.models import SandboxAsset, SandboxGroup
from sandbox.samples import make_image
from tests.assets.test_asset_pipeline import quick_client, upload
from tests.celery_helpers import celery_worker, purge_queue, require_worker_services
from tests.factories import AssetGroupFactory, UserFactory
from tests.upstream_helpers import SANDBOX_KEY, HeldCreates

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for(condition: Callable[[], bool], what: str, *logs: Any, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            output = "\n".join(log.log_path.read_text() for log in logs)
            pytest.fail(f"timed out waiting until {what}:\n{output}")
        time.sleep(0.2)


def deletes_sent() -> int:
    return counters.snapshot().get("DeleteAsset", {}).get("calls", 0)


def _worker_env(upstream: Any, tmp_path: Any, private_files: Any) -> dict[str, str]:
    return {
        "ANYFAST_BASE_URL": f"{upstream.url}/sandbox",
        "PORTAL_PUBLIC_URL": upstream.url,
        "ANYFAST_API_KEY": SANDBOX_KEY,
        "ANYFAST_RATE_LIMIT_REDIS_URL": "",
        "ANYFAST_RATE_LIMIT_FILE": str(tmp_path / "rate-limit.sqlite3"),
        "PRIVATE_MEDIA_ROOT": str(private_files),
        "ASSET_SWEEP_INTERVAL_SECONDS": "60",
    }


def _active_assets(group: AssetGroup, count: int) -> list[Asset]:
    assets = []
    for n in range(count):
        picture = make_image(width=400, height=600, fmt="PNG", face="ada", label=str(n))
        asset = upload(group, picture, name=f"face-{n}.png")
        pipeline.asset_submit(asset_id=asset.pk, client=quick_client())
        assets.append(asset)
    pipeline.assets_poll(client=quick_client())
    assert Asset.objects.usable_by_producers().count() == count
    return assets


def test_a_revocation_reaches_the_upstream_through_workers_even_when_one_dies(
    upstream, settings, private_files, tmp_path, monkeypatch
):
    require_worker_services()
    purge_queue()
    settings.SANDBOX_PROCESSING_SECONDS = 0
    settings.ASSET_POLL_FIRST_SECONDS = 0
    # The uploads are made here, in this process; only the withdrawal goes through the broker.
    monkeypatch.setattr(tasks.submit_asset, "apply_async", lambda *args, **kwargs: None)
    group = AssetGroupFactory(
        verified=True, group_id=demo_group_create(api_key=SANDBOX_KEY, identity="ada").group_id
    )
    consent = group.upstream_session.invitation.consent
    assets = _active_assets(group, 3)
    held = HeldCreates()  # the first DeleteAsset is held open until released, then handled
    monkeypatch.setitem(actions.ACTIONS, "DeleteAsset", held.wrap(actions.ACTIONS["DeleteAsset"]))

    worker_env = _worker_env(upstream, tmp_path, private_files)
    with celery_worker(tmp_path, env=worker_env, name="doomed") as doomed:
        consent_revoke(
            record=consent, actor=UserFactory(), channel="email", reason="Changed their mind."
        )
        # At once, before any worker did anything: out of producers' hands.
        assert not Asset.objects.usable_by_producers().exists()
        wait_for(lambda: deletes_sent() == 1, "the worker sent DeleteAsset", doomed)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        killed_at = time.monotonic()
        first = WithdrawalItem.objects.get(withdrawal__consent=consent, attempts=1)

    held.release(then_wait_for=1)  # the delete lands, but its worker is gone
    withdrawal = Withdrawal.objects.get(consent=consent)
    assert withdrawal.confirmed_at is None
    assert SandboxAsset.objects.filter(group__group_id=group.group_id).count() == 2

    with celery_worker(tmp_path, env=worker_env, beat=True, name="rescuer") as rescuer:
        wait_for(
            lambda: WithdrawalItem.objects.get(pk=first.pk).attempts >= 2,
            "beat's sweeper resumed the dead worker's item",
            rescuer,
        )
        assert time.monotonic() - killed_at < 60
        wait_for(
            lambda: Withdrawal.objects.get(pk=withdrawal.pk).confirmed_at is not None,
            "beat's sweeper resumed the withdrawal and the upstream confirmed every item",
            rescuer,
        )
        wait_for(
            lambda: Withdrawal.objects.get(pk=withdrawal.pk).producers_notified_at is not None,
            "the producers were told",
            rescuer,
        )

    items = list(withdrawal.items.all())
    assert all(item.status == WithdrawalItem.Status.CONFIRMED for item in items)
    assert all(item.confirmed_at is not None for item in items)
    proofs = sorted((item.outcome, item.proven_by) for item in items if item.asset_id)
    # The killed worker's delete went through upstream: the retry's NotFound, and a listing of
    # the group no longer showing it, confirm it as the portal's own deletion (not "already
    # gone": its first delete was recorded as sent before it left).
    assert proofs == [
        (WithdrawalOutcome.DELETED, WithdrawalProof.DELETE_ANSWER),
        (WithdrawalOutcome.DELETED, WithdrawalProof.DELETE_ANSWER),
        (WithdrawalOutcome.DELETED, WithdrawalProof.LISTING),
    ]
    assert [item.outcome for item in items if item.asset_id is None] == [WithdrawalOutcome.DELETED]
    assert not SandboxAsset.objects.filter(asset_id__in=[a.upstream_id for a in assets]).exists()
    assert not SandboxGroup.objects.filter(group_id=group.group_id).exists()
    assert AssetGroup.objects.get(pk=group.pk).withdrawn_at is not None
    assert set(Asset.objects.values_list("status", flat=True)) == {Asset.Status.WITHDRAWN}


def test_deletes_answered_500_after_acting_are_confirmed_by_listing_through_a_worker(
    upstream, settings, private_files, tmp_path, monkeypatch
):
    """Issue 14: GetAsset cannot see LivenessFace assets (G10) and every DeleteAsset deletes,
    then answers 500. A real worker confirms each asset only by the group's listing."""
    require_worker_services()
    purge_queue()
    settings.SANDBOX_PROCESSING_SECONDS = 0
    settings.ASSET_POLL_FIRST_SECONDS = 0
    monkeypatch.setattr(tasks.submit_asset, "apply_async", lambda *args, **kwargs: None)
    group = AssetGroupFactory(
        verified=True, group_id=demo_group_create(api_key=SANDBOX_KEY, identity="ada").group_id
    )
    consent = group.upstream_session.invitation.consent
    assets = _active_assets(group, 3)
    settings.SANDBOX_GETASSET_HIDES_LIVENESS = True
    settings.SANDBOX_FAULT_ACTIONS = ["DeleteAsset"]
    settings.SANDBOX_FAULT_RATE_500_AFTER = 1.0

    with celery_worker(tmp_path, env=_worker_env(upstream, tmp_path, private_files)) as worker:
        consent_revoke(
            record=consent, actor=UserFactory(), channel="email", reason="Changed their mind."
        )
        withdrawal = Withdrawal.objects.get(consent=consent)
        wait_for(
            lambda: Withdrawal.objects.get(pk=withdrawal.pk).confirmed_at is not None,
            "the worker proved every deletion and deleted the group",
            worker,
        )

    assert deletes_sent() == 3  # each asset's DeleteAsset once: its listing proved it
    items = list(withdrawal.items.all())
    assert (
        sorted((item.outcome, item.proven_by) for item in items if item.asset_id)
        == [(WithdrawalOutcome.DELETED, WithdrawalProof.LISTING)] * 3
    )
    assert [item.proven_by for item in items if item.asset_id is None] == [
        WithdrawalProof.GROUP_LISTING
    ]
    assert all(item.delete_sent_at <= item.confirmed_at for item in items)
    assert not SandboxAsset.objects.filter(asset_id__in=[a.upstream_id for a in assets]).exists()
    assert set(Asset.objects.values_list("status", flat=True)) == {Asset.Status.WITHDRAWN}
