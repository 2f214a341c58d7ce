"""A database populated before the structure change (issue 12) migrates with every row kept.

The invitations and their upstream sessions moved from ``consent`` to ``verification`` (tables
renamed), the two email tables into the outbox (``mail``). A throwaway PostgreSQL database is
migrated to the state before the move and filled through its historical models
(``migrate_previous``: invitations, sessions and emails in every state, a verified group, a
group holding a permission, audit events); then ``migrate`` runs, and the rows, their ids, links
and statuses, the group's permission and the audit trail are compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import psycopg
import pytest
from django.conf import settings

pytestmark = pytest.mark.slow


@pytest.fixture
def throwaway_database():
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("migrates a PostgreSQL database")
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(
        host=database["HOST"], port=database["PORT"] or 5432, user=database["USER"],
        password=database["PASSWORD"], dbname="postgres", autocommit=True,
    )  # fmt: skip
    admin.execute(f'CREATE DATABASE "{name}"')
    user = database["USER"]
    yield f"postgres://{user}@{database['HOST']}:{database['PORT'] or 5432}/{name}"
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


def _run(url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "true"}
    done = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, *args], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_database_of_the_previous_version_migrates_with_every_row_kept(throwaway_database):
    before = json.loads(_run(throwaway_database, "-m", "tests.portal.migrate_previous", "before"))

    _run(throwaway_database, "manage.py", "migrate", "--no-input")
    after = json.loads(_run(throwaway_database, "-m", "tests.portal.migrate_previous", "after"))

    assert after["invitations"] == before["invitations"]
    assert after["sessions"] == before["sessions"]
    assert after["emails"] == before["emails"]
    assert after["groups"] == ["confirmed"] * 6
    assert after["permission"] == ["verification", "view_verificationsession"]
    assert after["events"] == 3 and after["intact"]
