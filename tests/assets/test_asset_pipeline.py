"""The upload pipeline against the sandbox over real HTTP: CreateAsset, GetAsset, faults, staff
actions.

The services run in this process the way a worker runs them (``assets.tasks`` only names the
row); the task messages they send are recorded by the ``sent`` fixture instead of a broker. The
sandbox and the portal's signed file links are served by pytest-django's live server. A real
worker on Redis is in ``test_integration_pipeline.py``.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from assets import tasks
from assets.admin.files import asset_state
from assets.models import Asset, AssetGroup
from assets.services import pipeline as asset_pipeline
from assets.services import withdrawals
from consent.services import consent_revoke
from portal import queue as portal_queue
from sandbox import actions, counters
from sandbox.demo import demo_group_create
from sandbox.models import SandboxAsset
from sandbox.samples import make_audio, make_image, make_video
from sandbox.servers import free_port
from tests.factories import AssetFactory, AssetGroupFactory
from tests.upstream_helpers import SANDBOX_KEY, HeldCreates
from upstream import AnyfastClient
from upstream.errors import (
    ASSET_NOT_FOUND_EXPLANATION,
    CREATE_OUTCOME_UNKNOWN_EXPLANATION,
    FACE_MISMATCH_EXPLANATION,
    RATE_LIMITED_EXPLANATION,
    SERVER_ERROR_EXPLANATION,
)

# Whole scenarios against the sandbox over HTTP: CI and bin/test --all run them.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def sent(monkeypatch) -> list[tuple[int, float | None]]:
    """The upload tasks the services send, as ``(asset id, countdown)``, instead of a broker."""
    messages: list[tuple[int, float | None]] = []

    def send_task(task_name: str, row_ids: tuple[int, ...], countdown: float | None) -> bool:
        if task_name == "assets.tasks.submit_asset":
            messages.append((row_ids[0], countdown))
        return True  # other tasks (a withdrawal's) are left unsent

    monkeypatch.setattr(portal_queue, "send_task", send_task)
    return messages


@pytest.fixture
def pipeline(upstream, settings, sent):
    """The sandbox upstream, processing at once, and polls due as soon as an upload is accepted."""
    settings.SANDBOX_PROCESSING_SECONDS = 0
    settings.SANDBOX_VIDEO_PROCESSING_SECONDS = 0
    settings.ASSET_POLL_FIRST_SECONDS = 0
    return upstream


def quick_client(**kwargs: Any) -> AnyfastClient:
    """The portal's client, whose retries do not wait for real (tests only)."""
    kwargs.setdefault("sleep", lambda seconds: None)
    return AnyfastClient(**kwargs)


def verified_group(identity: str = "ada", **kwargs: Any) -> AssetGroup:
    """A group ``identity`` verified: in the sandbox (owned by the portal's key) and here."""
    upstream_group = demo_group_create(api_key=SANDBOX_KEY, identity=identity)
    return AssetGroupFactory(verified=True, group_id=upstream_group.group_id, **kwargs)


def upload(group: AssetGroup, content: bytes | None = None, *, name: str = "face.png") -> Asset:
    content = content or make_image(width=400, height=600, fmt="PNG", face="ada", label=name)
    return asset_pipeline.asset_create(
        person=group.person,
        uploaded_file=SimpleUploadedFile(name, content),
        uploaded_by=None,
    )


def submit(asset: Asset, client: AnyfastClient | None = None) -> Asset:
    """Run the asset's upload task now, as a worker would; the row afterwards."""
    asset_pipeline.asset_submit(asset_id=asset.pk, client=client or quick_client())
    asset.refresh_from_db()
    return asset


def make_due(asset: Asset) -> None:
    """Time has come for the asset's next step (instead of waiting for its backoff)."""
    Asset.objects.filter(pk=asset.pk).update(next_attempt_at=timezone.now())


def upstream_copies(asset: Asset) -> int:
    return SandboxAsset.objects.filter(name=asset.upstream_name).count()


