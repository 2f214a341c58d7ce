"""Revocation, expiry and supersession reach the upstream, with proof: withdrawals against the
sandbox over real HTTP.

The services run in this process the way a worker runs them (``assets.tasks`` only names a row);
the task messages they send are recorded instead of reaching a broker. A real worker on Redis is
in ``test_integration_withdrawal.py``.
"""

from __future__ import annotations

import datetime
import random
import threading
import time
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from assets import tasks
from assets.admin.files import asset_reference
from assets.models import (
    Asset,
    AssetGroup,
    ProducerNotice,
    Withdrawal,
    WithdrawalItem,
    WithdrawalOutcome,
    WithdrawalReason,
)
from assets.services import pipeline as asset_pipeline
from assets.services import withdrawals
from audit.models import AuditEvent
from consent import services
from consent.models import ConsentRecord
from mail import services as mail_services
from mail.models import OutboundEmail
from portal import queue as portal_queue
from sandbox import actions
from sandbox.models import SandboxAsset, SandboxGroup
from sandbox.samples import make_audio, make_image
from tests.assets.test_asset_pipeline import calls, quick_client, submit, upload, verified_group
from tests.factories import (
    ConsentRecordFactory,
    ReferenceCopyFactory,
    UsableAssetFactory,
    UserFactory,
)
from tests.upstream_helpers import HeldCreates
from upstream import AnyfastClient, AssetNotFound

# Whole scenarios against the sandbox over HTTP: CI and bin/test --all run them.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

Item = WithdrawalItem


@pytest.fixture
def sent(monkeypatch) -> dict[str, list[Any]]:
    """The tasks the services send, as ``(id, countdown)``, instead of reaching a broker."""
    names = {
        "assets.tasks.submit_asset": "submit",
        "assets.tasks.withdraw_item": "withdraw",
        "assets.tasks.notify_producers_of_withdrawal": "notify",
        mail_services.SEND_TASK: "notice_email",
    }
    messages: dict[str, list[Any]] = {name: [] for name in names.values()}

    def send_task(task_name: str, row_ids: tuple[int, ...], countdown: float | None) -> bool:
        if task_name in names:
            messages[names[task_name]].append((row_ids[0], countdown))
        return True

    monkeypatch.setattr(portal_queue, "send_task", send_task)
    return messages


@pytest.fixture
def pipeline(upstream, settings, sent):
    """The sandbox upstream, processing at once; polls due as soon as an upload is accepted."""
    settings.SANDBOX_PROCESSING_SECONDS = 0
    settings.SANDBOX_VIDEO_PROCESSING_SECONDS = 0
    settings.ASSET_POLL_FIRST_SECONDS = 0
    return upstream


@pytest.fixture
def legal(db):
    return UserFactory(username="legal", email="legal@studio.test")


def active_asset(group: AssetGroup, name: str = "face.png", content: bytes | None = None) -> Asset:
    """An asset of ``group`` taken through the pipeline to Active upstream."""
    asset = submit(upload(group, content, name=name))
    asset_pipeline.assets_poll(client=quick_client())
    asset.refresh_from_db()
    assert asset.status == Asset.Status.ACTIVE
    return asset


def revoke(consent: ConsentRecord, actor: Any) -> Withdrawal:
    services.consent_revoke(
        record=consent, actor=actor, channel="email", reason="Changed their mind."
    )
    return Withdrawal.objects.get(consent=consent)


def work(withdrawal: Withdrawal, client: AnyfastClient | None = None, *, rounds: int = 1) -> None:
    """Run the task of every pending item, as workers would, ``rounds`` times; between rounds
    time passes (the items' next attempts become due)."""
    for _ in range(rounds):
        pending = withdrawal.items.filter(status=Item.Status.PENDING)
        pending.update(next_attempt_at=timezone.now())
        for item_id in pending.order_by(F("asset").asc(nulls_last=True), "pk").values_list(
            "pk", flat=True
        ):
            withdrawals.withdrawal_item_process(item_id=item_id, client=client or quick_client())


