"""factory_boy factories for the portal's models."""

from __future__ import annotations

import datetime
import hashlib

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from assets.models import Asset, AssetGroup
from consent.models import ConsentRecord, Person, VerificationSession


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
        completed = factory.Trait(
            status=VerificationSession.Status.COMPLETED,
            completed_at=factory.LazyFunction(timezone.now),
        )


class AssetGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AssetGroup

    group_id = factory.Sequence(lambda n: f"group-20261124120000-{n:05d}")
    person = factory.SubFactory(PersonFactory)

    class Params:
        # Made by the person's completed verification, which came with an approved consent
        # (images and video, from today for a year): a group that takes uploads.
        verified = factory.Trait(
            verification_session=factory.SubFactory(
                VerificationSessionFactory, person=factory.SelfAttribute("..person"), completed=True
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
