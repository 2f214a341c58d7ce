"""The scale benchmark's data: ``size`` people with complete data, written in bulk (COPY).

Each person has an approved consent with one specific use, a completed verification (an
invitation and its confirmed upstream session), one verified asset group, 3 active assets, 6
reference copies made by the producer, the invitation's email (sent) and 33 audit events,
chained as ``audit_record`` chains them (``verify_audit`` passes). Every 2nd person signed their
consent in the portal (a ``ConsentSignature`` of the one published consent text), every 10th
holds a personal link to their page. A few have more, so that the filtered lists show rows:
every 25th person an open invitation sent after the verification ("waiting", its email queued),
every 100th an earlier consent, revoked, with its confirmed withdrawal and the producer's
notice of it (read). Every consent ends within 400 days, some within 30 (legal's "ending soon"
queue).

Rows are written with PostgreSQL's COPY, their ids given here (the database is new), so 50,000
people take minutes. Import this module only once Django is set up: the model imports below are
the builder's only ones (models move between apps; update them here).
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, models, transaction
from django.utils import timezone

from assets.models import Asset, AssetGroup, ProducerNotice, ReferenceCopy, Withdrawal
from audit.chain import current_key_id
from audit.models import GENESIS_HASH, AuditEvent
from consent.models import (
    ConsentRecord,
    ConsentSignature,
    ConsentTemplate,
    ConsentTemplateVersion,
    ConsentUse,
    Person,
    PersonalLink,
)
from mail.models import OutboundEmail
from verification.models import UpstreamSession, VerificationSession

# The roles the pages are measured as: username -> the group of ``setup_roles`` (None: superuser).
ROLE_USERS = {
    "superuser": None,
    "onboarding": "Onboarding",
    "legal": "Legal",
    "producer": "Producers",
}
PROJECTS = 40  # distinct projects among the consents' uses
ASSETS_PER_PERSON = 3
COPIES_PER_PERSON = 6
WAITING_EVERY = 25
WITHDRAWN_EVERY = 100
SIGNED_EVERY = 2
LINK_EVERY = 10
BATCH = 2000  # people written per round


def build(size: int, *, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Roles, their users and ``size`` people (see the module docstring) in an empty database."""
    call_command("setup_roles", verbosity=0)
    users = _users()
    now = timezone.now()
    text = _consent_text(users["legal"], now)
    # setup_roles audited its changes: the people's events follow them.
    next_hash = AuditEvent.objects.order_by("-pk").values_list("hash", flat=True).first()
    next_hash = next_hash or GENESIS_HASH
    for start in range(0, size, BATCH):
        numbers = range(start, min(size, start + BATCH))
        with transaction.atomic():
            _people(numbers, size=size, users=users, now=now)
            _paperwork(numbers, size=size, users=users, now=now, text=text)
            next_hash = _copy_audit_events(numbers, users=users, now=now, previous=next_hash)
        progress(f"  {numbers.stop} of {size} people")
    for model in (Person, ConsentRecord, ConsentUse, VerificationSession, UpstreamSession,
                  AssetGroup, Asset, ReferenceCopy, Withdrawal, AuditEvent, OutboundEmail,
                  ConsentSignature, PersonalLink, ProducerNotice):  # fmt: skip
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:  # the names are the models' own, not input
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), "  # noqa: S608
                f"COALESCE((SELECT MAX(id) FROM {table}), 1))",
                [model._meta.db_table],
            )
    with connection.cursor() as cursor:
        # The planner's statistics and the tables' visibility maps, as autovacuum leaves them
        # (a test builds inside its transaction, where VACUUM cannot run).
        cursor.execute("ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE")
    return {"users": {role: user.pk for role, user in users.items()}}


def _users() -> dict[str, Any]:
    user_model = get_user_model()
    users = {}
    for role, group_name in ROLE_USERS.items():
        username = f"bench-{role}"
        if group_name is None:
            user = user_model.objects.create_superuser(username, f"{role}@studio.test", None)
        else:
            user = user_model.objects.create_user(
                username, f"{role}@studio.test", None, is_staff=True
            )
            user.groups.add(Group.objects.get(name=group_name))
        users[role] = user
    return users


