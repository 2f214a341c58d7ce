"""Legal's CSV export of the consent list, as filtered, streamed."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from consent.exports import CONSENT_CSV_COLUMNS, consent_records_csv
from consent.models import ConsentRecord
from tests.factories import ConsentRecordFactory, PersonFactory

pytestmark = pytest.mark.django_db
URL = "/admin/consent/consentrecord/export.csv"


def _rows(response) -> list[dict[str, str]]:
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


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


def test_the_export_streams_every_record_once_in_the_changelist_order(superuser_client):
    records = [ConsentRecordFactory(complete=True, approved=True) for _ in range(5)]
    response = superuser_client.get(URL)
    assert response.streaming and not hasattr(response, "content")
    rows = _rows(response)
    assert [row["record id"] for row in rows] == [str(r.pk) for r in reversed(records)]
    assert all(row["uses"].startswith("Spring campaign 2027") for row in rows)
    assert AuditEvent.objects.get(action="consent.exported_csv").detail["records"] == 5


def test_the_csv_is_read_lazily_a_chunk_at_a_time():
    for _ in range(5):
        ConsentRecordFactory(complete=True, approved=True)
    with CaptureQueriesContext(connection) as queries:
        lines = consent_records_csv(ConsentRecord.objects.all(), chunk_size=2)
        header = next(lines)
    assert header.rstrip("\r\n").split(",")[:3] == ["record id", "person id", "person"]
    assert len(queries) == 0  # the header is sent before any record is read

    with CaptureQueriesContext(connection) as queries:
        first_chunk = next(lines)
    assert len(list(csv.reader(io.StringIO(first_chunk)))) == 2
    uses_queries = [q for q in queries if "consent_consentuse" in q["sql"]]
    assert len(uses_queries) == 1  # only the first chunk's uses were read

    with CaptureQueriesContext(connection) as queries:
        rest = list(lines)
    assert sum(len(list(csv.reader(io.StringIO(chunk)))) for chunk in rest) == 3
    assert len([q for q in queries if "consent_consentuse" in q["sql"]]) == 2
