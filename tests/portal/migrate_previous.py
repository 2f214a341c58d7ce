"""Run in a process of its own against a throwaway database (``DATABASE_URL``):

- ``python -m tests.portal.migrate_previous before``: migrates to the state before the structure
  change (issue 12), fills it through that state's historical models and prints its rows as JSON;
- ``python -m tests.portal.migrate_previous after``: prints the same rows as they are now.

``test_migrate_structure`` runs ``migrate`` between the two and compares.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import django

MOVED_APPS = {"consent", "assets", "verification", "mail"}
BEFORE = [
    ("consent", "0008_person_export_evidence_permission"),
    ("assets", "0008_asset_file_permission"),
]


def before() -> dict[str, Any]:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    from audit.services import audit_record

    executor = MigrationExecutor(connection)
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] not in MOVED_APPS]
    executor.migrate(BEFORE + others)
    apps = MigrationExecutor(connection).loader.project_state(BEFORE + others).apps
    now = timezone.now()
    user = apps.get_model("auth", "User").objects.create(username="onboarding")
    group = apps.get_model("auth", "Group").objects.create(name="Onboarding")
    content_type, _ = apps.get_model("contenttypes", "ContentType").objects.get_or_create(
        app_label="consent", model="verificationsession"
    )
    permission = apps.get_model("auth", "Permission").objects.create(
        content_type=content_type, codename="view_verificationsession", name="Can view invitation"
    )
    group.permissions.add(permission)
    rows: dict[str, dict[str, list[Any]]] = {"invitations": {}, "sessions": {}, "emails": {}}
    statuses = ["invited", "opened", "verified", "failed", "expired", "cancelled"]
    for number, status in enumerate(statuses):
        person = apps.get_model("consent", "Person").objects.create(
            legal_name=f"Person {number}", email=f"p{number}@talent.test"
        )
        consent = apps.get_model("consent", "ConsentRecord").objects.create(
            person=person,
            consent_text_version="1",
            intended_uses="Promotional video.",
            starts_on=now.date(),
            capture_method="e_signature",
        )
        invitation = apps.get_model("consent", "VerificationSession").objects.create(
            person=person,
            consent=consent,
            status=status,
            invitation_token=f"token-{number}",
            code=f"CODE{number:04d}",
            expires_at=now,
            verified_at=now if status == "verified" else None,
            created_by=user,
        )
        rows["invitations"][str(invitation.pk)] = [status, person.pk]
        for upstream_status in ["created", "callback_received", "confirmed", "failed", "expired"]:
            session = apps.get_model("consent", "UpstreamVerification").objects.create(
                invitation=invitation,
                purpose="phone",
                status=upstream_status,
                byted_token=f"bt-{number}-{upstream_status}",
                group_id=f"group-{number}" if upstream_status == "confirmed" else "",
            )
            rows["sessions"][str(session.pk)] = [upstream_status, invitation.pk]
            if upstream_status == "confirmed":
                apps.get_model("assets", "AssetGroup").objects.create(
                    group_id=f"group-{number}", person=person, upstream_verification=session
                )
        for email_status in ["sent", "failed", "queued"]:
            email = apps.get_model("consent", "OutboundEmail").objects.create(
                invitation=invitation,
                to=person.email,
                template="invitation",
                language="en",
                subject="You are invited",
                status=email_status,
                sent_at=now if email_status == "sent" else None,
            )
            rows["emails"][str(email.pk)] = [email_status, person.pk]
    for number in range(3):
        audit_record(action="test.before_the_move", obj=None, detail={"n": number})
    return rows


def after() -> dict[str, Any]:
    from django.contrib.auth.models import Group

    from assets.models import AssetGroup
    from audit.models import AuditEvent
    from audit.verification import verify_chain
    from mail.models import OutboundEmail
    from verification.models import UpstreamSession, VerificationSession

    held = Group.objects.get(name="Onboarding").permissions.get()
    return {
        "invitations": {
            str(row.pk): [row.status, row.person_id] for row in VerificationSession.objects.all()
        },
        "sessions": {
            str(row.pk): [row.status, row.invitation_id] for row in UpstreamSession.objects.all()
        },
        "emails": {
            str(row.pk): [row.status, row.about.person_id] for row in OutboundEmail.objects.all()
        },
        "groups": [group.upstream_session.status for group in AssetGroup.objects.all()],
        "permission": [held.content_type.app_label, held.codename],
        "events": AuditEvent.objects.count(),
        "intact": verify_chain().intact,
    }


if __name__ == "__main__":
    django.setup()
    print(json.dumps({"before": before, "after": after}[sys.argv[1]]()))