def calls(action: str) -> int:
    return counters.snapshot().get(action, {}).get("calls", 0)


@pytest.fixture
def held_creates(monkeypatch) -> HeldCreates:
    held = HeldCreates()
    monkeypatch.setitem(actions.ACTIONS, "CreateAsset", held.wrap(actions.ACTIONS["CreateAsset"]))
    return held


# --- Through to Active ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("face.png", lambda: make_image(width=400, height=600, fmt="PNG", face="ada")),
        ("take.mp4", lambda: make_video(width=480, height=854, seconds=2.5, fps=24, face="ada")),
        ("voice.wav", lambda: make_audio(seconds=2.5)),
    ],
)
def test_an_upload_is_created_upstream_with_its_kinds_model_and_followed_to_active(
    pipeline, sent, name, make
):
    group = verified_group(upstream_session__invitation__consent__covers_audio=True)
    asset = upload(group, make(), name=name)
    assert sent == [(asset.pk, None)]  # enqueued once the upload committed

    tasks.submit_asset(asset.pk)  # the task as a worker runs it (its own client, real sleeps)
    asset.refresh_from_db()
    assert asset.status == Asset.Status.PROCESSING
    assert asset.attempts == 1 and asset.submitted_at is not None
    # The sandbox refuses a CreateAsset whose model does not match the kind (volc-asset,
    # volc-asset-video, volc-asset-audio): accepted means the right one was sent.
    copy = SandboxAsset.objects.get(name=asset.upstream_name)
    assert copy.asset_id == asset.upstream_id
    assert copy.sha256 == asset.sha256  # downloaded from the signed link

    assert asset_pipeline.assets_poll() == 1
    asset.refresh_from_db()
    assert asset.status == Asset.Status.ACTIVE
    assert asset.asset_uri == f"asset://{copy.asset_id}"
    assert asset_state(asset) == "Active: producers can use its reference."


def test_a_face_that_is_not_the_verified_person_fails_with_the_guides_explanation(pipeline):
    grace = make_image(width=400, height=600, fmt="PNG", face="grace")
    asset = upload(verified_group("ada"), grace)

    submit(asset)
    asset_pipeline.assets_poll()

    asset.refresh_from_db()
    assert (asset.status, asset.error_code) == (Asset.Status.FAILED, "FaceMismatch")
    assert asset.error_explanation == FACE_MISMATCH_EXPLANATION
    assert f"What to do: {FACE_MISMATCH_EXPLANATION}" in asset_state(asset)


def test_an_asset_still_processing_is_checked_again_later_and_less_often(pipeline, settings):
    settings.SANDBOX_PROCESSING_SECONDS = 60
    settings.ASSET_POLL_FIRST_SECONDS = 2
    asset = submit(upload(verified_group()))
    Asset.objects.filter(pk=asset.pk).update(
        submitted_at=timezone.now() - datetime.timedelta(seconds=40), next_attempt_at=timezone.now()
    )

    before = timezone.now()
    assert asset_pipeline.assets_poll() == 1
    assert asset_pipeline.assets_poll() == 0  # not due again at once

    asset.refresh_from_db()
    assert asset.status == Asset.Status.PROCESSING
    # A quarter of its age (40 s) between checks, once it is slow.
    assert asset.next_attempt_at >= before + datetime.timedelta(seconds=10)
    assert "Processing upstream" in asset_state(asset)


def test_an_accepted_asset_the_upstream_never_knew_fails_after_the_grace_period(pipeline):
    ghost = AssetFactory(
        group=verified_group(),
        status=Asset.Status.PROCESSING,
        upstream_id="asset-20261124120000-ghost",
        submitted_at=timezone.now(),
        next_attempt_at=timezone.now(),
    )

    asset_pipeline.assets_poll()
    ghost.refresh_from_db()
    assert ghost.status == Asset.Status.PROCESSING  # within the grace: asked again later

    Asset.objects.filter(pk=ghost.pk).update(
        submitted_at=timezone.now() - datetime.timedelta(seconds=30),
        next_attempt_at=timezone.now(),
    )
    asset_pipeline.assets_poll()
    ghost.refresh_from_db()
    assert (ghost.status, ghost.error_code) == (Asset.Status.FAILED, "NotFound.asset_id")
    assert ghost.error_explanation == ASSET_NOT_FOUND_EXPLANATION


