"""The scale benchmark's data (``benchmarks.scale_data``): complete, valid, its audit chain whole.

The benchmark's numbers mean something only if the rows it COPYs are what the portal makes: a
producer sees every person's assets, the "waiting" filter finds the open invitations, and
``verify_audit`` accepts the events (their chain format is the model's).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from assets.models import Asset, ReferenceCopy, Withdrawal
from audit.models import AuditEvent
from audit.verification import verify_chain
from consent.models import ConsentRecord, ConsentSignature, Person, PersonalLink
from mail.models import OutboundEmail

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the builder COPYs (PostgreSQL)"),
]
SIZE = 50


def test_the_built_people_have_complete_data_and_a_valid_audit_chain():
    from benchmarks import scale_data

    scale_data.build(SIZE, progress=lambda line: None)
    assert Person.objects.count() == SIZE
    assert ConsentRecord.objects.in_force().count() == SIZE
    assert Asset.objects.usable_by_producers().count() == SIZE * 3
    assert ReferenceCopy.objects.count() == SIZE * 6
    assert Withdrawal.objects.count() == SIZE // 100
    assert OutboundEmail.objects.filter(status="sent").count() == SIZE
    assert OutboundEmail.objects.filter(status="queued").count() == SIZE // 25
    assert ConsentSignature.objects.count() == SIZE // 2
    assert PersonalLink.objects.usable().count() == SIZE // 10
    people_events = AuditEvent.objects.filter(person_id__isnull=False)
    assert people_events.count() == SIZE * 33
    report = verify_chain()
    assert report.intact, report.problems
    assert report.events == AuditEvent.objects.count()


def test_the_pages_show_the_built_rows_to_each_role():
    from benchmarks import scale_data

    scale_data.build(SIZE, progress=lambda line: None)
    producer, onboarding = Client(), Client()
    producer.force_login(scale_data.get_user_model().objects.get(username="bench-producer"))
    onboarding.force_login(scale_data.get_user_model().objects.get(username="bench-onboarding"))
    page = producer.get("/references/")  # newest first: the last person built leads
    assert page.status_code == 200 and f"P{SIZE:06d}" in page.content.decode()
    waiting = onboarding.get("/admin/consent/person/", {"verification": "waiting"})
    assert waiting.status_code == 200
    assert "2 people" in waiting.content.decode()  # persons 25 and 50 have an open invitation