def wait_until(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def gone_upstream(upstream_id: str) -> bool:
    """The portal's client asks the sandbox: GetAsset answers NotFound."""
    try:
        quick_client().get_asset(upstream_id)
    except AssetNotFound:
        return True
    return False


# --- Revocation, end to end -------------------------------------------------------------------


def test_a_revocation_removes_the_likeness_upstream_with_a_complete_record(pipeline, sent, legal):
    group = verified_group(upstream_session__invitation__consent__covers_audio=True)
    consent = group.upstream_session.invitation.consent
    portrait = active_asset(group)
    voice = active_asset(group, "voice.wav", make_audio(seconds=2.5))
    assert set(Asset.objects.usable_by_producers()) == {portrait, voice}

    withdrawal = revoke(consent, legal)

    # At once, in the revocation's transaction: out of producers' hands, and on record.
    assert not Asset.objects.usable_by_producers().exists()
    assert asset_reference(Asset.objects.get(pk=portrait.pk)).startswith("<s>")  # no copy button
    assert withdrawal.reason == WithdrawalReason.REVOKED
    assert (withdrawal.requested_by, withdrawal.requested_by_label) == (legal, "legal")
    assert withdrawal.groups_decision.startswith("Deleted")
    items = {(item.asset_id, item.upstream_id) for item in withdrawal.items.all()}
    assert items == {
        (portrait.pk, portrait.upstream_id),
        (voice.pk, voice.upstream_id),
        (None, group.group_id),
    }
    assert AssetGroup.objects.get(pk=group.pk).status == AssetGroup.Status.WITHDRAWN
    assert sent["notify"] == [(withdrawal.pk, None)]
    # The group's DeleteAssetGroup waits for its assets' DeleteAsset.
    group_item = withdrawal.items.get(asset__isnull=True)
    assert sorted(item for item, _ in sent["withdraw"]) == sorted(
        item.pk for item in withdrawal.items.filter(asset__isnull=False)
    )

    before = timezone.now()
    for item_id, _ in list(sent["withdraw"]):
        tasks.withdraw_item(item_id)  # the task as a worker runs it (its own client)
    assert sent["withdraw"][-1] == (group_item.pk, None)  # sent once the last asset settled
    tasks.withdraw_item(group_item.pk)

    withdrawal.refresh_from_db()
    assert withdrawal.confirmed_at is not None
    assert not Withdrawal.objects.unconfirmed().exists()
    for item in withdrawal.items.all():
        assert item.status == Item.Status.CONFIRMED
        assert item.outcome == WithdrawalOutcome.DELETED
        assert before <= item.confirmed_at <= withdrawal.confirmed_at
    # The upstream: GetAsset and ListAssets no longer know them, nor the group.
    assert gone_upstream(portrait.upstream_id) and gone_upstream(voice.upstream_id)
    page = quick_client().list_assets(group_type="LivenessFace", group_ids=[group.group_id])
    assert page.items == ()
    assert not SandboxGroup.objects.filter(group_id=group.group_id).exists()
    assert calls("DeleteAsset") == 2 and calls("DeleteAssetGroup") == 1
    for asset in (portrait, voice):
        asset.refresh_from_db()
        assert asset.status == Asset.Status.WITHDRAWN and asset.withdrawn_at is not None
    # Every step is an event: the revocation, the start, each deletion confirmed, the end.
    start = AuditEvent.objects.get(action="consent.revoke").pk
    steps = list(
        AuditEvent.objects.filter(pk__gt=start).order_by("pk").values_list("action", flat=True)
    )
    assert steps == [
        "withdrawal.started",
        "asset.withdrawn_upstream",
        "asset.withdrawn_upstream",
        "asset_group.deleted_upstream",
        "withdrawal.confirmed",
    ]


def test_the_revocation_and_its_withdrawal_are_one_transaction(pipeline, legal, monkeypatch):
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    active_asset(group)

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("the withdrawal could not be recorded")

    monkeypatch.setattr(services, "withdrawal_start", broken)
    with pytest.raises(RuntimeError):
        revoke(consent, legal)

    consent.refresh_from_db()
    assert consent.status == ConsentRecord.Status.APPROVED  # no end without its withdrawal
    assert not AuditEvent.objects.filter(action="consent.revoke").exists()


def test_a_queued_upload_never_reaches_the_upstream_after_revocation(pipeline, sent, legal):
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    queued = upload(group)

    withdrawal = revoke(consent, legal)
    asset_pipeline.asset_submit(asset_id=queued.pk, client=quick_client())  # its task arrives late
    work(withdrawal)

    queued.refresh_from_db()
    assert queued.status == Asset.Status.WITHDRAWN
    item = withdrawal.items.get(asset=queued)
    assert (item.status, item.outcome) == (Item.Status.CONFIRMED, WithdrawalOutcome.NEVER_UPLOADED)
    assert calls("CreateAsset") == 0 and calls("DeleteAsset") == 0
    assert not SandboxAsset.objects.filter(name=queued.upstream_name).exists()


def test_an_upload_in_flight_when_consent_is_revoked_is_deleted_once_it_lands(
    pipeline, sent, legal, monkeypatch
):
    held = HeldCreates()
    monkeypatch.setitem(actions.ACTIONS, "CreateAsset", held.wrap(actions.ACTIONS["CreateAsset"]))
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    asset = upload(group)

    def worker() -> None:  # the upload's worker: its CreateAsset left before the revocation
        try:
            asset_pipeline.asset_submit(asset_id=asset.pk, client=quick_client())
        finally:
            connection.close()

    uploading = threading.Thread(target=worker)
    uploading.start()
    wait_until(lambda: calls("CreateAsset") == 1)  # past the gate, held upstream
    assert Asset.objects.get(pk=asset.pk).status == Asset.Status.UPLOADING

    withdrawal = revoke(consent, legal)
    work(withdrawal)
    item = withdrawal.items.get(asset=asset)
    assert (item.status, item.last_error_code) == (Item.Status.PENDING, "UploadInProgress")

    held.release(then_wait_for=1)  # the create lands; the worker records it
    uploading.join(30)
    asset.refresh_from_db()
    assert asset.status == Asset.Status.PROCESSING and asset.upstream_id

    work(withdrawal, rounds=2)
    item.refresh_from_db()
    assert (item.status, item.outcome) == (Item.Status.CONFIRMED, WithdrawalOutcome.DELETED)
    assert item.upstream_id == asset.upstream_id
    assert not SandboxAsset.objects.filter(name=asset.upstream_name).exists()
    assert Withdrawal.objects.get(pk=withdrawal.pk).confirmed_at is not None


def test_a_create_whose_answer_was_lost_is_found_by_its_name_when_it_lands_late(
    pipeline, sent, legal, monkeypatch
):
    held = HeldCreates()
    monkeypatch.setitem(actions.ACTIONS, "CreateAsset", held.wrap(actions.ACTIONS["CreateAsset"]))
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    asset = submit(upload(group), quick_client(create_read_timeout=0.5))
    assert (asset.status, asset.upstream_id) == (Asset.Status.QUEUED, None)  # outcome unknown

    withdrawal = revoke(consent, legal)
    work(withdrawal)
    item = withdrawal.items.get(asset=asset)
    assert (item.status, item.last_error_code) == (Item.Status.PENDING, "CreateMaySettle")
    assert item.settle_after is not None

    held.release(then_wait_for=calls("CreateAsset"))  # it lands upstream after all
    assert SandboxAsset.objects.filter(name=asset.upstream_name).count() == 1
    work(withdrawal)

    item.refresh_from_db()
    assert (item.status, item.outcome) == (Item.Status.CONFIRMED, WithdrawalOutcome.DELETED)
    assert not SandboxAsset.objects.filter(name=asset.upstream_name).exists()


def test_a_lost_create_that_never_lands_is_confirmed_absent_after_the_settle_window(
    pipeline, sent, legal, monkeypatch
):
    held = HeldCreates()  # never released: the create never lands
    monkeypatch.setitem(actions.ACTIONS, "CreateAsset", held.wrap(actions.ACTIONS["CreateAsset"]))
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    asset = submit(upload(group), quick_client(create_read_timeout=0.5))

    withdrawal = revoke(consent, legal)
    work(withdrawal)
    withdrawal.items.filter(asset=asset).update(
        settle_after=timezone.now() - datetime.timedelta(seconds=1)
    )
    work(withdrawal)

    item = withdrawal.items.get(asset=asset)
    assert (item.status, item.outcome) == (
        Item.Status.CONFIRMED,
        WithdrawalOutcome.NOT_FOUND_BY_NAME,
    )
    held.release(then_wait_for=0)


# --- Faults, restarts, keys -------------------------------------------------------------------


def test_server_errors_rate_limits_and_timeouts_only_delay_the_withdrawal(
    pipeline, sent, legal, settings
):
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    assets = [
        active_asset(group, f"face-{n}.png", make_image(width=400, height=600, fmt="PNG",
                                                        face="ada", label=str(n)))
        for n in range(4)
    ]  # fmt: skip
    withdrawal = revoke(consent, legal)

    random.seed(9)
    settings.SANDBOX_FAULT_RATE_500 = 0.25
    settings.SANDBOX_FAULT_RATE_429 = 0.25
    settings.SANDBOX_FAULT_RATE_TIMEOUT = 0.2
    settings.SANDBOX_TIMEOUT_SECONDS = 0.6
    faulty = quick_client(read_timeout=0.3, read_retries=1)
    for _ in range(40):
        work(withdrawal, faulty)
        if Withdrawal.objects.get(pk=withdrawal.pk).confirmed_at:
            break

    withdrawal.refresh_from_db()
    assert withdrawal.confirmed_at is not None
    assert not withdrawal.items.exclude(status=Item.Status.CONFIRMED).exists()
    retried = AuditEvent.objects.filter(action="withdrawal.upstream_error", object_id=withdrawal.pk)
    assert retried.exists()  # faults happened, were recorded, and only delayed it
    assert sum(item.attempts for item in withdrawal.items.all()) > withdrawal.items.count()
    assert not SandboxAsset.objects.filter(asset_id__in=[a.upstream_id for a in assets]).exists()


def test_a_429_sets_the_next_attempt_after_retry_after_and_sends_the_task_for_then(
    pipeline, sent, legal, settings
):
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    asset = active_asset(group)
    withdrawal = revoke(consent, legal)
    settings.SANDBOX_FAULT_RATE_429 = 1.0

    before = timezone.now()
    work(withdrawal)

    item = withdrawal.items.get(asset=asset)
    assert (item.status, item.last_error_code) == (Item.Status.PENDING, "RequestLimitExceeded")
    assert item.next_attempt_at >= before + datetime.timedelta(seconds=1)
    assert sent["withdraw"][-1][0] == item.pk and sent["withdraw"][-1][1] >= 1
    assert withdrawal.items.get(asset__isnull=True).status == Item.Status.PENDING  # waits


def test_an_item_whose_worker_died_is_resumed_by_the_sweeper_after_its_lease(
    pipeline, sent, legal, settings
):
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    asset = active_asset(group)
    withdrawal = revoke(consent, legal)
    item = withdrawal.items.get(asset=asset)
    # A worker claimed it (the lease runs) and was killed before it recorded anything.
    lease_end = timezone.now() + datetime.timedelta(seconds=settings.WITHDRAWAL_ITEM_LEASE_SECONDS)
    Item.objects.filter(pk=item.pk).update(attempts=1, next_attempt_at=lease_end)
    sent["withdraw"].clear()

    withdrawals.withdrawal_item_process(item_id=item.pk, client=quick_client())  # still held
    assert withdrawals.withdrawals_sweep() == 0
    assert Item.objects.get(pk=item.pk).status == Item.Status.PENDING

    after_lease = lease_end + datetime.timedelta(seconds=30)
    assert withdrawals.withdrawals_sweep(now=after_lease) == 1
    assert sent["withdraw"] == [(item.pk, None)]
    Item.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())
    tasks.withdraw_item(item.pk)

    item.refresh_from_db()
    assert (item.status, item.attempts) == (Item.Status.CONFIRMED, 2)
    assert gone_upstream(asset.upstream_id)


