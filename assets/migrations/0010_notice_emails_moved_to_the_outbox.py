"""Producer notice emails are rows of the outbox now (``mail``, which copied them)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("assets", "0009_group_upstream_session_in_verification"),
        ("mail", "0002_emails_from_consent_and_assets"),
    ]

    operations = [migrations.DeleteModel(name="NoticeEmail")]
