"""The database holds consent records to their lifecycle (issue 13): raw SQL can neither move a
record off ``CONSENT_TRANSITIONS``, nor rewrite its review or revocation, nor delete it once it
was in force, on PostgreSQL and on SQLite; the services' own moves still pass."""

from __future__ import annotations

import datetime
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from consent import services
from consent.models import ConsentRecord, ConsentStatus
from tests.consent.consent_attacks import ALLOWED, STATUSES, attacks, outcome
from tests.factories import ConsentRecordFactory, UserFactory

ROOT = Path(settings.BASE_DIR)
S = ConsentStatus


def _migration():
    """The migration of the triggers, whatever number it has."""
    (path,) = (ROOT / "consent" / "migrations").glob("*_consent_lifecycle_in_database.py")
    return importlib.import_module(f"consent.migrations.{path.stem}")


def test_the_migration_enforces_the_lifecycle_the_services_follow():
    migration = _migration()
    assert {
        action: (set(starts), target) for action, (starts, target) in migration.TRANSITIONS.items()
    } == {
        action: ({str(s) for s in starts}, str(target))
        for action, (starts, target) in services.CONSENT_TRANSITIONS.items()
    }
    assert migration.STATUSES == STATUSES == list(S.values)
    assert {
        ConsentRecord._meta.get_field(name).attname: list(actions)
        for name, actions in ConsentRecord.LIFECYCLE_WRITTEN_BY.items()
    } == migration.WRITTEN_BY
    actions = {a for written_by in migration.WRITTEN_BY.values() for a in written_by}
    assert actions <= set(services.CONSENT_TRANSITIONS)


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(attacks()))
def test_postgresql_refuses_each_attack_and_allows_the_lifecycle(name):
    attack = attacks()[name]
    result = outcome(attack)
    if attack.refused_with is None:
        assert result == ALLOWED
    else:
        assert attack.refused_with in result


@pytest.mark.django_db
def test_the_issues_three_updates_leave_the_approved_record_as_it_was():
    record = ConsentRecordFactory(complete=True, approved=True)
    statements = [
        "UPDATE consent_consentrecord SET status = 'draft' WHERE id = %s",
        "UPDATE consent_consentrecord SET territory = 'Worldwide incl. Mars', "
        "allows_model_training = TRUE, expires_on = NULL WHERE id = %s",
        "UPDATE consent_consentuse SET description = 'Anything at all' WHERE consent_id = %s",
        "UPDATE consent_consentrecord SET status = 'approved' WHERE id = %s",
    ]
    refused = 0
    for statement in statements:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement, [record.pk])
        except DatabaseError:
            refused += 1
    stored = ConsentRecord.objects.get(pk=record.pk)
    assert refused == 3  # the last UPDATE changes nothing: the record is still approved
    assert (stored.status, stored.territory) == (S.APPROVED, "Worldwide")
    assert not stored.allows_model_training and stored.expires_on == record.expires_on
    assert "Anything at all" not in stored.uses.get().description


@pytest.mark.slow
def test_sqlite_refuses_the_same_attacks(tmp_path):
    """A fresh SQLite database, migrated, attacked in another interpreter."""
    run = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "tests.consent.consent_attacks", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    outcomes = json.loads(run.stdout.splitlines()[-1])
    assert set(outcomes) == set(attacks())
    wrong = {
        name: result
        for name, result in outcomes.items()
        if (attacks()[name].refused_with or ALLOWED) not in result
    }
    assert wrong == {}


@pytest.mark.django_db
def test_every_move_of_the_services_passes_the_database(django_capture_on_commit_callbacks):
    onboarding, legal = UserFactory(username="onboarding"), UserFactory(username="legal")
    today = timezone.localdate()
    first = ConsentRecordFactory(complete=True, expires_on=today + datetime.timedelta(days=10))
    services.consent_submit(record=first, actor=onboarding)
    services.consent_approve(record=first, actor=legal, note="Fine.")
    assert services.consent_warn_expiring() == [first.pk]
    version = services.consent_new_version(record=first, actor=onboarding)
    version.signed_document = ConsentRecordFactory.build(with_document=True).signed_document
    version.save()
    services.consent_submit(record=version, actor=onboarding)
    services.consent_approve(record=version, actor=legal)
    services.consent_revoke(record=version, actor=legal, channel="email", reason="By email.")
    refused = ConsentRecordFactory(complete=True)
    services.consent_submit(record=refused, actor=onboarding)
    services.consent_reject(record=refused, actor=legal, reason="Unsigned.")
    ended = ConsentRecordFactory(
        complete=True,
        approved=True,
        starts_on=today - datetime.timedelta(days=30),
        expires_on=today - datetime.timedelta(days=1),
    )
    assert services.consent_expire_due() == [ended.pk]

    statuses = {
        record.pk: record.status
        for record in ConsentRecord.objects.filter(
            pk__in=[first.pk, version.pk, refused.pk, ended.pk]
        )
    }
    assert statuses == {
        first.pk: S.SUPERSEDED,
        version.pk: S.REVOKED,
        refused.pk: S.REJECTED,
        ended.pk: S.EXPIRED,
    }
    assert AuditEvent.objects.filter(action="consent.supersede").count() == 1
