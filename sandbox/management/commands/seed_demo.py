"""Demo data for a laptop: a superuser, one user per role, people in every consent state, a
verified group, assets.

The demo belongs to the sandbox: its verified person and active assets exist only because the
sandbox holds the same group and assets (``sandbox.demo``), so the command comes with the
sandbox app (``SANDBOX_ENABLED``) and the portal itself never imports the sandbox.

Runs only with DEBUG on, since it makes users with known passwords. Running it again changes
nothing but those users' passwords, names and role groups, which it sets back to what it prints
and to ``portal.roles.ROLES``.
"""

from __future__ import annotations

import datetime
import hashlib
import io
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from assets.media import validate_media
from assets.models import Asset, AssetGroup
from consent.models import ConsentRecord, ConsentUse, Language, Person
from consent.services import consent_approve, consent_revoke, consent_submit
from portal.roles import LEGAL, ONBOARDING, PRODUCERS, Role, roles_apply
from sandbox.demo import demo_asset_create, demo_group_create
from sandbox.samples import make_image
from upstream import key_fingerprint
from verification.models import UpstreamSession, VerificationSession

USERNAME = "admin"
PASSWORD = "admin"  # noqa: S105 - a demo account, refused without DEBUG
# One staff user per role, each with its username as password (demo accounts, as above).
ROLE_USERS = [("onboarding", ONBOARDING), ("legal", LEGAL), ("producer", PRODUCERS)]
# Full names: invitation emails and pages name the inviter ("Olivia Reyes at …").
FULL_NAMES = {
    USERNAME: ("Sam", "Taylor"),
    "onboarding": ("Olivia", "Reyes"),
    "legal": ("Lena", "Hartmann"),
    "producer": ("Pat", "Morgan"),
}
TERRITORY = "United Kingdom, Ireland"  # the consent's and its use's: the same places

Status = ConsentRecord.Status


@dataclass(frozen=True)
class DemoPerson:
    legal_name: str
    display_name: str
    language: str
    consent: str
    face: str  # the sandbox face identity written into their files

    @property
    def email(self) -> str:
        return f"{self.display_name.lower()}@talent.test"


PEOPLE = [
    DemoPerson("Ada Moreau", "Ada", Language.ENGLISH, Status.APPROVED, face="ada"),
    DemoPerson("Grace Okafor", "Grace", Language.ENGLISH, Status.PENDING_REVIEW, face="grace"),
    DemoPerson("Linus Berg", "Linus", Language.CHINESE_SIMPLIFIED, Status.DRAFT, face="linus"),
    DemoPerson("Sofia Rossi", "Sofia", Language.CHINESE_TRADITIONAL, Status.REVOKED, face=""),
]


