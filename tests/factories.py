"""factory_boy factories for the portal's models."""

from __future__ import annotations

import datetime
import hashlib

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from assets.models import Asset, AssetGroup, ProducerNotice, ReferenceCopy
from consent.models import ConsentRecord, ConsentUse, Person
from consent.services import CONSENT_TRANSITIONS
from mail.models import OutboundEmail
from verification.models import UpstreamSession, VerificationSession


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@studio.test")
    is_staff = True
    password = factory.django.Password("correct horse battery staple")

    class Params:
        superuser = factory.Trait(is_superuser=True)


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person

    legal_name = factory.Faker("name")
    display_name = factory.LazyAttribute(lambda person: person.legal_name.split()[0])
    email = factory.Faker("email")
    phone = "+44 20 7946 0000"


class ConsentRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConsentRecord
        skip_postgeneration_save = True  # a submitted record refuses a second save

    person = factory.SubFactory(PersonFactory)
    consent_text_version = "2026.1"
    intended_uses = "Reference likeness for AI-generated promotional video."
    projects = "Spring campaign"
    territory = "Worldwide"
    starts_on = factory.LazyFunction(timezone.localdate)
    expires_on = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=365))
    capture_method = ConsentRecord.CaptureMethod.E_SIGNATURE

    class Params:
        approved = factory.Trait(
            status=ConsentRecord.Status.APPROVED,
            reviewed_at=factory.LazyFunction(timezone.now),
        )
        revoked = factory.Trait(
            status=ConsentRecord.Status.REVOKED,
            reviewed_at=factory.LazyFunction(timezone.now),
            revoked_at=factory.LazyFunction(timezone.now),
            revocation_reason="Withdrawn by the person in writing.",
        )
        with_document = factory.Trait(
            signed_document=factory.LazyFunction(
                lambda: ContentFile(b"%PDF-1.4 signed consent", name="consent.pdf")
            )
        )
        # Everything approval needs: a signed document, the text's hash, the biometric notice
        # and one specific use (``uses=0`` for none).
        complete = factory.Trait(
            with_document=True,
            consent_text_sha256=hashlib.sha256(b"consent text 2026.1").hexdigest(),
            biometric_notice_accepted=True,
            retention_policy_accepted=True,
            representation=ConsentRecord.Representation.UNION,
            representative_name="SAG-AFTRA local 1",
            prohibited_uses="Political, adult or endorsement content.",
        )

    # A submitted record and its uses never change (ConsentRecord.save and the database refuse):
    # the record is made as a draft, given its uses, then moved to its status by UPDATEs, one
    # transition at a time, each writing the lifecycle fields that transition writes (the
    # database refuses any other move). Other fields are part of the INSERT.
    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        path = lifecycle_path(kwargs.pop("status", ConsentRecord.Status.DRAFT))
        steps = [
            (
                status,
                {
                    name: kwargs.pop(name)
                    for name, written_by in ConsentRecord.LIFECYCLE_WRITTEN_BY.items()
                    if action in written_by and name in kwargs
                },
            )
            for action, status in path
        ]
        record = super()._create(model_class, *args, **kwargs)
        record._factory_steps = steps
        return record

    @factory.post_generation
    def uses(record, create, extracted, **kwargs):
        """``uses=N`` specific uses (default: one for a ``complete`` record, none otherwise), or
        ``uses=["Project A", "Project B"]``: one use of each project."""
        if isinstance(extracted, list | tuple):
            named = [{"project": project} for project in extracted]
        else:
            count = extracted if extracted is not None else (1 if record.consent_text_sha256 else 0)
            named = [{}] * count
        for fields in named if create else []:
            ConsentUseFactory(consent=record, **fields)

    @factory.post_generation
    def lifecycle(record, create, extracted, **kwargs):
        if create and record._factory_steps:
            for status, fields in record._factory_steps:
                ConsentRecord.objects.filter(pk=record.pk).update(status=status, **fields)
            record.refresh_from_db()


def lifecycle_path(status: str) -> list[tuple[str, str]]:
    """The transitions (action, status reached) that take a draft to ``status``."""
    paths: dict[str, list[tuple[str, str]]] = {ConsentRecord.Status.DRAFT: []}
    while status not in paths:
        reached = {
            target: [*paths[start], (action, target)]
            for action, (starts, target) in CONSENT_TRANSITIONS.items()
            for start in starts
            if start in paths and target not in paths
        }
        if not reached:
            raise ValueError(f"no transition leads to {status!r}")
        paths.update(reached)
    return paths[status]


class ConsentUseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConsentUse

    project = "Spring campaign 2027"
    medium = "AI-generated video advertisement, 30 seconds"
    channels = "YouTube, Instagram, in-store screens"
    territory = "United Kingdom, Ireland"
    languages = "English"
    description = "The person's face walking through a spring market, holding the product."


class VerificationSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VerificationSession

    person = factory.SubFactory(PersonFactory)
    consent = factory.SubFactory(
        ConsentRecordFactory, person=factory.SelfAttribute("..person"), approved=True
    )

    class Params:
        verified = factory.Trait(
            status=VerificationSession.Status.VERIFIED,
            verified_at=factory.LazyFunction(timezone.now),
            ended_at=factory.LazyFunction(timezone.now),
        )


class UpstreamSessionFactory(factory.django.DjangoModelFactory):
    """A pending upstream session (created, polled from now on)."""

    class Meta:
        model = UpstreamSession

    invitation = factory.SubFactory(VerificationSessionFactory)
    purpose = UpstreamSession.Purpose.PHONE
    byted_token = factory.Sequence(lambda n: f"20261124120000{n:020X}")
    h5_link = factory.LazyAttribute(
        lambda row: f"https://h5.upstream.test/liveness?bytedToken={row.byted_token}&lng=en"
    )
    h5_link_expires_at = factory.LazyFunction(
        lambda: timezone.now() + datetime.timedelta(seconds=120)
    )
    token_expires_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(minutes=30))
    next_poll_at = factory.LazyFunction(timezone.now)


class OutboundEmailFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboundEmail

    about = factory.SubFactory(VerificationSessionFactory)
    person_id = factory.LazyAttribute(lambda row: row.about.person_id)
    to = factory.LazyAttribute(lambda row: row.about.person.email)
    kind = "invitation"
    language = "en"
    subject = "You are invited to verify"
    body_text = "Open your invitation: https://portal.test/verify/…"


class AssetGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AssetGroup

    group_id = factory.Sequence(lambda n: f"group-20261124120000-{n:05d}")
    person = factory.SubFactory(PersonFactory)

    class Params:
        # Made by the person's completed verification, which came with an approved consent
        # (images and video, from today for a year): a group that takes uploads.
        verified = factory.Trait(
            upstream_session=factory.SubFactory(
                UpstreamSessionFactory,
                invitation=factory.SubFactory(
                    VerificationSessionFactory,
                    person=factory.SelfAttribute("...person"),
                    verified=True,
                ),
                status=UpstreamSession.Status.CONFIRMED,
                confirmed_at=factory.LazyFunction(timezone.now),
                group_id=factory.SelfAttribute("..group_id"),
            )
        )


class AssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Asset

    class Params:
        content = factory.Sequence(lambda n: f"portrait bytes {n}".encode())
        active = factory.Trait(
            status=Asset.Status.ACTIVE,
            upstream_id=factory.Sequence(lambda n: f"asset-20261124120000-{n:05d}"),
        )

    group = factory.SubFactory(AssetGroupFactory)
    kind = Asset.Kind.IMAGE
    file = factory.LazyAttribute(lambda asset: ContentFile(asset.content, name="portrait.png"))
    original_filename = "portrait.png"
    sha256 = factory.LazyAttribute(lambda asset: hashlib.sha256(asset.content).hexdigest())
    size_bytes = factory.LazyAttribute(lambda asset: len(asset.content))
    content_type = "image/png"
    width = 1200
    height = 1600


class UsableAssetFactory(AssetFactory):
    """An asset producers may reference: active, in an active group, authorised by the person's
    approved consent (complete, one use: "Spring campaign 2027"), in force from today for a year
    and covering images and video (``consent__covers_audio=True`` for audio)."""

    active = True
    consent = factory.SubFactory(
        ConsentRecordFactory,
        person=factory.SelfAttribute("..group.person"),
        approved=True,
        complete=True,
    )


class ReferenceCopyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReferenceCopy

    user = factory.SubFactory(UserFactory)
    asset = factory.SubFactory(UsableAssetFactory)
    reference = factory.LazyAttribute(lambda copy: copy.asset.asset_uri)
    project = "Spring campaign 2027"
    kind = ReferenceCopy.Kind.REFERENCE
    request_id = factory.Sequence(lambda n: f"request-{n:06d}")


class ProducerNoticeFactory(factory.django.DjangoModelFactory):
    """A notice to a producer about their copies (default: one new copy of theirs)."""

    class Meta:
        model = ProducerNotice
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    reason = "The person revoked their consent."

    @factory.post_generation
    def copies(notice, create, extracted, **kwargs):
        if create:
            made = [ReferenceCopyFactory(user=notice.user)] if extracted is None else extracted
            notice.copies.set(made)