def test_an_asset_already_deleted_upstream_counts_as_confirmed_and_says_so(pipeline, sent, legal):
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    asset = active_asset(group)
    quick_client().delete_asset(asset.upstream_id)  # gone before the withdrawal asks

    withdrawal = revoke(consent, legal)
    work(withdrawal)

    item = withdrawal.items.get(asset=asset)
    assert (item.status, item.outcome) == (Item.Status.CONFIRMED, WithdrawalOutcome.ALREADY_GONE)
    assert item.confirmed_at is not None


def test_another_keys_group_fails_the_item_instead_of_trusting_its_not_found(pipeline, sent, legal):
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    asset = active_asset(group)
    AssetGroup.objects.filter(pk=group.pk).update(api_key_fingerprint="another-key-fp")

    withdrawal = revoke(consent, legal)
    work(withdrawal)

    item = withdrawal.items.get(asset=asset)
    assert (item.status, item.last_error_code) == (Item.Status.FAILED, "KeyMismatch")
    assert "another-key-fp" in item.last_error_explanation
    assert not gone_upstream(asset.upstream_id)  # nothing was claimed about it
    assert Withdrawal.objects.unconfirmed().filter(pk=withdrawal.pk).exists()

    # The key is fixed; staff retry the failed items (the asset's and its group's).
    AssetGroup.objects.filter(pk=group.pk).update(api_key_fingerprint="")
    for failed in withdrawal.items.filter(status=Item.Status.FAILED):
        withdrawals.withdrawal_item_retry(item=failed, actor=legal)
    work(withdrawal, rounds=2)
    assert Withdrawal.objects.get(pk=withdrawal.pk).confirmed_at is not None
    assert gone_upstream(asset.upstream_id)


