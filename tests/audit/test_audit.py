"""The audit trail: append-only at every layer, hash-chained, verifiable."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory

from audit.context import CLIENT_ID_LENGTH, RequestIdMiddleware, _task_finished, _task_started
from audit.models import GENESIS_HASH, AppendOnlyError, AuditEvent
from audit.services import audit_record, snapshot
from audit.verification import verify_chain
from tests.factories import ConsentRecordFactory, PersonFactory, UserFactory

pytestmark = pytest.mark.django_db


def _three_events() -> list[AuditEvent]:
    person = PersonFactory()
    user = UserFactory(username="legal-1")
    return [
        audit_record(action="person.created", obj=person, actor=user, person_id=person.pk),
        audit_record(
            action="person.updated",
            obj=person,
            actor=user,
            person_id=person.pk,
            before={"email": "old@example.com"},
            after={"email": "new@example.com"},
        ),
        audit_record(action="email.sent", obj=person, actor_label="celery", person_id=person.pk),
    ]


def test_events_chain_each_to_the_one_before():
    first, second, third = _three_events()
    assert first.previous_hash == GENESIS_HASH
    assert second.previous_hash == first.hash
    assert third.previous_hash == second.hash
    assert third.actor_label == "celery" and third.actor_id is None
    assert second.actor_label == "legal-1"
    report = verify_chain()
    assert report.intact and report.events == 3 and report.head == third.hash


def test_values_read_back_from_the_database_keep_their_hash():
    record = ConsentRecordFactory()
    audit_record(action="consent.approved", obj=record, after=snapshot(record))
    stored = AuditEvent.objects.get()
    assert stored.after["starts_on"] == record.starts_on.isoformat()
    assert stored.compute_hash() == stored.hash


def test_the_orm_refuses_to_change_or_delete_an_event():
    event = _three_events()[0]
    event.action = "nothing happened"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == 3


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_auditevent SET action = 'rewritten'", "DELETE FROM audit_auditevent"],
)
def test_the_database_refuses_sql_that_changes_or_deletes_events(statement):
    _three_events()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert set(AuditEvent.objects.values_list("action", flat=True)) == {
        "person.created",
        "person.updated",
        "email.sent",
    }


def _without_triggers(statement: str, params: list[object]) -> None:
    """What someone who owns the database could do: switch the triggers off and edit."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        else:
            cursor.execute("DROP TRIGGER audit_event_no_update")
            cursor.execute("DROP TRIGGER audit_event_no_delete")
        cursor.execute(statement, params)


def test_verification_finds_an_event_changed_behind_the_triggers():
    _, second, _ = _three_events()
    _without_triggers("UPDATE audit_auditevent SET action = %s WHERE id = %s", ["x", second.pk])
    report = verify_chain()
    assert not report.intact
    (problem,) = report.problems
    assert (problem.kind, problem.event_id) == ("changed", second.pk)
    assert str(problem).startswith(f"Event #{second.pk} (")
    assert ", x) was changed after it was written" in str(problem)


def test_verification_finds_an_event_removed_from_the_middle():
    _, second, third = _three_events()
    _without_triggers("DELETE FROM audit_auditevent WHERE id = %s", [second.pk])
    report = verify_chain()
    assert not report.intact
    assert f"Event #{third.pk} (" in str(report.problems[0])
    assert f"does not follow the event before it (#{second.pk - 1})" in str(report.problems[0])
    assert report.problems[0].kind == "removed"


def test_an_anchor_reveals_that_the_newest_events_were_removed():
    _, _, third = _three_events()
    assert verify_chain(anchor=third.hash).intact
    _without_triggers("DELETE FROM audit_auditevent WHERE id = %s", [third.pk])
    report = verify_chain(anchor=third.hash)
    assert report.problems == [] and report.anchor_found is False and not report.intact


def test_verify_audit_command_reports_and_exits_non_zero_when_broken(capsys):
    _, second, third = _three_events()
    call_command("verify_audit")
    output = capsys.readouterr().out
    assert "intact: 3 events checked" in output and f"Head: {third.hash}" in output
    _without_triggers(
        "UPDATE audit_auditevent SET detail = %s WHERE id = %s", ['{"a":1}', second.pk]
    )
    call_command("verify_audit")  # by default it starts where the last check ended...
    with pytest.raises(CommandError, match="NOT intact"):
        call_command("verify_audit", "--full")  # ...the whole chain shows the change
    assert f"Event #{second.pk}" in capsys.readouterr().err


def _record_through_the_middleware(**headers: str) -> tuple[str, AuditEvent]:
    person = PersonFactory()

    def view(request):
        audit_record(action="person.viewed", obj=person)
        from django.http import HttpResponse

        return HttpResponse("ok")

    response = RequestIdMiddleware(view)(RequestFactory().get("/", **headers))
    return response["X-Request-ID"], AuditEvent.objects.order_by("pk").last()


def test_events_carry_the_request_id_the_portal_made_for_the_request():
    returned, event = _record_through_the_middleware()

    assert len(returned) == 32 and int(returned, 16) >= 0
    assert event.request_id == returned


def test_a_clients_request_id_is_kept_apart_from_the_portals_and_bounded():
    forged = "task:" + "f" * 70
    returned, event = _record_through_the_middleware(HTTP_X_REQUEST_ID=forged)

    assert returned != forged and len(returned) == 32
    assert event.request_id.startswith(returned)  # the portal's id, never the client's
    assert event.request_id == f"{returned} (client {forged[:CLIENT_ID_LENGTH]})"
    assert len(event.request_id) <= 80
    assert not AuditEvent.objects.filter(request_id__startswith="task:").exists()


def test_a_request_id_that_does_not_look_like_one_is_dropped():
    returned, event = _record_through_the_middleware(HTTP_X_REQUEST_ID="<script>")

    assert event.request_id == returned and "<script>" not in event.request_id


def test_events_written_by_a_task_carry_its_task_id():
    person = PersonFactory()
    _task_started(task_id="0f1e")
    try:
        event = audit_record(action="asset.registered", obj=person)
    finally:
        _task_finished()
    assert event.request_id == "task:0f1e"
    assert audit_record(action="later", obj=person).request_id == ""


def test_the_audit_admin_lists_events_but_offers_no_change(superuser_client):
    event = _three_events()[1]
    listing = superuser_client.get("/admin/audit/auditevent/")
    assert listing.status_code == 200
    assert b"person.updated" in listing.content
    page = superuser_client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert page.status_code == 200
    assert b"old@example.com" in page.content and b"new@example.com" in page.content
    assert b'name="_save"' not in page.content
    assert superuser_client.get("/admin/audit/auditevent/add/").status_code == 403
    assert superuser_client.post(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403
    superuser_client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"action": "x"})
    assert AuditEvent.objects.get(pk=event.pk).action == "person.updated"
