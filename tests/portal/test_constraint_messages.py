"""A broken constraint reaches staff as a sentence on the field concerned, never its raw name."""

from __future__ import annotations

import datetime

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db.models import BaseConstraint, Q
from django.test import Client
from django.urls import reverse

from consent.models import ConsentRecord
from portal.constraints import FieldCheckConstraint
from tests.factories import PersonFactory, VerificationSessionFactory
from tests.portal.test_models import CHECKS
from verification.models import VerificationSession

pytestmark = pytest.mark.django_db

# The field each check constraint of tests.portal.test_models.CHECKS is reported on.
FIELD = {
    "person_language_valid": "preferred_language",
    "consent_status_valid": "status",
    "consent_capture_method_valid": "capture_method",
    "consent_expires_after_start": "expires_on",
    "consent_covers_some_media": "covers_images",
    "consent_revoked_has_time": "revoked_at",
    "consent_reviewed_has_time": "reviewed_at",
    "verification_status_valid": "status",
    "verification_verified_has_time": "status",
    "upstream_status_valid": "status",
    "upstream_purpose_valid": "purpose",
    "upstream_confirmed_has_group": "status",
    "upstream_pending_has_token": "byted_token",
    "email_status_valid": "status",
    "email_sent_has_time": "status",
    "asset_group_status_valid": "status",
    "asset_group_type_valid": "group_type",
    "asset_status_valid": "status",
    "asset_kind_valid": "kind",
    "asset_active_has_upstream_id": "upstream_id",
    "asset_processing_has_upstream_id": "upstream_id",
}


def portal_constraints() -> list[tuple[str, BaseConstraint]]:
    return [
        (f"{model._meta.label}.{constraint.name}", constraint)
        for app in ("consent", "verification", "assets", "mail", "audit")
        for model in apps.get_app_config(app).get_models()
        for constraint in model._meta.constraints
    ]


@pytest.mark.parametrize(("label", "constraint"), portal_constraints())
def test_every_constraint_has_a_message_of_its_own(label, constraint):
    message = constraint.get_violation_error_message()

    assert constraint.violation_error_message != BaseConstraint.default_violation_error_message
    assert constraint.name not in message
    assert message.endswith(".")


@pytest.mark.parametrize(
    ("constraint", "make", "update"), CHECKS, ids=[f"{c}-{'-'.join(u)}" for c, _, u in CHECKS]
)
def test_model_validation_reports_each_check_on_its_field(constraint, make, update):
    row = make()
    for name, value in update.items():
        setattr(row, name, value)
    [rule] = [c for c in type(row)._meta.constraints if c.name == constraint]

    with pytest.raises(ValidationError) as caught:
        row.validate_constraints()

    assert caught.value.message_dict == {FIELD[constraint]: [rule.violation_error_message]}


def test_full_clean_reports_a_consent_that_ends_before_it_starts_on_its_end_date():
    record = ConsentRecord(
        person=PersonFactory(),
        consent_text_version="2026.1",
        intended_uses="Promotional video.",
        capture_method=ConsentRecord.CaptureMethod.E_SIGNATURE,
        starts_on=datetime.date(2026, 11, 24),
        expires_on=datetime.date(2026, 11, 23),
    )

    with pytest.raises(ValidationError) as caught:
        record.full_clean()

    assert caught.value.message_dict == {
        "expires_on": [
            "The consent cannot end before it starts: choose an end date on or after the start "
            "date, or leave it empty for no end date."
        ]
    }


def _consent_form(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "person": PersonFactory().pk,
        "consent_text_version": "2026.1",
        "capture_method": "e_signature",
        "intended_uses": "Promotional video.",
        "projects": "",
        "covers_images": "on",
        "territory": "Worldwide",
        "starts_on": "2026-11-24",
        "expires_on": "2027-11-23",
        "consent_text_language": "en",
        "representation": "none",
        "uses-TOTAL_FORMS": "0",
        "uses-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return {name: value for name, value in data.items() if value is not None}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"expires_on": "2026-11-23"},
            "expires_on",
            "The consent cannot end before it starts: choose an end date on or after the start "
            "date, or leave it empty for no end date.",
        ),
        (
            {"covers_images": None},
            "covers_images",
            "Tick at least one kind of media the consent covers: images, video or audio.",
        ),
    ],
)
def test_the_consent_form_shows_the_rule_on_its_field(
    superuser_client: Client, overrides, field, message
):
    response = superuser_client.post(
        reverse("admin:consent_consentrecord_add"), _consent_form(**overrides)
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {field: [message]}
    assert not ConsentRecord.objects.exists()


def test_the_consent_form_saves_a_consent_that_keeps_every_rule(superuser_client: Client):
    response = superuser_client.post(reverse("admin:consent_consentrecord_add"), _consent_form())

    assert response.status_code == 302
    assert ConsentRecord.objects.count() == 1


def test_a_field_check_must_name_a_field_its_condition_reads():
    with pytest.raises(ValueError, match="does not read 'expires_on'"):
        FieldCheckConstraint(condition=Q(starts_on__isnull=False), name="x", field="expires_on")


def test_a_field_check_is_an_ordinary_check_constraint_to_migrations():
    constraint = FieldCheckConstraint(
        condition=Q(starts_on__isnull=False),
        name="x",
        field="starts_on",
        violation_error_message="m.",
    )

    path, _, kwargs = constraint.deconstruct()

    assert path == "django.db.models.CheckConstraint"
    assert "field" not in kwargs
    assert constraint.clone().field == "starts_on"


def test_full_clean_reports_a_second_open_verification_once_on_the_person():
    first = VerificationSessionFactory()

    with pytest.raises(ValidationError) as caught:
        VerificationSession(person=first.person).full_clean()

    assert caught.value.message_dict == {
        "person": ["This person already has an open invitation: complete or cancel it first."]
    }
