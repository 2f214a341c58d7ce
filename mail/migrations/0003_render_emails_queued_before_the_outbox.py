"""Emails still queued when the outbox replaced the former email tables get their bodies.

The former rows were rendered when sent, so ``0002`` moved the queued ones without a body. They
are rendered here by the portal's own email builders (live code, on purpose: the same words a
new email gets), after every migration those builders read; a row that cannot be rendered is
failed with the reason, never sent empty. It can be squashed once every deployment has passed
this release.
"""

from django.db import migrations, transaction


def _bodies(email):
    from consent.models import ConsentRecord, django_language
    from consent.services import _expiry_warning_context
    from mail.services import render_email
    from verification.models import VerificationSession
    from verification.services.invitations import _invitation_email_context

    if email.kind == "invitation":
        context = _invitation_email_context(VerificationSession.objects.get(pk=email.about_id))
        template = "verification/email/invitation"
    else:
        context = _expiry_warning_context(ConsentRecord.objects.get(pk=email.about_id))
        template = f"consent/email/{email.kind}"
    _, text, html = render_email(template, context, language=django_language(email.language))
    return text, html


def render_queued(apps, schema_editor):
    outbound = apps.get_model("mail", "OutboundEmail")
    for email in outbound.objects.filter(status="queued", body_text=""):
        try:
            with transaction.atomic():
                text, html = _bodies(email)
        except Exception as exc:  # noqa: BLE001 - a row that cannot be rendered is failed
            changes = {"status": "failed", "last_error": f"not rendered for the outbox: {exc}"}
        else:
            changes = {"body_text": text, "body_html": html}
        outbound.objects.filter(pk=email.pk).update(**changes)


class Migration(migrations.Migration):
    dependencies = [
        ("mail", "0002_emails_from_consent_and_assets"),
        # The builders are today's code: every migration of the models they read runs first.
        ("consent", "0016_consent_texts_frozen_in_database"),
        ("verification", "0003_invitation_and_session_order_indexes"),
        ("assets", "0012_asset_copy_withdrawal_order_indexes"),
    ]

    operations = [migrations.RunPython(render_queued, migrations.RunPython.noop)]
