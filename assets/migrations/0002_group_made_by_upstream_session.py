"""A verified group points at the upstream session that made it, no longer at the invitation.

An invitation may hold several upstream sessions (retries); exactly one of them gave the GroupId.
consent 0002 made a confirmed ``UpstreamVerification`` for every invitation that had a group.
"""

import django.db.models.deletion
from django.db import migrations, models


def link_groups_to_upstream_sessions(apps, schema_editor):
    AssetGroup = apps.get_model("assets", "AssetGroup")
    UpstreamVerification = apps.get_model("consent", "UpstreamVerification")
    for group in AssetGroup.objects.filter(verification_session__isnull=False):
        group.upstream_verification = UpstreamVerification.objects.filter(
            invitation_id=group.verification_session_id, group_id=group.group_id
        ).first()
        group.save(update_fields=["upstream_verification"])


class Migration(migrations.Migration):

    dependencies = [
        ('assets', '0001_initial'),
        ('consent', '0005_invitations_and_upstream_sessions'),
    ]

    operations = [
        migrations.AddField(
            model_name='assetgroup',
            name='upstream_verification',
            field=models.OneToOneField(blank=True, help_text='The upstream verification session that created this group.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='asset_group', to='consent.upstreamverification'),
        ),
        migrations.RunPython(link_groups_to_upstream_sessions, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name='assetgroup',
            name='verification_session',
        ),
    ]
