"""Invitations and upstream sessions become separate rows; emails are recorded.

``VerificationSession`` keeps the invitation (a short code and an expiry added; statuses renamed:
link_issued → opened, completed → verified). Its upstream fields (BytedToken, H5 link, callback
parameters...) move to one ``UpstreamVerification`` row per session. Existing rows are
development data; they are carried over so that ``migrate`` keeps working on a demo database.
"""

import datetime

import consent.models
import verification.models
import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models

INVITATION_TTL = datetime.timedelta(days=7)
STATUS_MAP = {"link_issued": "opened", "completed": "verified"}
FINAL_STATUSES = {"verified", "failed", "expired", "cancelled"}


def split_invitations_from_upstream_sessions(apps, schema_editor):
    VerificationSession = apps.get_model("consent", "VerificationSession")
    UpstreamVerification = apps.get_model("consent", "UpstreamVerification")
    AssetGroup = apps.get_model("assets", "AssetGroup")
    for invitation in VerificationSession.objects.order_by("pk"):
        status = STATUS_MAP.get(invitation.status, invitation.status)
        ended_at = (invitation.completed_at or invitation.updated_at) if status in FINAL_STATUSES else None
        group = AssetGroup.objects.filter(verification_session=invitation).first()
        invitation.code = verification.models.new_invitation_code()
        invitation.expires_at = invitation.created_at + INVITATION_TTL
        invitation.status = status
        invitation.verified_at = ended_at if status == "verified" else None
        invitation.ended_at = ended_at
        invitation.save()
        if not invitation.byted_token and group is None:
            continue  # never reached the upstream
        if group is not None:
            upstream_status = "confirmed"
        elif status in ("invited", "opened"):
            upstream_status = "created"
        else:
            upstream_status = status if status in ("failed", "expired") else "expired"
        UpstreamVerification.objects.create(
            invitation=invitation,
            purpose="phone",
            status=upstream_status,
            byted_token=invitation.byted_token,
            h5_link=invitation.h5_link,
            h5_link_expires_at=invitation.h5_link_expires_at,
            token_expires_at=invitation.token_expires_at,
            api_key_fingerprint=invitation.api_key_fingerprint,
            attempts=invitation.attempts,
            last_error=invitation.last_error,
            group_id=group.group_id if group is not None else "",
            callback_params=invitation.callback_params,
            confirmed_at=ended_at if group is not None else None,
            ended_at=ended_at if upstream_status not in ("created",) else None,
            next_poll_at=invitation.updated_at if upstream_status == "created" else None,
        )