def test_the_upstream_downloads_the_location_stripped_copy_when_there_is_one(pipeline):
    asset = upload(verified_group())
    stripped = make_image(width=400, height=600, fmt="PNG", face="ada", label="stripped")
    asset.upstream_copy.save("copy.png", ContentFile(stripped))

    submit(asset)

    assert SandboxAsset.objects.get(name=asset.upstream_name).sha256 == (
        hashlib.sha256(stripped).hexdigest()
    )


# --- Refused by the upstream, or by the gate at the last moment --------------------------------


def test_a_file_link_the_upstream_cannot_reach_fails_with_what_to_fix(pipeline, settings):
    asset = upload(verified_group())
    settings.PORTAL_PUBLIC_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    asset = submit(asset)

    assert (asset.status, asset.error_code) == (Asset.Status.FAILED, "InvalidParameter.URL")
    assert asset.error_explanation == asset_pipeline.URL_UNREACHABLE_EXPLANATION


def test_a_file_outside_the_upstreams_limits_fails_with_the_guides_explanation(pipeline):
    # Bypasses the local checks, as a file would that the upstream measures differently.
    group = verified_group()
    asset = AssetFactory(
        group=group,
        consent=group.upstream_session.invitation.consent,
        content=make_image(width=200, height=200, fmt="PNG"),
        next_attempt_at=timezone.now(),
    )

    asset = submit(asset)

    assert asset.status == Asset.Status.FAILED
    assert asset.error_code == "InvalidParameter.ResolutionTooSmall"
    assert "outside the upstream's limits" in asset.error_explanation


def test_a_consent_revoked_after_queueing_stops_the_upload_before_anything_is_sent(pipeline):
    asset = upload(verified_group())
    consent_revoke(record=asset.consent, actor=None, channel="email", reason="Changed their mind.")

    asset = submit(asset)  # its task arrives after the revocation

    assert (asset.status, asset.error_code) == (Asset.Status.FAILED, "ConsentEnded")
    assert calls("CreateAsset") == 0


def test_the_gate_is_checked_again_when_the_upload_leaves(pipeline, time_machine):
    asset = upload(verified_group())
    # Past the consent's end date, before beat has marked it expired.
    time_machine.move_to(asset.consent.expires_on + datetime.timedelta(days=1))

    asset = submit(asset)

    assert (asset.status, asset.error_code) == (Asset.Status.FAILED, "NotAuthorised")
    assert "ended on" in asset.error_message
    assert calls("CreateAsset") == 0


# --- Faults: never a twin, never failed by a 429 ----------------------------------------------


def test_a_create_that_times_out_is_found_by_its_name_once_it_lands(pipeline, held_creates):
    asset = upload(verified_group())

    def upstream_finishes_meanwhile(seconds: float) -> None:
        # The client waits before it looks the Name up; the held create lands meanwhile.
        held_creates.release(then_wait_for=1)

    asset = submit(asset, quick_client(create_read_timeout=0.5, sleep=upstream_finishes_meanwhile))

    copy = SandboxAsset.objects.get(name=asset.upstream_name)
    assert (asset.status, asset.upstream_id) == (Asset.Status.PROCESSING, copy.asset_id)
    assert calls("CreateAsset") == 1  # found by its Name, not created again


