"""Every email row of the two former models moves into the outbox.

``consent.OutboundEmail`` rows keep their ids (audit events name them); producer notice emails
(``assets.NoticeEmail``) get new ids, their notice as what they are about. The former rows kept no
body (it was rendered when sending): sent and failed ones keep a note instead; those still queued
are left without a body here and rendered by ``0004_render_emails_queued_before_the_outbox``,
once every table their templates read exists.
"""

from django.db import migrations

NO_BODY = "(sent before the outbox kept the bodies of emails)"


def _content_type(apps, app_label, model):
    content_type = apps.get_model("contenttypes", "ContentType")
    return content_type.objects.get_or_create(app_label=app_label, model=model)[0]


def move_emails(apps, schema_editor):
    # The model's content type (and so its permissions, which groups hold) moves with it.
    content_type = apps.get_model("contenttypes", "ContentType")
    if not content_type.objects.filter(app_label="mail", model="outboundemail").exists():
        content_type.objects.filter(app_label="consent", model="outboundemail").update(
            app_label="mail"
        )
    outbound = apps.get_model("mail", "OutboundEmail")
    invitation_type = _content_type(apps, "verification", "verificationsession")
    consent_type = _content_type(apps, "consent", "consentrecord")
    notice_type = _content_type(apps, "assets", "producernotice")
    moved = []
    # The former model's state still points at the invitations' former table: read ids only.
    invitation_people = dict(
        apps.get_model("verification", "VerificationSession").objects.values_list("pk", "person_id")
    )
    consent_people = dict(
        apps.get_model("consent", "ConsentRecord").objects.values_list("pk", "person_id")
    )
    for row in apps.get_model("consent", "OutboundEmail").objects.all():
        text = "" if row.status == "queued" else NO_BODY
        if row.invitation_id:
            about_id, person_id = row.invitation_id, invitation_people[row.invitation_id]
        else:
            about_id, person_id = row.consent_id, consent_people[row.consent_id]
        moved.append(
            outbound(
                id=row.id,
                kind=row.template,
                to=row.to,
                language=row.language,
                subject=row.subject,
                body_text=text,
                about_type=invitation_type if row.invitation_id else consent_type,
                about_id=about_id,
                person_id=person_id,
                status=row.status,
                attempts=row.attempts,
                last_error=row.last_error,
                next_attempt_at=row.created_at,
                sent_at=row.sent_at,
                created_by_id=row.created_by_id,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
        )
    outbound.objects.bulk_create(moved)
    notices = [
        outbound(
            kind="references_withdrawn",
            to=row.to,
            subject=row.subject,
            body_text=row.body,
            about_type=notice_type,
            about_id=row.notice_id,
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            next_attempt_at=row.created_at,
            sent_at=row.sent_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in apps.get_model("assets", "NoticeEmail").objects.all()
    ]
    if moved and schema_editor.connection.vendor == "postgresql":
        # Rows inserted with their ids: the sequence goes past them before new rows are made.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('mail_outboundemail', 'id'), "
                "(SELECT MAX(id) FROM mail_outboundemail))"
            )
    outbound.objects.bulk_create(notices)
    # auto_now_add/auto_now overwrote the times on insert: put the former ones back.
    for row in [*moved, *notices]:
        outbound.objects.filter(pk=row.pk).update(
            created_at=row.created_at, updated_at=row.updated_at
        )


class Migration(migrations.Migration):
    dependencies = [
        ("mail", "0001_initial"),
        ("consent", "0008_person_export_evidence_permission"),
        ("assets", "0009_group_upstream_session_in_verification"),
        ("verification", "0001_initial"),
    ]

    operations = [migrations.RunPython(move_emails, migrations.RunPython.noop)]
