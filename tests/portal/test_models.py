"""Each database constraint refuses the bad data it names."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, models, transaction
from django.urls import reverse
from django.utils import timezone

from assets.models import AssetGroup
from consent.models import ConsentRecord
from sandbox.samples import make_image
from tests.factories import (
    AssetFactory,
    AssetGroupFactory,
    ConsentRecordFactory,
    OutboundEmailFactory,
    PersonFactory,
    UpstreamSessionFactory,
    VerificationSessionFactory,
)
from verification.models import VerificationSession

pytestmark = pytest.mark.django_db

YESTERDAY = datetime.date(2026, 11, 23)
NOW = datetime.datetime(2026, 11, 24, 12, tzinfo=datetime.UTC)


def _consent_in(status: str, **fields: Any) -> Callable[[], models.Model]:
    return functools.partial(ConsentRecordFactory, status=status, **fields)


# (constraint, factory of a valid row, the update that breaks exactly that constraint)
CHECKS: list[tuple[str, Callable[[], models.Model], dict[str, Any]]] = [
    ("person_language_valid", PersonFactory, {"preferred_language": "fr"}),
    ("consent_status_valid", ConsentRecordFactory, {"status": "signed"}),
    ("consent_capture_method_valid", ConsentRecordFactory, {"capture_method": "telepathy"}),
    (
        "consent_expires_after_start",
        ConsentRecordFactory,
        {"starts_on": datetime.date(2026, 11, 24), "expires_on": YESTERDAY},
    ),
    (
        "consent_covers_some_media",
        ConsentRecordFactory,
        {"covers_images": False, "covers_video": False, "covers_audio": False},
    ),
    # From the status each may be reached from (the database refuses any other move).
    ("consent_revoked_has_time", _consent_in("approved", reviewed_at=NOW), {"status": "revoked"}),
    ("consent_reviewed_has_time", _consent_in("pending_review"), {"status": "approved"}),
    ("consent_reviewed_has_time", _consent_in("pending_review"), {"status": "rejected"}),
    ("verification_status_valid", VerificationSessionFactory, {"status": "completed"}),
    ("verification_verified_has_time", VerificationSessionFactory, {"status": "verified"}),
    ("upstream_status_valid", UpstreamSessionFactory, {"status": "done"}),
    ("upstream_purpose_valid", UpstreamSessionFactory, {"purpose": "fax"}),
    ("upstream_confirmed_has_group", UpstreamSessionFactory, {"status": "confirmed"}),
    ("upstream_pending_has_token", UpstreamSessionFactory, {"byted_token": None}),
    ("email_status_valid", OutboundEmailFactory, {"status": "bounced"}),
    ("email_sent_has_time", OutboundEmailFactory, {"status": "sent"}),
    ("asset_group_status_valid", AssetGroupFactory, {"status": "deleted"}),
    ("asset_group_type_valid", AssetGroupFactory, {"group_type": "Cartoon"}),
    ("asset_status_valid", AssetFactory, {"status": "done"}),
    ("asset_kind_valid", AssetFactory, {"kind": "hologram"}),
    ("asset_active_has_upstream_id", AssetFactory, {"status": "active"}),
    ("asset_processing_has_upstream_id", AssetFactory, {"status": "processing"}),
]


@pytest.mark.parametrize(
    ("constraint", "make", "update"), CHECKS, ids=[f"{c}-{'-'.join(u)}" for c, _, u in CHECKS]
)
def test_check_constraint_rejects_bad_data(constraint, make, update):
    row = make()

    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        type(row)._default_manager.filter(pk=row.pk).update(**update)


def test_a_person_has_one_open_invitation_at_a_time():
    first = VerificationSessionFactory()

    # PostgreSQL names the partial unique index; SQLite names its columns.
    with (
        pytest.raises(IntegrityError, match=r"one_open_verification_per_person|\.person_id"),
        transaction.atomic(),
    ):
        VerificationSessionFactory(person=first.person, status=VerificationSession.Status.OPENED)


def test_a_new_invitation_is_allowed_once_the_first_is_verified():
    first = VerificationSessionFactory()
    first.status = VerificationSession.Status.VERIFIED
    first.verified_at = timezone.now()
    first.save()

    second = VerificationSessionFactory(person=first.person)

    assert list(VerificationSession.objects.open()) == [second]


def test_the_same_file_is_registered_once_per_group():
    first = AssetFactory(content=b"same bytes")

    with (
        pytest.raises(IntegrityError, match=r"asset_file_once_per_group|\.sha256"),
        transaction.atomic(),
    ):
        AssetFactory(content=b"same bytes", group=first.group)


def test_a_failed_upload_does_not_block_the_same_file_again():
    first = AssetFactory(content=b"same bytes", status="failed")

    AssetFactory(content=b"same bytes", group=first.group)
    AssetFactory(content=b"same bytes")  # another group


def test_upstream_asset_ids_are_unique_but_many_assets_may_wait_for_one():
    AssetFactory(upstream_id=None)
    AssetFactory(upstream_id=None)
    taken = AssetFactory(active=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        AssetFactory(upstream_id=taken.upstream_id)


def test_a_revoked_consent_with_its_time_and_reason_is_accepted():
    record = ConsentRecordFactory(revoked=True)

    assert ConsentRecord.objects.get(pk=record.pk).revocation_reason


def test_a_verification_session_cannot_serve_another_persons_consent():
    session = VerificationSession(person=PersonFactory(), consent=ConsentRecordFactory())

    with pytest.raises(ValidationError, match="another person's"):
        session.full_clean()


def test_two_open_invitations_never_share_a_code():
    first = VerificationSessionFactory()

    with (
        pytest.raises(IntegrityError, match=r"verification_code_unique_while_open|\.code"),
        transaction.atomic(),
    ):
        VerificationSessionFactory(code=first.code)


def test_a_code_may_come_back_once_its_invitation_has_ended():
    first = VerificationSessionFactory(status=VerificationSession.Status.EXPIRED)

    assert VerificationSessionFactory(code=first.code).code == first.code


def test_an_asset_group_cannot_come_from_another_persons_verification():
    group = AssetGroup(
        group_id="group-1",
        person=PersonFactory(),
        upstream_session=UpstreamSessionFactory(),
    )

    with pytest.raises(ValidationError, match="another person's"):
        group.full_clean()


def test_a_withdrawn_group_takes_no_new_assets(superuser_client):
    group = AssetGroupFactory(status="withdrawn", verified=True)
    upload = SimpleUploadedFile("face.png", make_image(width=900, height=1200, fmt="PNG"))

    response = superuser_client.post(
        reverse("admin:assets_asset_add"), {"group": group.pk, "file": upload}
    )

    assert response.status_code == 200
    assert f"Group {group} is withdrawn: it takes no new files." in response.content.decode()
    assert not group.assets.exists()