def test_a_create_still_unsettled_is_queued_and_found_by_its_name_next_time(
    pipeline, sent, held_creates
):
    asset = upload(verified_group())

    # Every create goes unanswered (held): the outcome stays unknown, the upload waits.
    asset = submit(asset, quick_client(create_read_timeout=0.5))
    assert (asset.status, asset.error_code) == (Asset.Status.QUEUED, "ReadTimeout")
    assert asset.error_explanation == CREATE_OUTCOME_UNKNOWN_EXPLANATION
    assert sent[-1][0] == asset.pk and sent[-1][1] > 0  # sent again after a backoff
    sent_creates = calls("CreateAsset")

    # Both held creates land later: one makes the asset, the other is its duplicate Name.
    held_creates.release(then_wait_for=sent_creates)
    make_due(asset)
    asset = submit(asset)

    copy = SandboxAsset.objects.get(name=asset.upstream_name)  # one: no twin
    assert (asset.status, asset.upstream_id) == (Asset.Status.PROCESSING, copy.asset_id)
    assert calls("CreateAsset") == sent_creates  # the next attempt looked it up first


def test_a_create_that_overtakes_a_held_one_still_leaves_one_asset(pipeline, held_creates):
    asset = upload(verified_group())

    def upstream_recovers(seconds: float) -> None:
        held_creates.holding = False

    # The first create is held upstream; nothing has the Name yet, so the client creates again
    # with the same Name, and that one is answered.
    asset = submit(asset, quick_client(create_read_timeout=0.5, sleep=upstream_recovers))
    assert asset.status == Asset.Status.PROCESSING
    held_creates.release(then_wait_for=2)  # the held one lands now: a duplicate Name, refused

    assert upstream_copies(asset) == 1
    assert calls("CreateAsset") == 2


def test_a_dropped_connection_on_create_is_looked_up_then_sent_again(pipeline, settings):
    asset = upload(verified_group())
    settings.SANDBOX_FAULT_RATE_DROP = 1.0

    def connection_comes_back(seconds: float) -> None:
        settings.SANDBOX_FAULT_RATE_DROP = 0.0

    asset = submit(asset, quick_client(sleep=connection_comes_back))

    assert asset.status == Asset.Status.PROCESSING
    assert upstream_copies(asset) == 1
    assert calls("ListAssets") == 1  # looked for the dropped create's asset before creating


def test_a_dropped_connection_that_lasts_queues_the_upload_again(pipeline, settings):
    asset = upload(verified_group())
    settings.SANDBOX_FAULT_RATE_DROP = 1.0

    asset = submit(asset)

    assert (asset.status, asset.attempts) == (Asset.Status.QUEUED, 1)
    settings.SANDBOX_FAULT_RATE_DROP = 0.0
    make_due(asset)
    assert submit(asset).status == Asset.Status.PROCESSING
    assert upstream_copies(asset) == 1


def test_a_429_storm_delays_an_upload_but_never_fails_it(pipeline, sent, settings):
    asset = upload(verified_group())
    settings.SANDBOX_FAULT_RATE_429 = 1.0

    for attempt in range(1, 4):
        before = timezone.now()
        asset = submit(asset)
        assert (asset.status, asset.attempts) == (Asset.Status.QUEUED, attempt)
        assert asset.error_code == "RequestLimitExceeded"
        assert asset.error_explanation == RATE_LIMITED_EXPLANATION
        # Never sooner than the 429's Retry-After (1 s).
        assert asset.next_attempt_at >= before + datetime.timedelta(seconds=1)
        assert sent[-1][1] >= 1
        assert "Trying again at" in asset_state(asset)
        make_due(asset)

    settings.SANDBOX_FAULT_RATE_429 = 0.0
    asset = submit(asset)
    asset_pipeline.assets_poll()
    asset.refresh_from_db()
    assert asset.status == Asset.Status.ACTIVE
    assert upstream_copies(asset) == 1


def test_server_errors_on_create_queue_the_upload_again(pipeline, settings):
    asset = upload(verified_group())
    settings.SANDBOX_FAULT_RATE_502 = 1.0

    asset = submit(asset)

    assert (asset.status, asset.attempts) == (Asset.Status.QUEUED, 1)
    assert asset.error_explanation == SERVER_ERROR_EXPLANATION