# --- Groups: deleted when nothing else of the person needs them ---------------------------------


def test_the_group_is_kept_while_another_consent_is_in_force_and_deleted_with_the_last(
    pipeline, sent, legal
):
    group = verified_group(upstream_session__invitation__consent__covers_video=False)
    images = group.upstream_session.invitation.consent
    audio = ConsentRecordFactory(
        person=group.person, approved=True, covers_images=False, covers_video=False,
        covers_audio=True,
    )  # fmt: skip
    portrait = active_asset(group)
    voice = active_asset(group, "voice.wav", make_audio(seconds=2.5))
    assert voice.consent == audio

    first = revoke(images, legal)
    assert first.groups_decision.startswith("Kept") and f"#{audio.pk}" in first.groups_decision
    assert not first.items.filter(asset__isnull=True).exists()
    work(first)
    assert gone_upstream(portrait.upstream_id) and not gone_upstream(voice.upstream_id)
    assert list(Asset.objects.usable_by_producers()) == [voice]

    second = revoke(audio, legal)
    assert second.groups_decision.startswith("Deleted")
    work(second, rounds=2)
    assert Withdrawal.objects.get(pk=second.pk).confirmed_at is not None
    assert not SandboxGroup.objects.filter(group_id=group.group_id).exists()


def test_a_new_version_keeps_the_assets_it_covers_and_withdraws_the_others(pipeline, sent, legal):
    group = verified_group(upstream_session__invitation__consent__covers_audio=True)
    old = group.upstream_session.invitation.consent
    portrait = active_asset(group)
    voice = active_asset(group, "voice.wav", make_audio(seconds=2.5))
    version = ConsentRecordFactory(
        person=group.person, supersedes=old, complete=True, covers_audio=False,
        status=ConsentRecord.Status.PENDING_REVIEW,
    )  # fmt: skip

    services.consent_approve(record=version, actor=legal)

    portrait.refresh_from_db()
    assert portrait.consent == version  # still usable, under the version that covers it
    assert list(Asset.objects.usable_by_producers()) == [portrait]
    withdrawal = Withdrawal.objects.get(consent=old)
    assert withdrawal.reason == WithdrawalReason.SUPERSEDED
    assert [item.asset for item in withdrawal.items.all()] == [voice]  # the group stays
    work(withdrawal)
    assert gone_upstream(voice.upstream_id) and not gone_upstream(portrait.upstream_id)
    assert AuditEvent.objects.filter(action="asset.consent_reassigned", object_id=portrait.pk)


