"""Invitations and upstream sessions belong to the verification app now (their tables were
renamed by its first migration), and emails to the outbox (``mail``, which copied their rows):
they leave consent's state, and its email table is dropped."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0008_person_export_evidence_permission"),
        ("mail", "0002_emails_from_consent_and_assets"),
        ("assets", "0009_group_upstream_session_in_verification"),
    ]

    operations = [
        migrations.DeleteModel(name="OutboundEmail"),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="UpstreamVerification"),
                migrations.DeleteModel(name="VerificationSession"),
            ],
        ),
    ]