def _people(numbers: range, *, size: int, users: dict[str, Any], now: datetime.datetime) -> None:
    """The rows of people ``numbers`` (person ``n`` has id ``n + 1``), but their audit events."""
    today = timezone.localdate()
    onboarding, legal, producer = users["onboarding"], users["legal"], users["producer"]
    ids = [n + 1 for n in numbers]
    _copy(Person, (
        Person(id=i, legal_name=f"Person {i:06d}", display_name=f"P{i:06d}",
               email=f"person{i}@talent.test", created_by=onboarding)
        for i in ids
    ))  # fmt: skip

    def consent(pk: int, person: int, **extra: Any) -> ConsentRecord:
        return ConsentRecord(
            id=pk, person_id=person, consent_text_version="2026.1",
            consent_text_sha256=hashlib.sha256(b"consent text 2026.1").hexdigest(),
            intended_uses="Reference likeness for promotional video.",
            starts_on=today - datetime.timedelta(days=30),
            expires_on=today + datetime.timedelta(days=1 + person % 400),
            capture_method=ConsentRecord.CaptureMethod.E_SIGNATURE,
            signed_document=f"consent/{person}/bench/consent.pdf",
            biometric_notice_accepted=True, retention_policy_accepted=True,
            created_by=onboarding, **extra,
        )  # fmt: skip

    # Drafts first: the database lets uses be added to drafts only; approved just after.
    _copy(ConsentRecord, (consent(i, i) for i in ids))
    _copy(ConsentUse, (
        ConsentUse(id=i, consent_id=i, project=f"Project {i % PROJECTS:02d}",
                   medium="AI-generated video advertisement, 30 s", channels="YouTube, TV",
                   territory="Worldwide", languages="English",
                   description="The person presenting the product, smiling.")
        for i in ids
    ))  # fmt: skip
    withdrawn = [i for i in ids if i % WITHDRAWN_EVERY == 0]
    _copy(ConsentRecord, (consent(size + i, i) for i in withdrawn))
    # Along the lifecycle, as the database allows: submitted, approved, and the older ones revoked.
    records = ConsentRecord.objects.filter(pk__in=[*ids, *(size + i for i in withdrawn)])
    records.update(status=ConsentRecord.Status.PENDING_REVIEW, submitted_by=onboarding,
                   submitted_at=now)  # fmt: skip
    records.update(status=ConsentRecord.Status.APPROVED, reviewed_by=legal, reviewed_at=now)
    ConsentRecord.objects.filter(pk__in=[size + i for i in withdrawn]).update(
        status=ConsentRecord.Status.REVOKED, revoked_at=now, revoked_by=legal,
        revocation_channel="email", ended_at=now,
    )  # fmt: skip
    _copy(Withdrawal, (
        Withdrawal(id=i, consent_id=size + i, person_id=i, reason=Withdrawal.Reason.REVOKED,
                   requested_by=legal, requested_by_label=legal.username,
                   groups_decision="Kept: a newer consent covers them.", confirmed_at=now)
        for i in withdrawn
    ))  # fmt: skip
    verified = VerificationSession.Status.VERIFIED
    _copy(VerificationSession, (
        VerificationSession(id=i, person_id=i, consent_id=i, status=verified, opened_at=now,
                            verified_at=now, ended_at=now, created_by=onboarding)
        for i in ids
    ))  # fmt: skip
    _copy(VerificationSession, (
        VerificationSession(id=size + i, person_id=i, consent_id=i, created_by=onboarding)
        for i in ids if i % WAITING_EVERY == 0
    ))  # fmt: skip
    _copy(UpstreamSession, (
        UpstreamSession(id=i, invitation_id=i, purpose="phone", status="confirmed",
                             byted_token=f"bench-token-{i}", group_id=f"group-bench-{i:06d}",
                             confirmed_at=now, ended_at=now)
        for i in ids
    ))  # fmt: skip
    _copy(AssetGroup, (
        AssetGroup(id=i, group_id=f"group-bench-{i:06d}", person_id=i, upstream_session_id=i)
        for i in ids
    ))  # fmt: skip
    kinds = ("image", "image", "video")
    _copy(Asset, (
        Asset(id=a, group_id=i, consent_id=i, kind=kinds[k],
              file=f"assets/{kinds[k]}/bench{a}.{'mp4' if kinds[k] == 'video' else 'jpg'}",
              original_filename=f"take-{k}.jpg", sha256=hashlib.sha256(b"%d" % a).hexdigest(),
              size_bytes=250_000, content_type="video/mp4" if kinds[k] == "video" else "image/jpeg",
              width=1200, height=1600, status="active", upstream_id=f"asset-bench-{a}",
              upstream_name=f"tcp-{uuid.UUID(int=a).hex}", submitted_at=now, uploaded_by=onboarding)
        for i in ids for k in range(ASSETS_PER_PERSON)
        for a in [(i - 1) * ASSETS_PER_PERSON + k + 1]
    ))  # fmt: skip
    _copy(ReferenceCopy, (
        ReferenceCopy(id=(i - 1) * COPIES_PER_PERSON + c + 1, user=producer, asset_id=a,
                      reference=f"asset://asset-bench-{a}", project=f"Project {i % PROJECTS:02d}",
                      kind="reference", copied_at=now)
        for i in ids for c in range(COPIES_PER_PERSON)
        for a in [(i - 1) * ASSETS_PER_PERSON + c % ASSETS_PER_PERSON + 1]
    ))  # fmt: skip


