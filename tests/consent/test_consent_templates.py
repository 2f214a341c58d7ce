"""Consent texts: legal writes versions, publishes them (frozen for good, at the database too),
the portal computes their SHA-256, and a draft picks one (its version, language, hash)."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from consent.models import (
    ConsentRecord,
    ConsentTemplate,
    ConsentTemplateVersion,
    Language,
    TemplateVersionFrozen,
)
from consent.services import consent_problems
from consent.template_versions import template_version_publish
from portal.roles import LEGAL, ONBOARDING, roles_apply
from tests.consent.esign_helpers import CHINESE_TEXT, ENGLISH_TEXT, published_version
from tests.factories import PersonFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_the_portal_computes_the_sha256_of_the_exact_text_bytes():
    template = ConsentTemplate.objects.create(name="Likeness release")
    version = ConsentTemplateVersion.objects.create(
        template=template, version="1", language=Language.CHINESE_TRADITIONAL, text=CHINESE_TEXT
    )
    assert version.sha256 == hashlib.sha256(CHINESE_TEXT.encode("utf-8")).hexdigest()
    # A text pasted from a form (CRLF) is stored and hashed with plain newlines.
    version.text = "Line one\r\nLine two"
    version.save()
    version.refresh_from_db()
    assert version.text == "Line one\nLine two"
    assert version.sha256 == hashlib.sha256(b"Line one\nLine two").hexdigest()


def test_a_published_version_is_frozen_in_the_application_and_the_database():
    version = published_version()
    assert version.published_at is not None and version.published_by.username == "legal"
    event = AuditEvent.objects.get(action="consent_template.version_published")
    assert event.after["sha256"] == hashlib.sha256(ENGLISH_TEXT.encode()).hexdigest()

    version.text = "Something else"
    with pytest.raises(TemplateVersionFrozen):
        version.save()
    with pytest.raises(TemplateVersionFrozen):
        version.delete()
    with pytest.raises(TemplateVersionFrozen, match="already published"):
        template_version_publish(version=version, actor=None)
    for statement in (
        "UPDATE consent_consenttemplateversion SET text = 'forged' WHERE id = %s",
        "DELETE FROM consent_consenttemplateversion WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [version.pk])
    version.refresh_from_db()
    assert version.text == ENGLISH_TEXT


def test_a_version_without_a_biometric_notice_is_not_published():
    template = ConsentTemplate.objects.create(name="Release")
    version = ConsentTemplateVersion.objects.create(
        template=template, version="1", text="I agree.", notices=["retention"]
    )
    with pytest.raises(TemplateVersionFrozen, match="no biometric data notice"):
        template_version_publish(version=version, actor=None)
    version.refresh_from_db()
    assert version.published_at is None


def test_a_draft_picks_a_version_and_takes_its_version_language_and_hash(superuser_client):
    version = published_version(text=CHINESE_TEXT, language=Language.CHINESE_TRADITIONAL)
    person = PersonFactory()
    response = superuser_client.post(
        "/admin/consent/consentrecord/add/",
        {
            "person": person.pk,
            "capture_method": "e_signature",
            "template_version": version.pk,
            "consent_text_version": "",
            "consent_text_sha256": "",
            "consent_text_language": "en",
            "intended_uses": "Reference likeness for a video advertisement.",
            "territory": "Worldwide",
            "starts_on": "2026-12-03",
            "likeness_face": "on",
            "covers_images": "on",
            "representation": "none",
            "uses-TOTAL_FORMS": "0",
            "uses-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    record = ConsentRecord.objects.get(person=person)
    assert record.template_version == version
    assert (record.consent_text_version, record.consent_text_language) == ("2026-12", "zh-Hant")
    assert record.consent_text_sha256 == version.sha256
    assert "the SHA-256 of the consent text shown is missing" not in consent_problems(record)


def test_legal_publishes_from_the_admin_and_onboarding_only_reads(client):
    roles_apply()
    legal = UserFactory(username="lena")
    legal.groups.add(Group.objects.get(name=LEGAL.name))
    template = ConsentTemplate.objects.create(name="Release")
    version = ConsentTemplateVersion.objects.create(
        template=template, version="1", text="I agree.", notices=["biometric"]
    )
    client.force_login(legal)
    client.post(
        "/admin/consent/consenttemplateversion/",
        {"action": "publish", "_selected_action": [version.pk]},
    )
    version.refresh_from_db()
    assert version.published_at is not None
    change = client.get(f"/admin/consent/consenttemplateversion/{version.pk}/change/")
    assert change.status_code == 200 and b'name="text"' not in change.content  # read-only
    assert "consent.change_consenttemplateversion" not in ONBOARDING.permissions
    assert "consent.view_consenttemplateversion" in ONBOARDING.permissions