def test_a_version_covering_everything_records_no_withdrawal(pipeline, sent, legal):
    group = verified_group()
    old = group.upstream_session.invitation.consent
    active_asset(group)
    version = ConsentRecordFactory(
        person=group.person, supersedes=old, complete=True,
        status=ConsentRecord.Status.PENDING_REVIEW,
    )  # fmt: skip

    services.consent_approve(record=version, actor=legal)

    assert not Withdrawal.objects.exists()
    assert Asset.objects.usable_by_producers().count() == 1


def test_producers_who_copied_the_references_are_told_once_with_the_list(sent, legal):
    asset = UsableAssetFactory()
    maya = UserFactory(username="maya", email="maya@studio.test")
    ReferenceCopyFactory(user=maya, asset=asset, project="Spring campaign 2027")
    ReferenceCopyFactory(asset=UsableAssetFactory())  # another person's: not in the notice

    withdrawal = revoke(asset.consent, legal)
    assert sent["notify"] == [(withdrawal.pk, None)]  # sent once the revocation committed
    tasks.notify_producers_of_withdrawal(withdrawal.pk)
    tasks.notify_producers_of_withdrawal(withdrawal.pk)  # a retried task tells no one twice

    notice = ProducerNotice.objects.get()
    assert notice.user == maya
    assert notice.reason == f"The person revoked their consent on {timezone.localdate():%Y-%m-%d}."
    assert [line["reference"] for line in notice.lines()] == [asset.asset_uri]
    assert Withdrawal.objects.get(pk=withdrawal.pk).producers_notified_at is not None
    email = OutboundEmail.objects.about(notice).get()
    assert email.to == "maya@studio.test" and sent["notice_email"] == [(email.pk, None)]


def test_starting_twice_returns_the_one_withdrawal_of_a_consent(pipeline, sent, legal):
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    withdrawal = revoke(consent, legal)

    again = withdrawals.withdrawal_start(
        consent_id=consent.pk, reason=WithdrawalReason.REVOKED, requested_by=legal
    )

    assert again == withdrawal and Withdrawal.objects.count() == 1