def _consent_text(legal: Any, now: datetime.datetime) -> ConsentTemplateVersion:
    """The one published consent text the portal's signatures are of."""
    template = ConsentTemplate.objects.create(name="Likeness for AI video", created_by=legal)
    body = "I agree that my likeness may be used as described in the uses below."
    return ConsentTemplateVersion.objects.create(
        template=template, version="2026.1", text=body,
        sha256=hashlib.sha256(body.encode()).hexdigest(), published_at=now, published_by=legal,
        created_by=legal,
    )  # fmt: skip


def _paperwork(
    numbers: range, *, size: int, users: dict[str, Any], now: datetime.datetime,
    text: ConsentTemplateVersion,
) -> None:  # fmt: skip
    """The emails, signatures, personal links and producer notices of people ``numbers``."""
    ids = [n + 1 for n in numbers]
    invitation_type = ContentType.objects.get_for_model(VerificationSession)
    sent, queued = OutboundEmail.Status.SENT, OutboundEmail.Status.QUEUED

    def email(pk: int, person: int, invitation: int, status: str) -> OutboundEmail:
        return OutboundEmail(
            id=pk, kind="invitation", to=f"person{person}@talent.test", language="en",
            subject="Verify your identity for Northlight Studios",
            body_text="Open the link to verify: (not kept in the benchmark).",
            about_type=invitation_type, about_id=invitation, person_id=person, status=status,
            attempts=1 if status == sent else 0, sent_at=now if status == sent else None,
            created_by=users["onboarding"],
        )  # fmt: skip

    _copy(OutboundEmail, (email(i, i, i, sent) for i in ids))
    _copy(OutboundEmail, (
        email(size + i, i, size + i, queued) for i in ids if i % WAITING_EVERY == 0
    ))  # fmt: skip
    _copy(ConsentSignature, (
        ConsentSignature(
            id=i, consent_id=i, template_version=text, invitation_id=i, signed_at=now,
            ip_address="203.0.113.7", user_agent="Mozilla/5.0 (iPhone)",
            typed_name=f"Person {i:06d}",
            notices_confirmed=["biometric", "retention"], text_sha256=text.sha256,
            terms_sha256=text.sha256, document_sha256=hashlib.sha256(b"%d" % i).hexdigest(),
            receipt={"version": "1.1.0", "piiPrincipalId": f"person{i}@talent.test"},
        )
        for i in ids if i % SIGNED_EVERY == 0
    ))  # fmt: skip
    _copy(PersonalLink, (
        PersonalLink(id=i, person_id=i, token_sha256=hashlib.sha256(b"link %d" % i).hexdigest(),
                     sent_for="invitation", expires_at=now + datetime.timedelta(days=30))
        for i in ids if i % LINK_EVERY == 0
    ))  # fmt: skip
    withdrawn = [i for i in ids if i % WITHDRAWN_EVERY == 0]
    _copy(ProducerNotice, (
        ProducerNotice(id=i, user=users["producer"], acknowledged_at=now,
                       reason="The person revoked their consent.")
        for i in withdrawn
    ))  # fmt: skip
    noticed = ProducerNotice.copies.through
    noticed.objects.bulk_create(
        noticed(producernotice_id=i, referencecopy_id=(i - 1) * COPIES_PER_PERSON + c + 1)
        for i in withdrawn for c in range(COPIES_PER_PERSON)
    )  # fmt: skip