class Command(BaseCommand):
    help = "Create demo data and a superuser admin/admin (DEBUG only; safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates a superuser with a known password: it runs only with DEBUG=true."
            )
        with transaction.atomic():
            admin = self._superuser()
            roles_apply()
            for username, role in ROLE_USERS:
                self._role_user(username, role)
            for demo in PEOPLE:
                self._person(admin, demo)
        admin_url = settings.PORTAL_PUBLIC_URL + reverse("admin:index")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"  Admin:    {admin_url}")
        self.stdout.write(f"  Username: {USERNAME}")
        self.stdout.write(f"  Password: {PASSWORD}")
        self.stdout.write("  One user per role (the password is the username):")
        for username, role in ROLE_USERS:
            self.stdout.write(f"    {role.name + ':':<12}{username}")

    def _superuser(self) -> Any:
        user, _ = get_user_model().objects.get_or_create(
            username=USERNAME, defaults={"email": "admin@studio.test"}
        )
        user.first_name, user.last_name = FULL_NAMES[USERNAME]
        user.is_staff = user.is_superuser = True
        user.set_password(PASSWORD)
        user.save()
        return user

    def _role_user(self, username: str, role: Role) -> None:
        user, _ = get_user_model().objects.get_or_create(
            username=username, defaults={"email": f"{username}@studio.test"}
        )
        user.first_name, user.last_name = FULL_NAMES[username]
        user.is_staff, user.is_superuser = True, False
        user.set_password(username)
        user.save()
        user.groups.set([Group.objects.get(name=role.name)])

    def _person(self, admin: Any, demo: DemoPerson) -> None:
        person, created = Person.objects.get_or_create(
            email=demo.email,
            defaults={
                "legal_name": demo.legal_name,
                "display_name": demo.display_name,
                "preferred_language": demo.language,
                "phone": "+44 20 7946 0000",
                "notes": "Demo person made by seed_demo.",
                "created_by": admin,
            },
        )
        if not created:
            self.stdout.write(f"  {person} is already there.")
            return
        consent = self._consent(admin, person, demo.consent)
        if demo.consent == Status.APPROVED:
            self._verified_with_assets(admin, person, consent, demo.face)
        self.stdout.write(f"  {person}: consent {consent.get_status_display().lower()}.")

    def _consent(self, admin: Any, person: Person, status: str) -> ConsentRecord:
        """A complete record (terms, one specific use, a signed PDF) moved to ``status`` by the
        portal's own services, as staff and legal would (audit events included): the onboarding
        user submits it, the legal user approves or revokes it."""
        today = timezone.localdate()
        page = io.BytesIO()
        Image.new("RGB", (595, 842), "white").save(page, "PDF")  # a real, if blank, signed form
        text = f"Demo consent text, version 2026.1, {Language(person.preferred_language).label}."
        record = ConsentRecord.objects.create(
            person=person,
            consent_text_version="2026.1",
            consent_text_sha256=hashlib.sha256(text.encode()).hexdigest(),
            consent_text_language=person.preferred_language,
            intended_uses="Reference likeness for AI-generated promotional video.",
            projects="Spring campaign",
            territory=TERRITORY,
            covers_audio=True,
            likeness_voice=True,
            prohibited_uses="Political, adult or endorsement content.",
            starts_on=today - datetime.timedelta(days=30),
            expires_on=today + datetime.timedelta(days=335),
            capture_method=ConsentRecord.CaptureMethod.E_SIGNATURE,
            representation=ConsentRecord.Representation.UNION,
            representative_name="SAG-AFTRA (demo local)",
            biometric_notice_accepted=True,
            retention_policy_accepted=True,
            signed_document=ContentFile(page.getvalue(), name="signed-consent.pdf"),
            created_by=admin,
        )
        ConsentUse.objects.create(
            consent=record,
            project="Spring campaign",
            medium="AI-generated video advertisement, 30 seconds",
            channels="YouTube, Instagram, in-store screens",
            territory=TERRITORY,
            languages="English",
            description="The person walking through a spring market, holding the product.",
        )
        # Four eyes (CONSENT_FOUR_EYES): onboarding submits, legal decides.
        users = get_user_model().objects
        onboarding, legal = users.get(username="onboarding"), users.get(username="legal")
        if status != Status.DRAFT:
            consent_submit(record=record, actor=onboarding)
        if status in (Status.APPROVED, Status.REVOKED):
            consent_approve(record=record, actor=legal, note="Demo review.")
        if status == Status.REVOKED:
            consent_revoke(
                record=record,
                actor=legal,
                channel=ConsentRecord.RevocationChannel.EMAIL,
                reason="The person withdrew consent by email.",
            )
        record.refresh_from_db()
        return record

    def _verified_with_assets(
        self, admin: Any, person: Person, consent: ConsentRecord, face: str
    ) -> None:
        """A completed verification and two active portraits, present in the sandbox too."""
        now = timezone.now()
        invitation = VerificationSession.objects.create(
            person=person,
            consent=consent,
            status=VerificationSession.Status.VERIFIED,
            opened_at=now,
            verified_at=now,
            ended_at=now,
            created_by=admin,
        )
        upstream_group = demo_group_create(api_key=settings.ANYFAST_API_KEY, identity=face)
        session = UpstreamSession.objects.create(
            invitation=invitation,
            purpose=UpstreamSession.Purpose.PHONE,
            status=UpstreamSession.Status.CONFIRMED,
            language=person.preferred_language,
            api_key_fingerprint=key_fingerprint(settings.ANYFAST_API_KEY),
            group_id=upstream_group.group_id,
            confirmed_at=now,
            ended_at=now,
        )
        group = AssetGroup.objects.create(
            group_id=upstream_group.group_id,
            person=person,
            upstream_session=session,
            api_key_fingerprint=session.api_key_fingerprint,
        )
        for number, (width, height) in enumerate([(1200, 1600), (1080, 1080)], start=1):
            filename = f"{face}-{number}.jpg"
            content = make_image(width=width, height=height, fmt="JPEG", face=face, label=face)
            asset = Asset(
                group=group,
                consent=consent,
                file=ContentFile(content, name=filename),
                status=Asset.Status.ACTIVE,
                uploaded_by=admin,
            )
            asset.record_measurements(
                validate_media(io.BytesIO(content), filename=filename), original_filename=filename
            )
            asset.upstream_id = demo_asset_create(
                group=upstream_group,
                name=asset.upstream_name,
                asset_type="Image",
                content_type=asset.content_type,
                sha256=asset.sha256,
                size=asset.size_bytes,
            ).asset_id
            asset.save()
