"""The consent gate of uploads, what producers may use, and the sweeper's bookkeeping.

No HTTP here: refusals happen before anything leaves the portal, and the sweeper's requeues
need no upstream.
"""

from __future__ import annotations

import datetime
import hashlib
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import ExifTags, Image

from assets.models import Asset, AssetGroup
from assets.services import gate, pipeline
from consent.models import ConsentRecord
from sandbox.hostile import gif_of_pixels
from sandbox.samples import make_audio, make_image
from tests import media_corpus
from tests.factories import (
    AssetFactory,
    AssetGroupFactory,
    ConsentRecordFactory,
    PersonFactory,
    UpstreamSessionFactory,
)

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 11, 24)
DAY = datetime.timedelta(days=1)


def portrait(name: str = "face.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, make_image(width=400, height=600, fmt="PNG", label=name))


def refusals(**kwargs) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        pipeline.asset_create(uploaded_by=None, **kwargs)
    return refused.value.messages


@pytest.fixture
def verified() -> AssetGroup:
    """A group made by a completed verification, with an approved consent in force."""
    return AssetGroupFactory(verified=True)


def test_a_verified_person_with_consent_in_force_uploads_and_the_consent_is_recorded(verified):
    asset = pipeline.asset_create(
        person=verified.person, uploaded_file=portrait(), uploaded_by=None
    )

    assert (asset.group, asset.status) == (verified, Asset.Status.QUEUED)
    assert asset.consent == verified.upstream_session.invitation.consent


def test_a_person_without_a_verified_group_is_refused_and_told_to_verify_first():
    person = PersonFactory()
    ConsentRecordFactory(person=person, approved=True)
    AssetGroupFactory(person=person)  # typed in by hand: no verification behind it

    reasons = refusals(person=person, uploaded_file=portrait())

    assert reasons == [
        f"{person} has no verified real-person group. Such a (LivenessFace) group comes only "
        "from a completed verification: invite them to verify first."
    ]
    assert not Asset.objects.exists()


@pytest.mark.parametrize(
    ("group_kwargs", "reason"),
    [
        ({}, "was not made by a completed verification"),
        ({"group_type": AssetGroup.GroupType.AIGC}, "is an AIGC group"),
    ],
)
def test_a_group_not_made_by_verification_takes_no_real_persons_file(group_kwargs, reason):
    person = PersonFactory()
    ConsentRecordFactory(person=person, approved=True)
    group = AssetGroupFactory(person=person, **group_kwargs)

    (refused,) = refusals(person=person, group=group, uploaded_file=portrait())

    assert refused.startswith(f"Group {group} ") and reason in refused


def test_only_a_liveness_group_linked_to_its_verification_counts_as_verified():
    group = AssetGroupFactory(verified=True)

    assert group.is_verified_liveness()
    assert not AssetGroupFactory().is_verified_liveness()
    assert not AssetGroupFactory(
        group_type=AssetGroup.GroupType.AIGC, upstream_session=UpstreamSessionFactory()
    ).is_verified_liveness()


@pytest.mark.parametrize(
    ("consent_kwargs", "reason"),
    [
        ({"status": ConsentRecord.Status.PENDING_REVIEW}, "is pending review, not approved."),
        ({"revoked": True}, "is revoked, not approved."),
        ({"approved": True, "starts_on": TODAY + DAY}, "starts on 2026-11-25: not in force yet."),
        (
            {"approved": True, "starts_on": TODAY - 9 * DAY, "expires_on": TODAY - DAY},
            "ended on 2026-11-23.",
        ),
        ({"approved": True, "covers_images": False}, "does not cover images (it covers videos)."),
    ],
)
def test_a_consent_that_does_not_authorise_the_file_is_refused_with_why(
    verified, consent_kwargs, reason, time_machine
):
    time_machine.move_to(datetime.datetime(2026, 11, 24, 12, tzinfo=datetime.UTC))
    consent = ConsentRecordFactory(person=verified.person, **consent_kwargs)

    reasons = refusals(person=verified.person, consent=consent, uploaded_file=portrait())

    assert reasons == [f"Consent record #{consent.pk} {reason}"]


def test_without_any_consent_covering_the_kind_the_upload_is_refused(verified):
    # The verification's consent covers images and video, not audio.
    voice = SimpleUploadedFile("voice.wav", make_audio(seconds=2.5))

    reasons = refusals(person=verified.person, uploaded_file=voice)

    assert reasons == [
        f"{verified.person} has no approved consent in force today that covers audio: record "
        "one and have it approved first."
    ]


def test_another_persons_consent_or_group_is_refused(verified):
    stranger = AssetGroupFactory(verified=True)

    reasons = refusals(
        person=verified.person,
        group=stranger,
        consent=stranger.upstream_session.invitation.consent,
        uploaded_file=portrait(),
    )

    assert f"Group {stranger} is another person's." in reasons
    strangers_consent = stranger.upstream_session.invitation.consent
    assert f"Consent record #{strangers_consent.pk} is another person's." in reasons


def test_the_gate_comes_first_and_a_refused_persons_file_is_never_decoded(monkeypatch):
    person = PersonFactory()
    # Issue 13: 7 KB that took 19 s and 240 MB to decode; only its signature may be read here.
    hostile = SimpleUploadedFile("animation.gif", gif_of_pixels(300))
    decoded: list[str] = []
    monkeypatch.setattr(
        pipeline, "validate_media", lambda fileobj, filename: decoded.append(filename)
    )

    reasons = refusals(person=person, uploaded_file=hostile)

    assert reasons == [
        f"{person} has no verified real-person group. Such a (LivenessFace) group comes only "
        "from a completed verification: invite them to verify first.",
        f"{person} has no approved consent in force today that covers images: record one and "
        "have it approved first.",
    ]
    assert decoded == []


def test_a_file_past_the_gate_is_refused_with_every_limit_it_breaks(verified):
    tiny = SimpleUploadedFile("tiny.png", make_image(width=200, height=600, fmt="PNG"))

    reasons = refusals(person=verified.person, uploaded_file=tiny)

    assert len(reasons) == 2  # the side and the aspect ratio
    assert "each side must be between 300 and 6000 px" in reasons[0]
    assert "width/height ratio of 0.333" in reasons[1]


def test_a_hostile_animation_past_the_gate_is_refused_for_its_decoding_cost(verified):
    hostile = SimpleUploadedFile("animation.gif", gif_of_pixels(300))

    reasons = refusals(person=verified.person, uploaded_file=hostile)

    assert reasons == [
        "“animation.gif” has 300 frames of 6000×6000: 10,800,000,000 pixels to decode, "  # noqa: RUF001
        "over the limit of 250,000,000 pixels to decode."
    ]


def test_the_newest_consent_in_force_that_covers_the_kind_is_chosen(verified):
    today = timezone.localdate()
    newer = ConsentRecordFactory(person=verified.person, approved=True, starts_on=today)
    ConsentRecordFactory(person=verified.person, approved=True, covers_images=False)

    asset = pipeline.asset_create(
        person=verified.person, uploaded_file=portrait(), uploaded_by=None
    )

    assert asset.consent == newer


def test_the_consent_gate_and_the_in_force_query_agree(time_machine):
    time_machine.move_to(datetime.datetime(2026, 11, 24, 12, tzinfo=datetime.UTC))
    person = PersonFactory()
    records = [
        ConsentRecordFactory(person=person, approved=True),
        ConsentRecordFactory(person=person, approved=True, expires_on=None),
        ConsentRecordFactory(person=person, approved=True, starts_on=TODAY, expires_on=TODAY),
        ConsentRecordFactory(person=person, approved=True, starts_on=TODAY + DAY),
        ConsentRecordFactory(
            person=person, approved=True, starts_on=TODAY - 2 * DAY, expires_on=TODAY - DAY
        ),
        ConsentRecordFactory(person=person),
        ConsentRecordFactory(person=person, revoked=True),
        ConsentRecordFactory(person=person, approved=True, covers_video=False),
    ]

    for kind in ("image", "video", "audio"):
        in_force = set(ConsentRecord.objects.in_force().covering(kind))
        allowed = {
            record
            for record in records
            if not gate.consent_refusals(person=person, consent=record, kind=kind)
        }
        assert in_force == allowed, kind


def test_producers_see_active_assets_whose_consent_is_in_force_and_covers_them(time_machine):
    time_machine.move_to(datetime.datetime(2026, 11, 24, 12, tzinfo=datetime.UTC))
    group = AssetGroupFactory(verified=True)
    consent = group.upstream_session.invitation.consent  # images and video, for a year from today
    usable = AssetFactory(active=True, group=group, consent=consent)
    AssetFactory(group=group, consent=consent)  # queued
    AssetFactory(active=True, group=group, consent=consent, kind=Asset.Kind.AUDIO)  # not covered
    AssetFactory(active=True, group=group)  # no consent recorded
    AssetFactory(active=True, group=group, consent=ConsentRecordFactory(revoked=True))

    assert list(Asset.objects.usable_by_producers()) == [usable]
    # The day the consent ends, or once the group is withdrawn, it is gone.
    assert not Asset.objects.usable_by_producers(on=consent.expires_on + DAY).exists()
    AssetGroup.objects.filter(pk=group.pk).update(status=AssetGroup.Status.WITHDRAWN)
    assert not Asset.objects.usable_by_producers().exists()


# --- The sweeper ------------------------------------------------------------------------------


@pytest.fixture
def sent(queued) -> list[int]:
    """The assets whose upload task was sent (after commit)."""
    return queued.ids_of("assets.tasks.submit_asset")


def test_the_sweeper_queues_again_an_upload_whose_worker_died(
    sent, django_capture_on_commit_callbacks
):
    now, hour = timezone.now(), datetime.timedelta(hours=1)
    stranded = AssetFactory(status=Asset.Status.UPLOADING, next_attempt_at=now - hour, attempts=1)
    working = AssetFactory(status=Asset.Status.UPLOADING, next_attempt_at=now + hour)

    with django_capture_on_commit_callbacks(execute=True):
        report = pipeline.assets_sweep()

    assert report == {"requeued": 1, "resent": 0, "polled": 0}
    stranded.refresh_from_db()
    working.refresh_from_db()
    assert (stranded.status, stranded.error_code) == (Asset.Status.QUEUED, "WorkerLost")
    assert stranded.next_attempt_at <= timezone.now()
    assert working.status == Asset.Status.UPLOADING
    assert sent == [stranded.pk]


def test_the_sweeper_resends_a_queued_upload_whose_message_was_lost_once_per_interval(
    sent, django_capture_on_commit_callbacks
):
    now = timezone.now()
    lost = AssetFactory(next_attempt_at=now - datetime.timedelta(hours=1))
    legacy = AssetFactory(next_attempt_at=None)  # queued before the pipeline existed
    AssetFactory(next_attempt_at=now)  # its message is on its way
    AssetFactory(next_attempt_at=now + DAY)  # backing off

    with django_capture_on_commit_callbacks(execute=True):
        first = pipeline.assets_sweep()
        second = pipeline.assets_sweep()

    assert (first["resent"], second["resent"]) == (2, 0)
    assert sorted(sent) == sorted([lost.pk, legacy.pk])
    lost.refresh_from_db()
    assert lost.status == Asset.Status.QUEUED and lost.next_attempt_at >= now


def test_an_upload_with_gps_is_sent_upstream_as_a_copy_without_it(verified):
    original = media_corpus.image_with_location("JPEG")
    asset = pipeline.asset_create(
        person=verified.person,
        uploaded_file=SimpleUploadedFile("shoot.jpg", original),
        uploaded_by=None,
    )

    with asset.file.open("rb") as stored:
        assert stored.read() == original  # the original keeps its bytes and its hash
    assert asset.sha256 == hashlib.sha256(original).hexdigest()
    with asset.upstream_file.open("rb") as sent:
        copy = sent.read()
    assert len(copy) == len(original) and copy != original
    assert Image.open(io.BytesIO(copy)).getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert asset.upstream_copy.name.endswith(".jpg")


def test_an_upload_without_a_face_is_queued_with_a_warning(verified, settings):
    settings.MEDIA_FACE_PRECHECK = True
    blank = SimpleUploadedFile("blank.jpg", media_corpus.face_picture(0))
    two = SimpleUploadedFile("pair.jpg", media_corpus.face_picture(2))
    one = SimpleUploadedFile("one.jpg", media_corpus.face_picture(1))

    warned = [
        pipeline.asset_create(person=verified.person, uploaded_file=f, uploaded_by=None)
        for f in (blank, two, one)
    ]

    assert [asset.status for asset in warned] == [Asset.Status.QUEUED] * 3
    assert [len(asset.precheck_warnings) for asset in warned] == [1, 1, 0]
    assert "no face" in warned[0].precheck_warnings[0].lower()
