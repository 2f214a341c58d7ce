"""The keyed audit chain against an insider who owns the audit table but not the chain key:
rewritten or re-hashed events, removed ones (anchors), inserted ones, rotated keys, and the
migration that keyed existing chains."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import importlib
import json

import pytest
from django.apps import apps
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection
from django.utils import timezone

from audit import verification
from audit.anchors import read_anchors, write_anchor
from audit.chain import canonical
from audit.models import GENESIS_HASH, AuditEvent
from audit.services import audit_record
from audit.tasks import anchor_audit_chain
from audit.verification import verify_chain
from tests.factories import PersonFactory

pytestmark = pytest.mark.django_db

KEY_1 = b"first-key-of-the-chain-0123456789abcdef"
KEY_2 = b"second-key-of-the-chain-0123456789abcdef"


def _events(count: int) -> list[AuditEvent]:
    person = PersonFactory()
    return [
        audit_record(action=f"person.step{i}", obj=person, person_id=person.pk, detail={"i": i})
        for i in range(count)
    ]


def _as_owner(statement: str, params: list[object]) -> None:
    """What the table's owner can do: switch the append-only trigger off and write."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(statement, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def _rehash_from(pk: int, digest) -> None:
    """Re-hash the chain from event ``pk`` on, as an insider without the key would."""
    previous = AuditEvent.objects.filter(pk__lt=pk).values_list("hash", flat=True).first()
    previous = previous or GENESIS_HASH
    for event in AuditEvent.objects.filter(pk__gte=pk).order_by("pk"):
        content = {**event.content(), "previous_hash": previous}
        previous = digest(canonical(content))
        _as_owner(
            "UPDATE audit_auditevent SET previous_hash = %s, hash = %s WHERE id = %s",
            [content["previous_hash"], previous, event.pk],
        )


@pytest.fixture(autouse=True)
def _postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the insider's tools here (DISABLE TRIGGER) are PostgreSQL's")


@pytest.mark.parametrize(
    "digest",
    [
        pytest.param(lambda data: hashlib.sha256(data).hexdigest(), id="plain-sha256"),
        pytest.param(
            lambda data: hmac.new(b"a-guessed-key", data, hashlib.sha256).hexdigest(),
            id="wrong-key",
        ),
    ],
)
def test_a_chain_rewritten_and_rehashed_without_the_key_is_caught_at_the_changed_event(
    digest, capsys
):
    events = _events(4)
    write_anchor()  # even an anchor of the old head does not help the insider
    _as_owner("UPDATE audit_auditevent SET action = %s WHERE id = %s", ["x", events[1].pk])
    _rehash_from(events[1].pk, digest)

    with pytest.raises(CommandError, match="NOT intact"):
        call_command("verify_audit", "--full", "--anchor", events[0].hash)
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith(f"Event #{events[1].pk} (") and "x) was changed" in first
    assert f"Event #{events[0].pk} " not in err  # the events before it are fine
    # The anchor of the old head names the anchored event as changed too.
    assert f"Event #{events[3].pk}" in err and "the anchor of" in err


def test_an_event_removed_after_an_anchor_is_caught_through_the_anchor_file(capsys):
    events = _events(3)
    anchor_audit_chain()
    (anchor,), unreadable = read_anchors()
    assert unreadable == [] and (anchor.last_id, anchor.count) == (events[2].pk, 3)
    assert anchor.hash == events[2].hash and anchor.key_id == "dev"
    call_command("verify_audit")  # intact

    _as_owner("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    assert verify_chain(full=True).intact  # a shorter chain is valid in itself...
    with pytest.raises(CommandError, match="NOT intact"):
        call_command("verify_audit")  # ...but not against the anchor
    err = capsys.readouterr().err
    assert f"Event #{events[2].pk} was removed: the anchor of {anchor.at}" in err


def test_by_default_verification_starts_where_the_last_check_ended(capsys):
    _events(3)
    write_anchor()
    write_anchor()  # beat, while the head did not move: the same anchor twice
    call_command("verify_audit")  # no check before: it walks everything
    assert "intact: 3 events checked" in capsys.readouterr().out
    later = _events(2)
    write_anchor()  # beat anchors the new head; nobody checked those events yet
    _as_owner("UPDATE audit_auditevent SET action = %s WHERE id = %s", ["x", later[0].pk])

    with pytest.raises(CommandError):
        call_command("verify_audit")  # from the verified head (#3), not beat's newest anchor
    err = capsys.readouterr().err
    assert err.startswith(f"Event #{later[0].pk} (") and "x) was changed" in err
    assert "3 events" not in err


def test_an_event_removed_before_the_last_check_shows_in_its_count_and_full_names_it(capsys):
    events = _events(3)
    call_command("verify_audit")
    later = _events(2)
    call_command("verify_audit")
    assert "intact: 2 events after the anchor of" in capsys.readouterr().out
    call_command("verify_audit", "--full")
    assert "intact: 5 events checked" in capsys.readouterr().out

    _as_owner("DELETE FROM audit_auditevent WHERE id = %s", [events[1].pk])
    with pytest.raises(CommandError):
        call_command("verify_audit")
    assert f"Up to event #{later[1].pk} the trail holds 4 events" in capsys.readouterr().err
    with pytest.raises(CommandError):
        call_command("verify_audit", "--full")
    err = capsys.readouterr().err
    assert f"Event #{events[2].pk} (" in err and f"before it (#{events[0].pk})" in err
    assert f"Event #{later[0].pk}" not in err


def test_an_event_slipped_in_between_two_is_named_as_inserted(capsys):
    first = _events(1)[0]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('audit_auditevent', 'id'), %s)", [first.pk + 10]
        )
    after = _events(1)[0]
    forged = {**first.content(), "action": "consent.approved", "previous_hash": first.hash}
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditevent (id, occurred_at, actor_label, action, object_type, "
            "object_id, object_repr, person_id, before, after, detail, request_id, "
            "previous_hash, hash, key_id) SELECT %s, occurred_at, actor_label, %s, object_type, "
            "object_id, object_repr, person_id, before, after, detail, request_id, %s, %s, "
            "key_id FROM audit_auditevent WHERE id = %s",
            [
                first.pk + 5,
                "consent.approved",
                first.hash,
                hashlib.sha256(canonical(forged)).hexdigest(),
                first.pk,
            ],
        )
    report = verify_chain()
    assert [(p.kind, p.event_id) for p in report.problems] == [("inserted", first.pk + 5)]
    assert f"(#{after.pk}) follows the one before it" in str(report.problems[0])


