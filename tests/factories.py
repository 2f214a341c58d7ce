"""factory_boy factories for the portal's models."""

from __future__ import annotations

import datetime
import hashlib

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from assets.models import Asset, AssetGroup
from consent.models import (
    ConsentRecord,
    OutboundEmail,
    Person,
    UpstreamVerification,
    VerificationSession,
)


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


class UpstreamVerificationFactory(factory.django.DjangoModelFactory):
    """A pending upstream session (created, polled from now on)."""

    class Meta:
        model = UpstreamVerification

    invitation = factory.SubFactory(VerificationSessionFactory)
    purpose = UpstreamVerification.Purpose.PHONE
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

    invitation = factory.SubFactory(VerificationSessionFactory)
    to = factory.LazyAttribute(lambda row: row.invitation.person.email)
    template = "invitation"
    language = "en"
    subject = "You are invited to verify"


class AssetGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AssetGroup

    group_id = factory.Sequence(lambda n: f"group-20261124120000-{n:05d}")
    person = factory.SubFactory(PersonFactory)


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
