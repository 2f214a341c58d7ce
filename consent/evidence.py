"""A person's evidence bundle: what the portal can prove about their consent, in one ZIP file.

The bundle holds:

- ``summary.html``: for people to read, self-contained (no script, no outside resource);
- ``evidence.json``: the same, for programs: the person, each consent version with its terms,
  uses, review and revocation; every invitation with its emails and upstream sessions (the
  upstream's answers) and its timeline; asset groups; assets with their hashes and upstream
  Ids; the sections of ``SECTIONS`` (reference copies, withdrawals, ...); the person's audit
  events with their hashes, so that each can be recomputed (see ``"audit_hash"`` in the file);
- ``documents/``: each consent version's signed document, byte for byte as it was uploaded;
- ``MANIFEST.sha256``: the SHA-256 of every other file, one line each, as ``sha256sum`` writes
  them (``sha256sum -c MANIFEST.sha256`` checks an unpacked bundle).

Secrets never enter it: no API key (the portal keeps only its fingerprint), no invitation link
token or code, BytedTokens by their last six characters, no H5 link, no signed file link (an
upstream's words that quote one are masked). The ZIP is written to a file, the documents copied
into it in chunks, so a large document is never held in memory.

More evidence (reference copies, withdrawals) comes from section providers: a function of the
person returning JSON-ready rows, registered with ``evidence_section``. Its rows go into
``evidence.json`` under its key and into the summary as a table.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import posixpath
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Prefetch
from django.template.loader import render_to_string
from django.utils import timezone

from assets.models import Asset, AssetGroup, ReferenceCopy, Withdrawal
from audit.labels import action_label, detail_summary
from audit.models import AuditEvent
from audit.services import audit_record, snapshot
from consent.models import ConsentRecord, ConsentSignature, Person
from consent.services import consent_terms
from portal.logredact import mask_file_tokens
from verification.models import VerificationSession
from verification.timeline import TimelineEntry, invitation_timeline

Rows = list[dict[str, Any]]
FORMAT = "talent-consent-portal evidence bundle"
VERSION = 1
MANIFEST = "MANIFEST.sha256"
REDACTED = "[redacted]"
_CHUNK = 1024 * 1024


# --- Section providers --------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceSection:
    """More evidence about a person: ``rows(person)`` go into ``evidence.json`` under ``key``
    and into the summary as a table headed ``title``. Rows must hold no secret."""

    key: str
    title: str
    rows: Callable[[Person], Rows]


SECTIONS: list[EvidenceSection] = []


def evidence_section(
    key: str, title: str
) -> Callable[[Callable[[Person], Rows]], Callable[[Person], Rows]]:
    """Register the decorated function as the provider of the section ``key``."""

    def register(rows: Callable[[Person], Rows]) -> Callable[[Person], Rows]:
        SECTIONS.append(EvidenceSection(key, title, rows))
        return rows

    return register


@evidence_section("reference_copies", "Reference copies")
def reference_copies(person: Person) -> Rows:
    """Every reference of the person's assets handed to a producer (the references page's
    ledger), oldest first."""
    copies = (
        ReferenceCopy.objects.filter(asset__group__person=person)
        .select_related("user")
        .order_by("copied_at", "pk")
    )
    return [
        {
            "copied_at": copy.copied_at,
            "producer": _username(copy.user),
            "asset": copy.asset_id,
            "reference": copy.reference,
            "project": copy.project,
            "copied_as": copy.kind,
            "request_id": copy.request_id,
        }
        for copy in copies
    ]


@evidence_section("withdrawals", "Withdrawals upstream")
def withdrawals(person: Person) -> Rows:
    """Each ended consent's withdrawal from the upstream, one row per deletion (an asset, or a
    group deleted with it) with the upstream's confirmation and how it was proven (the
    DeleteAsset answer, a listing of the group that no longer shows it, or DeleteAssetGroup); a
    withdrawal with nothing to delete is one row without a deletion."""
    rows: Rows = []
    for withdrawal in (
        Withdrawal.objects.filter(person=person)
        .prefetch_related("items__group")
        .order_by("created_at", "pk")
    ):
        common = {
            "withdrawal": withdrawal.pk,
            "consent": withdrawal.consent_id,
            "reason": withdrawal.reason,
            "started_at": withdrawal.created_at,
            "started_by": withdrawal.requested_by_label,
            "groups_decision": withdrawal.groups_decision,
            "all_confirmed_at": withdrawal.confirmed_at,
            "producers_notified_at": withdrawal.producers_notified_at,
        }
        items = list(withdrawal.items.all())
        rows += [
            {
                **common,
                "deletes": "asset" if item.asset_id else "group",
                "asset": item.asset_id,
                "group_id": item.group.group_id,
                "upstream_id": item.upstream_id,
                "status": item.status,
                "outcome": item.outcome,
                "proven_by": item.proven_by,
                "proof": item.get_proven_by_display() if item.proven_by else "",
                "first_delete_sent_at": item.delete_sent_at,
                "upstream_confirmed_at": item.confirmed_at,
                "attempts": item.attempts,
                "last_error": mask_file_tokens(f"{item.last_error_code} {item.last_error}".strip()),
            }
            for item in items
        ] or [common]
    return rows


# --- The bundle ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """An exported bundle: the open ZIP file (at its start), its name, size and hashes."""

    file: IO[bytes]
    filename: str
    size_bytes: int
    sha256: str
    files: dict[str, str]  # every file in the ZIP, the manifest included → its SHA-256


def person_export_evidence(
    *, person: Person, actor: AbstractBaseUser | AnonymousUser | None
) -> Bundle:
    """Build ``person``'s evidence bundle in a temporary file and record the export.

    The ``person.evidence_exported`` event names the bundle's SHA-256 and its manifest's, so a
    bundle handed on can later be matched with the export that made it. The caller closes the
    returned file (a ``FileResponse`` does, once sent); it disappears when closed.
    """
    now = timezone.now()
    out = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    try:
        files = _write_zip(out, person=person, actor=actor, now=now)
        size, digest = _size_and_hash(out)
    except BaseException:
        out.close()
        raise
    filename = f"evidence-person-{person.pk}-{timezone.localtime(now):%Y%m%d-%H%M%S}.zip"
    audit_record(
        action="person.evidence_exported",
        obj=person,
        actor=actor,
        person_id=person.pk,
        detail={
            "filename": filename,
            "size_bytes": size,
            "sha256": digest,
            "manifest_sha256": files[MANIFEST],
            "files": len(files),
        },
    )
    return Bundle(file=out, filename=filename, size_bytes=size, sha256=digest, files=files)


def _write_zip(
    out: IO[bytes], *, person: Person, actor: Any, now: datetime.datetime
) -> dict[str, str]:
    evidence = collect_evidence(person)
    evidence["generated"] = {
        "at": now,
        "by": actor.get_username() if actor is not None and actor.is_authenticated else "system",
        "organisation": settings.PORTAL_ORGANISATION_NAME,
    }
    stamp = timezone.localtime(now).timetuple()[:6]
    hashes: dict[str, str] = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def write(path: str, chunks: Iterable[bytes], *, compress: bool = True) -> None:
            digest = hashlib.sha256()
            info = zipfile.ZipInfo(path, date_time=stamp)  # type: ignore[arg-type]
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            with archive.open(info, "w") as member:
                for chunk in chunks:
                    digest.update(chunk)
                    member.write(chunk)
            hashes[path] = digest.hexdigest()

        for record, version in zip(evidence["_records"], evidence["consent_versions"], strict=True):
            if record.signed_document:
                path = version["signed_document"]["path"]
                with record.signed_document.open("rb") as document:
                    # PDF, JPEG and PNG are compressed already: stored as they are.
                    chunks = iter(lambda: document.read(_CHUNK), b"")
                    write(path, chunks, compress=False)
                version["signed_document"].update(
                    sha256=hashes[path], size_bytes=record.signed_document.size
                )
        data = {key: value for key, value in evidence.items() if not key.startswith("_")}
        text = json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)
        write("evidence.json", [text.encode()])
        summary = render_to_string(
            "consent/evidence/summary.html", _summary_context(evidence, now=now)
        )
        write("summary.html", [summary.encode()])
        manifest = "".join(f"{digest}  {path}\n" for path, digest in sorted(hashes.items()))
        write(MANIFEST, [manifest.encode()])
    return hashes


def _size_and_hash(out: IO[bytes]) -> tuple[int, str]:
    out.seek(0)
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: out.read(_CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    out.seek(0)
    return size, digest.hexdigest()


def _document_path(record: ConsentRecord) -> str:
    name = posixpath.basename(record.signed_document.name or "")
    return f"documents/consent-{record.pk}-{name}"


# --- What goes in ---------------------------------------------------------------------------------


def collect_evidence(person: Person) -> dict[str, Any]:
    """Everything the bundle says about ``person``, JSON-ready (keys starting with ``_`` hold
    rows for the summary and the documents, and are not written to ``evidence.json``)."""
    records = list(
        ConsentRecord.objects.filter(person=person)
        .select_related("submitted_by", "reviewed_by", "revoked_by", "created_by")
        .prefetch_related("uses", "superseded_by")
        .order_by("created_at", "pk")
    )
    invitations = list(
        VerificationSession.objects.filter(person=person)
        .select_related("person", "created_by", "ended_by", "replaced_by")
        .prefetch_related("upstream_sessions__created_by", "emails")
        .order_by("created_at", "pk")
    )
    scrub = _Scrubber(invitations)
    groups = list(
        AssetGroup.objects.filter(person=person)
        .prefetch_related(Prefetch("assets", Asset.objects.select_related("uploaded_by")))
        .order_by("created_at", "pk")
    )
    timelines = {invitation.pk: invitation_timeline(invitation) for invitation in invitations}
    events = list(AuditEvent.objects.filter(person_id=person.pk).order_by("pk"))
    head = AuditEvent.objects.order_by("-pk").values_list("hash", flat=True).first()
    return {
        "format": FORMAT,
        "version": VERSION,
        "person": _person(person),
        "consents_in_force_today": list(
            ConsentRecord.objects.in_force().filter(person=person).values_list("pk", flat=True)
        ),
        "consent_versions": [_consent(record) for record in records],
        "verification": [
            _invitation(invitation, timelines[invitation.pk], scrub) for invitation in invitations
        ],
        "asset_groups": [_group(group) for group in groups],
        "assets": [_asset(asset, group, scrub) for group in groups for asset in group.assets.all()],
        **{section.key: section.rows(person) for section in SECTIONS},
        "audit_hash": {
            "algorithm": "HMAC-SHA256, under the portal's audit chain key named by key_id "
            "(AUDIT_CHAIN_KEY, held outside the database), of the event's content as JSON: the "
            "keys below, sorted, no spaces (separators ',' and ':'), non-ASCII characters escaped",
            "covers": list(AuditEvent(occurred_at=timezone.now()).content()),
            "chain": "previous_hash is the hash of the event written just before it, of any "
            "person: `manage.py verify_audit` checks the whole chain",
        },
        "audit_chain_head_at_export": head or "",
        "audit_events": [_event(event) for event in events],
        "_records": records,
        "_invitations": invitations,
        "_timelines": timelines,
        "_scrub": scrub,
        "_events": events,
    }


class _Scrubber:
    """Masks a person's verification secrets in free text (the upstream's words, timelines):
    invitation tokens and codes, BytedTokens (but their last six characters), signed links."""

    def __init__(self, invitations: list[VerificationSession]) -> None:
        self.replacements: list[tuple[str, str]] = []
        for invitation in invitations:
            self.replacements += [
                (invitation.invitation_token, REDACTED),
                (invitation.display_code, REDACTED),
                (invitation.code, REDACTED),
            ]
            for session in invitation.upstream_sessions.all():
                if session.byted_token:
                    self.replacements.append((session.byted_token, short(session.byted_token)))

    def __call__(self, text: str) -> str:
        for secret, mask in self.replacements:
            text = text.replace(secret, mask)
        return mask_file_tokens(text)


def short(token: str | None) -> str:
    """A BytedToken as evidence shows it: its last six characters."""
    return f"…{token[-6:]}" if token else ""


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def _person(person: Person) -> dict[str, Any]:
    return {
        **snapshot(
            person,
            ["id", "legal_name", "display_name", "email", "phone", "preferred_language"],
        ),
        "created_at": person.created_at,
    }


def _consent(record: ConsentRecord) -> dict[str, Any]:
    document = None
    if record.signed_document:
        document = {"path": _document_path(record), "stored_name": record.signed_document.name}
    return {
        "id": record.pk,
        "status": record.status,
        "supersedes": record.supersedes_id,
        "superseded_by": [later.pk for later in record.superseded_by.all()],
        "terms": snapshot(record, [field.name for field, _ in consent_terms(record)]),
        "uses": [
            snapshot(
                use, ["project", "medium", "channels", "territory", "languages", "description"]
            )
            for use in record.uses.all()
        ],
        "signed_document": document,
        "electronic_signature": _signature(record),
        "review": {
            "submitted_by": _username(record.submitted_by),
            "submitted_at": record.submitted_at,
            "reviewed_by": _username(record.reviewed_by),
            "reviewed_at": record.reviewed_at,
            "review_note": record.review_note,
        },
        "revocation": None
        if record.revoked_at is None
        else {
            "revoked_at": record.revoked_at,
            "revoked_by": _username(record.revoked_by),
            "channel": record.revocation_channel,
            "requested_at": record.revocation_requested_at,
            "reason": record.revocation_reason,
        },
        "ended_at": record.ended_at,
        "created_by": _username(record.created_by),
        "created_at": record.created_at,
    }


def _signature(record: ConsentRecord) -> dict[str, Any] | None:
    """The evidence of an electronic signature (the drawing is in the signed PDF)."""
    signature = ConsentSignature.objects.filter(consent_id=record.pk).first()
    if signature is None:
        return None
    return snapshot(
        signature, [f.name for f in ConsentSignature._meta.fields if f.name != "drawn_signature"]
    )


def _invitation(
    invitation: VerificationSession, timeline: list[TimelineEntry], scrub: _Scrubber
) -> dict[str, Any]:
    return {
        "id": invitation.pk,
        "status": invitation.status,
        "consent_id": invitation.consent_id,
        "created_by": _username(invitation.created_by),
        "created_at": invitation.created_at,
        "expires_at": invitation.expires_at,
        "opened_at": invitation.opened_at,
        "verified_at": invitation.verified_at,
        "ended_at": invitation.ended_at,
        "ended_by": _username(invitation.ended_by),
        "replaced_by": invitation.replaced_by_id,
        "emails": [
            {
                "to": email.to,
                "template": email.kind,
                "language": email.language,
                "status": email.status,
                "attempts": email.attempts,
                "sent_at": email.sent_at,
                "last_error": scrub(email.last_error),
                "created_at": email.created_at,
            }
            for email in sorted(invitation.emails.all(), key=lambda email: email.pk)
        ],
        "upstream_sessions": [
            {
                "id": session.pk,
                "public_id": session.public_id,
                "purpose": session.purpose,
                "status": session.status,
                "language": session.language,
                "byted_token": short(session.byted_token),
                "api_key_fingerprint": session.api_key_fingerprint,
                "created_by": _username(session.created_by),
                "created_at": session.created_at,
                "h5_link_expires_at": session.h5_link_expires_at,
                "token_expires_at": session.token_expires_at,
                "callback_received_at": session.callback_received_at,
                "callback": {
                    key: scrub(str(value))
                    for key, value in session.callback_params.items()
                    if key != "bytedToken"
                },
                "group_id": session.group_id,
                "confirmed_at": session.confirmed_at,
                "ended_at": session.ended_at,
                "confirmation_requests": session.attempts,
                "last_error_code": session.last_error_code,
                "last_error": scrub(session.last_error),
                "last_error_explanation": session.last_error_explanation,
            }
            for session in sorted(invitation.upstream_sessions.all(), key=lambda s: s.pk)
        ],
        "timeline": [
            {"when": entry.when, "what": entry.label, "detail": scrub(entry.detail)}
            for entry in timeline
        ],
    }


_GROUP_FIELDS = ["group_id", "group_type", "status", "upstream_session",
                 "api_key_fingerprint", "created_at", "withdrawn_at"]  # fmt: skip
_ASSET_FIELDS = ["id", "kind", "status", "original_filename", "sha256", "size_bytes",
                 "content_type", "width", "height", "duration_seconds", "fps", "upstream_name",
                 "upstream_id", "consent", "attempts", "submitted_at", "withdrawn_at",
                 "error_code", "created_at"]  # fmt: skip


def _group(group: AssetGroup) -> dict[str, Any]:
    return snapshot(group, _GROUP_FIELDS)


def _asset(asset: Asset, group: AssetGroup, scrub: _Scrubber) -> dict[str, Any]:
    return {
        **snapshot(asset, _ASSET_FIELDS),
        "group_id": group.group_id,
        "asset_uri": asset.asset_uri,
        "error_message": scrub(asset.error_message),
        "uploaded_by": _username(asset.uploaded_by),
    }


def _event(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.pk, **event.content(), "hash": event.hash}


# --- The summary ----------------------------------------------------------------------------------


def _summary_context(evidence: dict[str, Any], *, now: datetime.datetime) -> dict[str, Any]:
    scrub: _Scrubber = evidence["_scrub"]
    in_force = set(evidence["consents_in_force_today"])
    return {
        "generated": evidence["generated"],
        "now": now,
        "person": evidence["person"],
        "consents": [
            {
                "record": record,
                "in_force": record.pk in in_force,
                "terms": [(field.verbose_name, shown) for field, shown in consent_terms(record)],
                "document": data["signed_document"],
            }
            for record, data in zip(evidence["_records"], evidence["consent_versions"], strict=True)
        ],
        "invitations": [
            {
                "invitation": invitation,
                "entries": [
                    (entry.when, entry.label, scrub(entry.detail))
                    for entry in evidence["_timelines"][invitation.pk]
                ],
            }
            for invitation in evidence["_invitations"]
        ],
        "groups": evidence["asset_groups"],
        "assets": evidence["assets"],
        "sections": [
            {"title": section.title, **_table(evidence[section.key])} for section in SECTIONS
        ],
        "events": [
            {
                "event": event,
                "label": action_label(event.action),
                "changes": _changes_text(event),
                "detail": detail_summary(event.detail),
            }
            for event in evidence["_events"]
        ],
        "chain_head": evidence["audit_chain_head_at_export"],
    }


def _table(rows: Rows) -> dict[str, Any]:
    """``rows`` as columns (every key, in order of appearance) and cells, as text."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    cells = [[_text(row.get(column)) for column in columns] for row in rows]
    return {"columns": columns, "rows": cells}


def _text(value: Any) -> str:
    if value in (None, ""):
        return "—"
    if isinstance(value, datetime.datetime):
        return f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S %Z}"
    if isinstance(value, str):
        return value
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def _changes_text(event: AuditEvent) -> list[str]:
    before, after = event.before or {}, event.after or {}
    keys = [key for key in {**before, **after} if before.get(key) != after.get(key)]
    return [f"{key}: {_text(before.get(key))} → {_text(after.get(key))}" for key in keys]
