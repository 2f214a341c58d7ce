"""Legal's consent texts: versions written, then published and frozen for good.

A ``ConsentTemplateVersion`` is written while unpublished (its SHA-256 follows its text) and
published once (``template_version_publish``): from then on it never changes, so a record that
picked it, and the PDF a person signed, always point at the exact words agreed to. Each step
writes its audit event in the same transaction.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from audit.services import acting_user, audit_record, snapshot
from consent.models import (
    ConsentTemplateVersion,
    TemplateField,
    TemplateNotice,
    TemplateVersionFrozen,
    consent_text_sha256,
)

User = AbstractBaseUser | AnonymousUser | None
_AUDITED = ["version", "language", "sha256", "notices", "required_fields", "published_at"]


def template_version_problems(version: ConsentTemplateVersion) -> list[str]:
    """What stops ``version`` from being published (empty when it can be)."""
    problems = []
    if not version.text.strip():
        problems.append("the text is empty")
    unknown = set(version.notices) - set(TemplateNotice.values)
    unknown |= set(version.required_fields) - set(TemplateField.values)
    if unknown:
        problems.append("unknown notices or fields: " + ", ".join(sorted(map(str, unknown))))
    if TemplateNotice.BIOMETRIC not in version.notices:
        problems.append("it contains no biometric data notice (verification needs one)")
    return problems


@transaction.atomic
def template_version_publish(
    *, version: ConsentTemplateVersion, actor: User
) -> ConsentTemplateVersion:
    """Publish ``version``: from now on drafts may pick it, and it never changes."""
    version.refresh_from_db()
    problems = template_version_problems(version)
    if problems:
        raise TemplateVersionFrozen(f"{version} cannot be published: " + "; ".join(problems) + ".")
    now = timezone.now()
    published = ConsentTemplateVersion.objects.filter(
        pk=version.pk, published_at__isnull=True
    ).update(
        published_at=now, published_by=acting_user(actor), sha256=consent_text_sha256(version.text)
    )
    if not published:
        raise TemplateVersionFrozen(f"{version} is already published.")
    version.refresh_from_db()
    audit_record(
        action="consent_template.version_published",
        obj=version,
        actor=actor,
        after=snapshot(version, _AUDITED),
    )
    return version
