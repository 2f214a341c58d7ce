"""The verification app takes over the invitations and their upstream sessions from ``consent``.

The tables are renamed, never copied: every row, id and foreign key stays as it was
(``consent_verificationsession`` → ``verification_verificationsession``,
``consent_upstreamverification`` → ``verification_upstreamsession``). Their content types move
too, so the permissions groups hold (and so the roles) keep pointing at the same rows.
"""

import django.db.models.deletion
import uuid
import verification.models
from django.conf import settings
from django.db import migrations, models


MOVES = [
    (("consent", "verificationsession"), ("verification", "verificationsession")),
    (("consent", "upstreamverification"), ("verification", "upstreamsession")),
]


def _move(apps, pairs):
    content_type = apps.get_model("contenttypes", "ContentType")
    permission = apps.get_model("auth", "Permission")
    for (old_app, old_model), (new_app, new_model) in pairs:
        moved = content_type.objects.filter(app_label=old_app, model=old_model)
        for row in moved:
            for perm in permission.objects.filter(content_type=row):
                perm.codename = perm.codename.replace(old_model, new_model)
                perm.save(update_fields=["codename"])
        moved.update(app_label=new_app, model=new_model)


def move_content_types(apps, schema_editor):
    _move(apps, MOVES)


def move_content_types_back(apps, schema_editor):
    _move(apps, [(new, old) for old, new in MOVES])


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('consent', '0008_person_export_evidence_permission'),
        # Every earlier migration that points at the tables renamed here runs first.
        ('assets', '0008_asset_file_permission'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('auth', '0012_alter_user_first_name_max_length'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'ALTER TABLE consent_verificationsession RENAME TO verification_verificationsession',
                    'ALTER TABLE verification_verificationsession RENAME TO consent_verificationsession',
                ),
                migrations.RunSQL(
                    'ALTER TABLE consent_upstreamverification RENAME TO verification_upstreamsession',
                    'ALTER TABLE verification_upstreamsession RENAME TO consent_upstreamverification',
                ),
            ],
            state_operations=[
        migrations.CreateModel(
            name='VerificationSession',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('invitation_token', models.CharField(default=verification.models.new_invitation_token, editable=False, max_length=64, unique=True)),
                ('code', models.CharField(default=verification.models.new_invitation_code, editable=False, help_text='Short code the person can type at /verify/ when they cannot scan or click.', max_length=8)),
                ('status', models.CharField(choices=[('invited', 'Invited'), ('opened', 'Opened'), ('verified', 'Verified'), ('failed', 'Failed (attempts exhausted)'), ('expired', 'Expired'), ('cancelled', 'Cancelled')], default='invited', max_length=20)),
                ('expires_at', models.DateTimeField(default=verification.models.invitation_expiry)),
                ('opened_at', models.DateTimeField(blank=True, null=True)),
                ('verified_at', models.DateTimeField(blank=True, null=True)),
                ('ended_at', models.DateTimeField(blank=True, help_text='When it became verified, failed, expired or cancelled.', null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('consent', models.ForeignKey(blank=True, help_text='The consent record this verification backs.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='verification_sessions', to='consent.consentrecord')),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('ended_by', models.ForeignKey(blank=True, help_text='Who cancelled it (or reissued it), when a person did.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('person', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='verification_sessions', to='consent.person')),
                ('replaced_by', models.OneToOneField(blank=True, help_text='The invitation issued in its place.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='replaces', to='verification.verificationsession')),
            ],
            options={
                'verbose_name': 'invitation',
                'ordering': ['-created_at', '-pk'],
            },
        ),
        migrations.CreateModel(
            name='UpstreamSession',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('public_id', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('purpose', models.CharField(choices=[('phone', "Invitation link on the person's phone"), ('desk', 'QR code shown by staff at the desk')], max_length=10)),
                ('status', models.CharField(choices=[('created', 'Created'), ('callback_received', 'Callback received'), ('confirmed', 'Confirmed'), ('failed', 'Failed'), ('expired', 'Expired')], default='created', max_length=20)),
                ('language', models.CharField(choices=[('en', 'English'), ('zh', 'Chinese (Simplified)'), ('zh-Hant', 'Chinese (Traditional)')], default='en', help_text='H5 lng.', max_length=8)),
                ('byted_token', models.CharField(blank=True, max_length=64, null=True, unique=True, verbose_name='BytedToken')),
                ('h5_link', models.URLField(blank=True, max_length=2000, verbose_name='H5 link')),
                ('h5_link_expires_at', models.DateTimeField(blank=True, null=True)),
                ('token_expires_at', models.DateTimeField(blank=True, null=True)),
                ('api_key_fingerprint', models.CharField(blank=True, max_length=32)),
                ('attempts', models.PositiveIntegerField(default=0, help_text='GetVisualValidateResult calls made to confirm it.')),
                ('next_poll_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                ('last_polled_at', models.DateTimeField(blank=True, null=True)),
                ('last_error_code', models.CharField(blank=True, max_length=100)),
                ('last_error', models.TextField(blank=True, help_text="The upstream's own words.")),
                ('last_error_explanation', models.TextField(blank=True, help_text='What it means, what to do.')),
                ('group_id', models.CharField(blank=True, max_length=64, verbose_name='GroupId')),
                ('callback_params', models.JSONField(blank=True, default=dict)),
                ('callback_received_at', models.DateTimeField(blank=True, null=True)),
                ('confirmed_at', models.DateTimeField(blank=True, null=True)),
                ('ended_at', models.DateTimeField(blank=True, help_text='When it became confirmed, failed or expired.', null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('created_by', models.ForeignKey(blank=True, help_text='Staff who showed the desk QR (empty when the person started it).', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('invitation', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='upstream_sessions', to='verification.verificationsession')),
            ],
            options={
                'verbose_name': 'upstream session',
                'ordering': ['-created_at', '-pk'],
            },
        ),
        migrations.AddConstraint(
            model_name='verificationsession',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['invited', 'opened', 'verified', 'failed', 'expired', 'cancelled'])), name='verification_status_valid', violation_error_message='This is not a status a verification session can have.'),
        ),
        migrations.AddConstraint(
            model_name='verificationsession',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['invited', 'opened'])), fields=('person',), name='one_open_verification_per_person', violation_error_code='unique', violation_error_message='This person already has an open invitation: complete or cancel it first.'),
        ),
        migrations.AddConstraint(
            model_name='verificationsession',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['invited', 'opened'])), fields=('code',), name='verification_code_unique_while_open', violation_error_message='Another open invitation has this code.'),
        ),
        migrations.AddConstraint(
            model_name='verificationsession',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'verified'), _negated=True), ('verified_at__isnull', False), _connector='OR'), name='verification_verified_has_time', violation_error_message='A verified invitation needs the time it was verified.'),
        ),
        migrations.AddConstraint(
            model_name='upstreamsession',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['created', 'callback_received', 'confirmed', 'failed', 'expired'])), name='upstream_status_valid', violation_error_message='This is not a status an upstream session can have.'),
        ),
        migrations.AddConstraint(
            model_name='upstreamsession',
            constraint=models.CheckConstraint(condition=models.Q(('purpose__in', ['phone', 'desk'])), name='upstream_purpose_valid', violation_error_message='An upstream session is started from the phone or at the desk.'),
        ),
        migrations.AddConstraint(
            model_name='upstreamsession',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'confirmed'), _negated=True), models.Q(('group_id', ''), _negated=True), _connector='OR'), name='upstream_confirmed_has_group', violation_error_message='A confirmed upstream session needs the GroupId it produced.'),
        ),
        migrations.AddConstraint(
            model_name='upstreamsession',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status__in', ['created', 'callback_received']), _negated=True), ('byted_token__isnull', False), _connector='OR'), name='upstream_pending_has_token', violation_error_message='An upstream session still waiting needs its BytedToken.'),
        ),
            ],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
