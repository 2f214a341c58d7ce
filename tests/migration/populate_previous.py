"""Run by the previous release's code (``manage.py shell < this``): rows in every state of the
models the structure change moves, beside what ``seed_demo`` made."""

from django.utils import timezone

from assets.models import NoticeEmail
from consent.models import OutboundEmail, UpstreamVerification, VerificationSession
from tests.factories import (
    ConsentRecordFactory,
    OutboundEmailFactory,
    ProducerNoticeFactory,
    UpstreamVerificationFactory,
    VerificationSessionFactory,
)

now = timezone.now()
for status in VerificationSession.Status.values:
    consent = ConsentRecordFactory()
    invitation = VerificationSessionFactory(
        person=consent.person,
        consent=consent,
        status=status,
        verified_at=now if status == "verified" else None,
    )
    for upstream_status in UpstreamVerification.Status.values:
        UpstreamVerificationFactory(
            invitation=invitation,
            status=upstream_status,
            group_id="group-1" if upstream_status == "confirmed" else "",
        )
    for email_status in OutboundEmail.Status.values:
        OutboundEmailFactory(
            invitation=invitation,
            status=email_status,
            sent_at=now if email_status == "sent" else None,
        )
for email_status in NoticeEmail.Status.values:
    NoticeEmail.objects.create(
        notice=ProducerNoticeFactory(),
        to="producer@studio.test",
        subject="Stop using 1 likeness reference you copied",
        body="…",
        status=email_status,
        sent_at=now if email_status == "sent" else None,
    )
print("populated")
