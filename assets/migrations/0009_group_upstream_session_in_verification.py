"""A group's upstream session now lives in the verification app, under a name that says what it
is: the column is renamed (``upstream_verification_id`` → ``upstream_session_id``), and its
foreign key already points at the renamed table."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("assets", "0008_asset_file_permission"),
        ("verification", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="assetgroup",
                    name="upstream_verification",
                    field=models.OneToOneField(
                        blank=True,
                        help_text="The upstream verification session that created this group.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="asset_group",
                        to="verification.upstreamsession",
                    ),
                ),
            ],
        ),
        migrations.RenameField(
            model_name="assetgroup", old_name="upstream_verification", new_name="upstream_session"
        ),
    ]