def test_a_task_for_an_asset_that_is_not_queued_does_nothing(pipeline):
    asset = submit(upload(verified_group()))

    asset = submit(asset)  # a duplicate message

    assert (asset.status, asset.attempts) == (Asset.Status.PROCESSING, 1)
    assert calls("CreateAsset") == 1


# --- Staff actions ----------------------------------------------------------------------------


def test_withdrawing_an_active_asset_deletes_it_upstream(pipeline):
    asset = submit(upload(verified_group()))
    asset_pipeline.assets_poll()
    asset.refresh_from_db()

    withdrawals.asset_withdraw(asset=asset, client=quick_client())

    asset.refresh_from_db()
    assert asset.status == Asset.Status.WITHDRAWN and asset.withdrawn_at is not None
    assert upstream_copies(asset) == 0
    assert "its reference no longer works" in asset_state(asset)


def test_withdrawing_a_queued_asset_deletes_what_a_lost_create_made(pipeline, held_creates):
    asset = submit(upload(verified_group()), quick_client(create_read_timeout=0.5))
    held_creates.release(then_wait_for=calls("CreateAsset"))
    assert asset.status == Asset.Status.QUEUED and asset.upstream_id is None
    assert upstream_copies(asset) == 1

    withdrawals.asset_withdraw(asset=asset, client=quick_client())

    asset.refresh_from_db()
    assert asset.status == Asset.Status.WITHDRAWN
    assert upstream_copies(asset) == 0


def test_an_asset_being_uploaded_cannot_be_withdrawn_yet(pipeline):
    asset = upload(verified_group())
    Asset.objects.filter(pk=asset.pk).update(status=Asset.Status.UPLOADING)
    asset.refresh_from_db()

    with pytest.raises(ValidationError, match="being uploaded right now"):
        withdrawals.asset_withdraw(asset=asset, client=quick_client())


def test_retrying_a_failed_asset_frees_its_name_upstream_and_uploads_it_again(pipeline, sent):
    grace = make_image(width=400, height=600, fmt="PNG", face="grace")
    asset = upload(verified_group("ada"), grace)
    submit(asset)
    asset_pipeline.assets_poll()
    asset.refresh_from_db()
    assert asset.status == Asset.Status.FAILED

    asset_pipeline.asset_retry(asset=asset, client=quick_client())

    asset.refresh_from_db()
    assert (asset.status, asset.upstream_id, asset.error_code) == (Asset.Status.QUEUED, None, "")
    assert upstream_copies(asset) == 0  # the failed copy held the Name
    assert sent[-1] == (asset.pk, None)
    assert submit(asset).status == Asset.Status.PROCESSING  # same Name, accepted again


def test_only_failed_or_queued_assets_can_be_retried(pipeline):
    asset = submit(upload(verified_group()))

    with pytest.raises(ValidationError, match="only a failed or queued asset"):
        asset_pipeline.asset_retry(asset=asset, client=quick_client())


def test_refreshing_asks_the_upstream_now(pipeline, settings):
    asset = submit(upload(verified_group()))
    Asset.objects.filter(pk=asset.pk).update(next_attempt_at=timezone.now() + datetime.timedelta(1))

    asset = asset_pipeline.asset_refresh(asset=asset, client=quick_client())

    assert asset.status == Asset.Status.ACTIVE


def test_refreshing_an_asset_deleted_upstream_marks_it_failed(pipeline):
    asset = AssetFactory(
        group=verified_group(),
        status=Asset.Status.ACTIVE,
        upstream_id="asset-20261124120000-gone0",
        submitted_at=timezone.now() - datetime.timedelta(days=1),
    )

    asset = asset_pipeline.asset_refresh(asset=asset, client=quick_client())

    assert (asset.status, asset.error_code) == (Asset.Status.FAILED, "NotFound.asset_id")
