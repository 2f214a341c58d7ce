"""Changelists that stay flat in the number of people (issue 16): filters that never list every
person, asset, project, action or object type, and an estimated count of large tables."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from audit.services import audit_record
from consent.models import Person
from portal import admin_filters
from tests.factories import AssetGroupFactory, PersonFactory, ReferenceCopyFactory

pytestmark = pytest.mark.django_db

COPIES_URL = reverse("admin:assets_referencecopy_changelist")
EVENTS_URL = reverse("admin:audit_auditevent_changelist")


def _sidebar(response) -> str:
    return response.content.decode().split('id="changelist-filter"')[1]


def _copy_of(name: str, project: str = "Spring campaign 2027"):
    person = PersonFactory(legal_name=f"{name} Legalname", display_name=name)
    return ReferenceCopyFactory(asset__group=AssetGroupFactory(person=person), project=project)


def test_copies_filters_name_only_the_chosen_person_asset_and_project(superuser_client: Client):
    ada = _copy_of("Ada", project="Autumn trailer")
    _copy_of("Grace", project="Winter teaser")

    everyone = superuser_client.get(COPIES_URL)
    person = ada.asset.group.person
    chosen = superuser_client.get(COPIES_URL, {"asset__group__person__id__exact": person.pk})
    asset = superuser_client.get(COPIES_URL, {"asset__id__exact": ada.asset_id})
    project = superuser_client.get(COPIES_URL, {"project": "Autumn trailer"})

    for name in ("Ada", "Grace", str(ada.asset), "Autumn trailer", "Winter teaser"):
        assert name not in _sidebar(everyone), name
    assert "Ada" in _sidebar(chosen) and "Grace" not in _sidebar(chosen)
    assert str(ada.asset) in _sidebar(asset)
    assert 'value="Autumn trailer"' in _sidebar(project)
    for response in (chosen, asset, project):
        assert [copy.pk for copy in response.context["cl"].result_list] == [ada.pk]


def test_filtered_copies_run_the_same_number_of_queries_for_1_and_20_people(
    superuser_client: Client,
):
    first = _copy_of("Ada")
    query = {"asset__group__person__id__exact": first.asset.group.person_id, "kind": "reference"}
    with CaptureQueriesContext(connection) as one:
        assert superuser_client.get(COPIES_URL, query).status_code == 200

    for number in range(19):
        _copy_of(f"Person {number}")
    with CaptureQueriesContext(connection) as twenty:
        assert superuser_client.get(COPIES_URL, query).status_code == 200

    assert len(twenty.captured_queries) == len(one.captured_queries)


def test_audit_filters_offer_every_action_in_words_without_reading_the_events(
    superuser_client: Client,
):
    person = PersonFactory(legal_name="Ada Legalname")
    audit_record(action="zz.never_labelled", obj=person, actor_label="test")
    audit_record(action="consent.approve", obj=person, actor_label="test")

    with CaptureQueriesContext(connection) as queries:
        page = superuser_client.get(EVENTS_URL)
    approved = superuser_client.get(EVENTS_URL, {"action": "consent.approve"})
    of_people = superuser_client.get(EVENTS_URL, {"object_type": "consent.person"})

    sidebar = _sidebar(page)
    assert "Consent approved" in sidebar and "Consent revoked" in sidebar  # none recorded yet
    assert "zz.never_labelled" not in sidebar
    assert not [q for q in queries.captured_queries if "DISTINCT" in q["sql"].upper()]
    assert [event.action for event in approved.context["cl"].result_list] == ["consent.approve"]
    assert len(of_people.context["cl"].result_list) == 2


def test_an_unfiltered_large_table_is_counted_from_the_statistics(monkeypatch):
    PersonFactory.create_batch(3)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Person._meta.db_table}")
    PersonFactory.create_batch(2)  # not yet in the statistics

    exact = admin_filters.EstimatedCountPaginator(Person.objects.all(), 10).count
    monkeypatch.setattr(admin_filters, "ESTIMATE_FROM_ROWS", 1)
    with CaptureQueriesContext(connection) as queries:
        estimated = admin_filters.EstimatedCountPaginator(Person.objects.all(), 10).count
    filtered = admin_filters.EstimatedCountPaginator(Person.objects.filter(pk__gt=0), 10)

    assert exact == 5  # below ESTIMATE_FROM_ROWS: exact
    assert estimated == 3 and len(queries.captured_queries) == 1
    assert filtered.count == 5  # filtered: always exact


def test_the_audit_list_is_counted_in_one_query(superuser_client: Client):
    person = PersonFactory()
    for _ in range(3):
        audit_record(action="person.changed", obj=person, actor_label="test")

    with CaptureQueriesContext(connection) as queries:
        response = superuser_client.get(EVENTS_URL)

    sqls = [q["sql"].lower() for q in queries.captured_queries]
    counts = [sql for sql in sqls if "count(" in sql and "audit_auditevent" in sql]
    assert len(counts) == 1  # no second count of the whole table (show_full_result_count)
    assert response.context["cl"].result_count == AuditEvent.objects.count()


def test_a_filtered_lists_rows_link_back_to_it_and_select_for_an_action(superuser_client: Client):
    person = PersonFactory(legal_name="Ada <Lovelace> & Co", display_name="Ada <L> & Co")
    url = reverse("admin:consent_person_changelist")

    listed = superuser_client.get(url, {"q": "Lovelace", "preferred_language__exact": "en"})
    html = listed.content.decode()
    change = reverse("admin:consent_person_change", args=[person.pk])

    # As Django's own rows: the change page keeps the list's filters for the way back...
    filters = "_changelist_filters=q%3DLovelace%26preferred_language__exact%3Den"
    assert f'<a href="{change}?{filters}">' in html
    # ... and the checkbox selects the row for an action, labelled with the escaped name.
    assert (
        f'<input type="checkbox" name="_selected_action" value="{person.pk}" '
        'class="action-select" aria-label="Select this object for an action - '
        'Ada &lt;L&gt; &amp; Co">'
    ) in html