def test_a_chain_read_in_several_chunks_is_checked_across_their_edges(monkeypatch, capsys):
    """The walk reads the next chunk of events while it hashes one: each event is checked
    once, in order, and a change at a chunk's first event is named."""
    monkeypatch.setattr(verification, "_CHUNK", 2)
    events = _events(5)
    call_command("verify_audit", "--full")
    assert "intact: 5 events checked" in capsys.readouterr().out
    _as_owner("UPDATE audit_auditevent SET action = %s WHERE id = %s", ["x", events[2].pk])

    report = verify_chain(full=True)
    assert [(p.kind, p.event_id) for p in report.problems] == [("changed", events[2].pk)]
    assert (report.events, report.head_id, report.head) == (5, events[4].pk, events[4].hash)


def test_events_under_a_retired_key_still_verify_and_an_unknown_key_is_named(settings, capsys):
    settings.AUDIT_CHAIN_KEYS, settings.AUDIT_CHAIN_KEY_ID = {"k1": KEY_1}, "k1"
    old = _events(2)
    write_anchor()
    settings.AUDIT_CHAIN_KEYS, settings.AUDIT_CHAIN_KEY_ID = {"k1": KEY_1, "k2": KEY_2}, "k2"
    new = _events(2)
    assert [e.key_id for e in AuditEvent.objects.order_by("pk")] == ["k1", "k1", "k2", "k2"]
    call_command("verify_audit", "--full")
    assert "intact: 4 events checked" in capsys.readouterr().out

    settings.AUDIT_CHAIN_KEYS = {"k2": KEY_2}  # the retired key was dropped too early
    report = verify_chain()
    assert [(p.kind, p.event_id) for p in report.problems] == [
        ("key unknown", old[0].pk),
        ("key unknown", old[1].pk),
    ]
    assert "names the chain key 'k1', which this portal does not hold" in str(report.problems[0])
    assert new[0].previous_hash == old[1].hash


def test_the_anchor_is_mailed_when_an_address_is_set(settings):
    settings.AUDIT_ANCHOR_EMAIL = ["legal@example.com"]
    events = _events(2)
    anchor = write_anchor()
    assert anchor is not None
    (message,) = mail.outbox
    assert message.to == ["legal@example.com"]
    assert f"event #{events[1].pk}, 2 events" in message.subject
    assert json.loads(message.body.splitlines()[-1])["hash"] == events[1].hash
    assert settings.AUDIT_ANCHOR_PATH.read_text().count("\n") == 1  # and written to the file


def test_the_migration_rekeys_an_unkeyed_chain_keeping_every_row_and_the_old_head():
    """Events written before the chain was keyed (plain SHA-256, no key id) are re-hashed from
    the first under the current key; the old head becomes the first anchor."""
    person = PersonFactory()
    previous = GENESIS_HASH
    legacy = []
    for i in range(3):
        event = AuditEvent(
            occurred_at=timezone.now(),
            actor_label="system",
            action=f"legacy.{i}",
            object_type="consent.person",
            object_id=str(person.pk),
            detail={"i": i, "name": "Zoë"},
            previous_hash=previous,
        )
        content = {k: v for k, v in event.content().items() if k != "key_id"}
        event.hash = previous = hashlib.sha256(canonical(content)).hexdigest()
        legacy.append(event)
    AuditEvent.objects.bulk_create(legacy)
    assert not verify_chain().intact  # unkeyed: nothing verifies

    migration = importlib.import_module("audit.migrations.0003_keyed_chain")
    with connection.schema_editor() as editor:
        migration.rekey(apps, editor)

    rows = list(AuditEvent.objects.order_by("pk").values_list("action", "detail", "key_id"))
    assert rows == [(f"legacy.{i}", {"i": i, "name": "Zoë"}, "dev") for i in range(3)]
    (anchor,), _ = read_anchors()
    assert anchor.legacy_hash == legacy[-1].hash and anchor.count == 3
    assert verify_chain(anchors=[anchor]).intact
    audit_record(action="after.migration", obj=person)  # the chain goes on under the key
    assert verify_chain(anchors=read_anchors()[0], full=False).events == 1
    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent")  # the triggers are back


def test_beat_anchors_the_chain_at_least_daily(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["anchor-audit-chain"]
    assert entry["task"] == anchor_audit_chain.name and entry["schedule"] <= 24 * 3600


def test_an_event_on_a_whole_second_verifies(capsys):
    """isoformat() leaves out zero microseconds; the check reads times as it writes them."""
    first = _events(1)[0]
    event = AuditEvent(
        occurred_at=datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC),
        actor_label="system",
        action="on.the.second",
        previous_hash=first.hash,
        key_id="dev",
        detail={"text": "Zoë 张"},
    )
    event.hash = event.compute_hash()
    event.save()
    assert event.content()["occurred_at"] == "2026-01-01T12:00:00+00:00"
    report = verify_chain()
    assert report.intact and report.events == 2, report.problems