def audit_events(
    numbers: range, *, users: dict[str, Any], now: datetime.datetime, previous: str
) -> Iterator[AuditEvent]:
    """The 33 audit events of each person in ``numbers``, chained from ``previous`` as
    ``audit_record`` chains them (the hash is the model's own ``compute_hash``)."""
    onboarding, legal, producer = users["onboarding"], users["legal"], users["producer"]
    key_id = current_key_id()
    for n in numbers:
        i = n + 1
        at = now + datetime.timedelta(seconds=n)
        assets = [(i - 1) * ASSETS_PER_PERSON + k + 1 for k in range(ASSETS_PER_PERSON)]
        copies = [(i - 1) * COPIES_PER_PERSON + c + 1 for c in range(COPIES_PER_PERSON)]
        events: list[tuple[Any, str, str, int, dict[str, Any]]] = [
            (onboarding, "person.created", "consent.person", i, {}),
            (onboarding, "person.changed", "consent.person", i, {"fields": ["phone"]}),
            (onboarding, "consent.created", "consent.consentrecord", i, {}),
            (onboarding, "consent.draft_changed", "consent.consentrecord", i, {}),
            (onboarding, "consent.submit", "consent.consentrecord", i, {}),
            (legal, "consent.approve", "consent.consentrecord", i, {"note": ""}),
            (onboarding, "invitation.created", "consent.verificationsession", i, {}),
            (None, "email.sent", "consent.outboundemail", i, {"template": "invitation"}),
            (None, "invitation.opened", "consent.verificationsession", i, {}),
            (None, "verification.started", "consent.upstreamverification", i, {}),
            (None, "verification.callback", "consent.upstreamverification", i, {}),
            (None, "verification.confirmed", "consent.upstreamverification", i, {}),
            (None, "invitation.verified", "consent.verificationsession", i, {}),
            (None, "group.created", "assets.assetgroup", i, {}),
            *(
                (actor, action, "assets.asset", a, {})
                for a in assets
                for actor, action in (
                    (onboarding, "asset.created"),
                    (None, "asset.submitted"),
                    (None, "asset.accepted"),
                    (None, "asset.active"),
                )
            ),
            (onboarding, "asset.refreshed", "assets.asset", assets[0], {}),
            *(
                (producer, "reference.copied", "assets.referencecopy", c, {"project": "P"})
                for c in copies
            ),
        ]
        for actor, action, object_type, object_id, detail in events:
            system = {"before": None, "after": {"status": action.split(".")[-1]}}
            event = AuditEvent(
                occurred_at=at,
                actor_id=actor.pk if actor else None,
                actor_label=actor.username if actor else "celery",
                action=action,
                object_type=object_type,
                object_id=str(object_id),
                object_repr=f"{object_type} #{object_id}",
                person_id=i,
                detail=detail,
                request_id=f"bench-{i}",
                previous_hash=previous,
                key_id=key_id,
                **system,
            )
            event.hash = previous = event.compute_hash()
            yield event
            at += datetime.timedelta(microseconds=1)


def _copy_audit_events(
    numbers: range, *, users: dict[str, Any], now: datetime.datetime, previous: str
) -> str:
    """COPY the events of people ``numbers``; the hash of the last (the chain's head)."""
    head = previous

    def chained() -> Iterator[AuditEvent]:
        nonlocal head
        for event in audit_events(numbers, users=users, now=now, previous=previous):
            head = event.hash
            yield event

    _copy(AuditEvent, chained(), with_id=False)
    return head


def _copy(
    model: type[models.Model], objects: Iterable[models.Model], *, with_id: bool = True
) -> None:
    """Write ``objects`` with one COPY, their fields prepared as ``bulk_create`` prepares them
    (defaults, ``auto_now``). ``with_id=False`` lets the database number them, in order."""
    fields = [f for f in model._meta.concrete_fields if with_id or not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    sql = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for obj in objects:
            copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields])