# --- Evidence in the admin ----------------------------------------------------------------------


def test_the_withdrawal_pages_show_every_asset_with_its_confirmation(
    pipeline, sent, legal, superuser_client
):
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    asset = active_asset(group)
    withdrawal = revoke(consent, legal)

    queue = superuser_client.get(reverse("admin:assets_withdrawal_changelist") + "?confirmed=no")
    assert queue.status_code == 200 and str(withdrawal) in queue.content.decode()
    work(withdrawal, rounds=2)
    queue = superuser_client.get(reverse("admin:assets_withdrawal_changelist") + "?confirmed=no")
    assert str(withdrawal) not in queue.content.decode()

    page = superuser_client.get(reverse("admin:assets_withdrawal_change", args=[withdrawal.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert asset.upstream_id in html and group.group_id in html
    assert "Changed their mind." in html and "legal" in html  # who revoked, how, why
    assert 'name="_save"' not in html  # evidence: read-only
    for url in (
        reverse("admin:consent_consentrecord_change", args=[consent.pk]),
        reverse("admin:consent_person_change", args=[consent.person_id]),
    ):
        html = superuser_client.get(url).content.decode()
        assert reverse("admin:assets_withdrawal_change", args=[withdrawal.pk]) in html
        assert "Confirmed upstream on" in html


def test_staff_retry_failed_items_from_the_withdrawal_list(pipeline, sent, legal, superuser_client):
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    asset = active_asset(group)
    AssetGroup.objects.filter(pk=group.pk).update(api_key_fingerprint="another-key-fp")
    withdrawal = revoke(consent, legal)
    work(withdrawal)
    assert withdrawal.items.get(asset=asset).status == Item.Status.FAILED

    response = superuser_client.post(
        reverse("admin:assets_withdrawal_changelist"),
        {"action": "retry_failed_items", "_selected_action": [withdrawal.pk]},
        follow=True,
    )

    assert "2 failed item(s) sent again." in response.content.decode()  # the asset, the group
    assert withdrawal.items.get(asset=asset).status == Item.Status.PENDING
    assert AuditEvent.objects.filter(action="withdrawal.item_retried", actor_id__isnull=False)


def test_the_active_and_usable_rules_agree_row_by_row(pipeline, sent, legal):
    group = verified_group()
    consent = group.upstream_session.invitation.consent
    asset = active_asset(group)
    other = active_asset(group, "b.png", make_image(width=400, height=600, fmt="PNG", face="ada",
                                                    label="b"))  # fmt: skip
    assert all(row.is_usable_by_producers() for row in Asset.objects.all())

    revoke(consent, legal)

    assert not Asset.objects.usable_by_producers().exists()
    for row in Asset.objects.filter(pk__in=[asset.pk, other.pk]):
        assert row.status == Asset.Status.ACTIVE  # still, until the withdrawal deletes it
        assert not row.is_usable_by_producers()


def test_a_withdrawal_with_nothing_upstream_is_confirmed_at_once(pipeline, sent, legal):
    consent = ConsentRecordFactory(approved=True)  # the person never verified nor uploaded

    withdrawal = revoke(consent, legal)

    assert withdrawal.items.count() == 0 and withdrawal.groups_decision.startswith("None")
    assert withdrawal.confirmed_at is not None
    assert not Withdrawal.objects.unconfirmed().exists()
    assert calls("DeleteAsset") == 0


def test_the_withdrawal_shows_on_pages_only_to_staff_who_may_view_withdrawals(sent, legal, client):
    asset = UsableAssetFactory()
    withdrawal = revoke(asset.consent, legal)
    onboarding = UserFactory(username="onboarding")
    onboarding.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_consentrecord", "view_person"])
    )
    client.force_login(onboarding)
    link = reverse("admin:assets_withdrawal_change", args=[withdrawal.pk])

    for url in (
        reverse("admin:consent_consentrecord_change", args=[asset.consent_id]),
        reverse("admin:consent_person_change", args=[asset.group.person_id]),
    ):
        page = client.get(url)
        assert page.status_code == 200 and link not in page.content.decode()
    assert client.get(link).status_code == 403

    onboarding.user_permissions.add(Permission.objects.get(codename="view_withdrawal"))
    page = client.get(reverse("admin:consent_consentrecord_change", args=[asset.consent_id]))
    assert link in page.content.decode()