class Migration(migrations.Migration):

    dependencies = [
        ('consent', '0004_consent_document_validator'),
        ('assets', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='OutboundEmail',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('to', models.EmailField(max_length=254)),
                ('template', models.CharField(max_length=50)),
                ('language', models.CharField(choices=[('en', 'English'), ('zh', 'Chinese (Simplified)'), ('zh-Hant', 'Chinese (Traditional)')], max_length=8)),
                ('subject', models.CharField(max_length=200)),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('sent', 'Sent'), ('failed', 'Failed')], default='queued', max_length=10)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('last_error', models.TextField(blank=True)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'email',
                'ordering': ['-created_at', '-pk'],
            },
        ),
        migrations.CreateModel(
            name='UpstreamVerification',
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
            ],
            options={
                'verbose_name': 'upstream verification session',
                'ordering': ['-created_at', '-pk'],
            },
        ),
        migrations.AlterModelOptions(
            name='verificationsession',
            options={'ordering': ['-created_at', '-pk'], 'verbose_name': 'invitation'},
        ),
        migrations.RemoveConstraint(
            model_name='verificationsession',
            name='verification_status_valid',
        ),
        migrations.RemoveConstraint(
            model_name='verificationsession',
            name='one_open_verification_per_person',
        ),
        migrations.AddField(
            model_name='verificationsession',
            name='code',
            field=models.CharField(default=verification.models.new_invitation_code, editable=False, help_text='Short code the person can type at /verify/ when they cannot scan or click.', max_length=8),
        ),
        migrations.AddField(
            model_name='verificationsession',
            name='ended_at',
            field=models.DateTimeField(blank=True, help_text='When it became verified, failed, expired or cancelled.', null=True),
        ),
        migrations.AddField(
            model_name='verificationsession',
            name='ended_by',
            field=models.ForeignKey(blank=True, help_text='Who cancelled it (or reissued it), when a person did.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='verificationsession',
            name='expires_at',
            field=models.DateTimeField(default=verification.models.invitation_expiry),
        ),
        migrations.AddField(
            model_name='verificationsession',
            name='opened_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='verificationsession',
            name='replaced_by',
            field=models.OneToOneField(blank=True, help_text='The invitation issued in its place.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='replaces', to='consent.verificationsession'),
        ),
        migrations.AddField(
            model_name='verificationsession',
            name='verified_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='outboundemail',
            name='created_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='outboundemail',
            name='invitation',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='emails', to='consent.verificationsession'),
        ),
        migrations.AddField(
            model_name='upstreamverification',
            name='created_by',
            field=models.ForeignKey(blank=True, help_text='Staff who showed the desk QR (empty when the person started it).', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='upstreamverification',
            name='invitation',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='upstream_verifications', to='consent.verificationsession'),
        ),
        migrations.AlterField(
            model_name='verificationsession',
            name='consent',
            field=models.ForeignKey(blank=True, help_text='The consent record this verification backs.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='verification_sessions', to='consent.consentrecord'),
        ),
        migrations.AlterField(
            model_name='verificationsession',
            name='status',
            field=models.CharField(choices=[('invited', 'Invited'), ('opened', 'Opened'), ('verified', 'Verified'), ('failed', 'Failed (attempts exhausted)'), ('expired', 'Expired'), ('cancelled', 'Cancelled')], default='invited', max_length=20),
        ),
        migrations.RunPython(split_invitations_from_upstream_sessions, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name='verificationsession',
            name='api_key_fingerprint',
        ),
        migrations.RemoveField(
            model_name='verificationsession',
            name='attempts',
        ),
        migrations.RemoveField(
            model_name='verificationsession',
            name='byted_token',
        ),
        migrations.RemoveField(
            model_name='verificationsession',
            name='callback_params',
        ),
        migrations.RemoveField(
            model_name='verificationsession',
            name='completed_at',
        ),
        migrations.RemoveField(
            model_name='verificationsession',
            name='h5_link',
        ),
        migrations.RemoveField(
            model_name='verificationsession',
            name='h5_link_expires_at',
        ),
        migrations.RemoveField(
            model_name='verificationsession',
            name='last_error',
        ),
        migrations.RemoveField(
            model_name='verificationsession',
            name='token_expires_at',
        ),
        migrations.AddConstraint(
            model_name='verificationsession',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['invited', 'opened', 'verified', 'failed', 'expired', 'cancelled'])), name='verification_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='verificationsession',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['invited', 'opened'])), fields=('person',), name='one_open_verification_per_person', violation_error_message='This person already has an open invitation.'),
        ),
        migrations.AddConstraint(
            model_name='verificationsession',
            constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['invited', 'opened'])), fields=('code',), name='verification_code_unique_while_open'),
        ),
        migrations.AddConstraint(
            model_name='verificationsession',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'verified'), _negated=True), ('verified_at__isnull', False), _connector='OR'), name='verification_verified_has_time'),
        ),
        migrations.AddConstraint(
            model_name='outboundemail',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['queued', 'sent', 'failed'])), name='email_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='outboundemail',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'sent'), _negated=True), ('sent_at__isnull', False), _connector='OR'), name='email_sent_has_time'),
        ),
        migrations.AddConstraint(
            model_name='upstreamverification',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['created', 'callback_received', 'confirmed', 'failed', 'expired'])), name='upstream_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='upstreamverification',
            constraint=models.CheckConstraint(condition=models.Q(('purpose__in', ['phone', 'desk'])), name='upstream_purpose_valid'),
        ),
        migrations.AddConstraint(
            model_name='upstreamverification',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'confirmed'), _negated=True), models.Q(('group_id', ''), _negated=True), _connector='OR'), name='upstream_confirmed_has_group'),
        ),
        migrations.AddConstraint(
            model_name='upstreamverification',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status__in', ['created', 'callback_received']), _negated=True), ('byted_token__isnull', False), _connector='OR'), name='upstream_pending_has_token'),
        ),
    ]
