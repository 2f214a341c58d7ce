"""Legal's CSV export of the consent list, as filtered."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from audit.models import AuditEvent
from consent.exports import CONSENT_CSV_COLUMNS
from tests.factories import ConsentRecordFactory, PersonFactory

pytestmark = pytest.mark.django_db
URL = "/admin/consent/consentrecord/export.csv"


def _rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_export_follows_the_changelist_filters(superuser_client: Client):
    approved = ConsentRecordFactory(complete=True, approved=True)
    ConsentRecordFactory()  # a draft, filtered out
    response = superuser_client.get(URL, {"status__exact": "approved"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="consent-records-')
    rows = _rows(response)
    assert [row["record id"] for row in rows] == [str(approved.pk)]
    row = rows[0]
    assert list(row) == list(CONSENT_CSV_COLUMNS)
    assert row["status"] == "Approved" and row["likeness"] == "face"
    assert row["uses"].startswith("Spring campaign 2027: AI-generated video advertisement")
    event = AuditEvent.objects.get(action="consent.exported_csv")
    assert event.detail == {"filters": "status__exact=approved", "records": 1}


def test_cells_that_a_spreadsheet_would_run_as_formulas_are_neutralised(superuser_client):
    ConsentRecordFactory(person=PersonFactory(legal_name='=HYPERLINK("http://evil")'))
    (row,) = _rows(superuser_client.get(URL))
    assert row["person"] == '\'=HYPERLINK("http://evil")'


def test_the_changelist_links_to_the_export_with_its_filters(superuser_client):
    page = superuser_client.get("/admin/consent/consentrecord/", {"status__exact": "draft"})
    assert f'href="{URL}?status__exact=draft"' in page.content.decode()


def test_staff_without_view_permission_cannot_export(staff_client: Client):
    ConsentRecordFactory()
    assert staff_client.get(URL).status_code == 403
    assert not AuditEvent.objects.exists()
