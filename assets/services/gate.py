"""The consent gate: who may have assets uploaded, into which group, under which consent.

An upload needs a group made by a completed verification and an approved consent in force that
covers the file's kind. ``asset_group_record_liveness`` stores the group a verification made.
This module reads the consent models only (never ``consent.services``).
"""

from __future__ import annotations

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from assets.models import AssetGroup, GroupStatus, GroupType
from assets.services.common import WORKER
from audit.services import audit_record
from consent.models import ConsentRecord, Person

KIND_WORDS: dict[str, str] = {"image": "images", "video": "videos", "audio": "audio"}


# --- The consent gate -------------------------------------------------------------------------


@transaction.atomic
def asset_group_record_liveness(
    *,
    person_id: int,
    group_id: str,
    api_key_fingerprint: str,
    upstream_session_id: int | None,
) -> AssetGroup:
    """Record the LivenessFace group a verification made (GetVisualValidateResult's GroupId).

    Idempotent: a GroupId already recorded for the same person returns that row (linking it to
    ``upstream_session_id`` if it had no session). The same GroupId for another person is
    refused: a LivenessFace group holds one person only. The fingerprint is that of the API key
    that created the verification session, which owns the group upstream.
    """
    group = AssetGroup.objects.select_for_update().filter(group_id=group_id).first()
    if group is not None:
        if group.person_id != person_id:
            raise ValidationError(f"Group {group_id} already belongs to another person.")
        if group.upstream_session_id is None and upstream_session_id is not None:
            group.upstream_session_id = upstream_session_id
            group.save(update_fields=["upstream_session"])
            _audit_group(group, "group.linked")
        return group
    group = AssetGroup.objects.create(
        group_id=group_id,
        group_type=GroupType.LIVENESS_FACE,
        person_id=person_id,
        upstream_session_id=upstream_session_id,
        api_key_fingerprint=api_key_fingerprint,
    )
    _audit_group(group, "group.created")
    return group


def _audit_group(group: AssetGroup, action: str) -> None:
    audit_record(
        action=action,
        obj=group,
        actor_label=WORKER,
        person_id=group.person_id,
        after={
            "group_type": group.group_type,
            "upstream_session_id": group.upstream_session_id,
            "api_key_fingerprint": group.api_key_fingerprint,
        },
    )


def upload_group_for(person: Person) -> AssetGroup | None:
    """The group a person's new files go to: their newest active group that verification made."""
    groups = person.asset_groups.filter(status=GroupStatus.ACTIVE).order_by("-created_at", "-pk")
    return next((group for group in groups if group.is_verified_liveness()), None)


def consent_for_upload(
    person: Person, *, kind: str, on: datetime.date | None = None
) -> ConsentRecord | None:
    """The person's newest approved consent in force on ``on`` (today) that covers ``kind``."""
    return (
        ConsentRecord.objects.filter(person=person)
        .in_force(on)
        .covering(kind)
        .order_by("-starts_on", "-created_at", "-pk")
        .first()
    )


def group_refusals(*, person: Person, group: AssetGroup | None) -> list[str]:
    """Why ``person``'s files may not go into ``group`` (none: they may)."""
    if group is None:
        return [
            f"{person} has no verified real-person group. Such a (LivenessFace) group comes only "
            "from a completed verification: invite them to verify first."
        ]
    reasons = []
    if group.person_id != person.pk:
        reasons.append(f"Group {group} is another person's.")
    if not group.is_verified_liveness():
        if group.group_type != GroupType.LIVENESS_FACE:
            reasons.append(
                f"Group {group} is an {group.group_type} group: a real person's files go only "
                "to the LivenessFace group their verification made."
            )
        else:
            reasons.append(
                f"Group {group} was not made by a completed verification: it cannot take a real "
                "person's files."
            )
    if group.status != GroupStatus.ACTIVE:
        reasons.append(f"Group {group} is withdrawn: it takes no new files.")
    return reasons


def consent_refusals(
    *,
    person: Person,
    consent: ConsentRecord | None,
    kind: str | None,
    on: datetime.date | None = None,
) -> list[str]:
    """Why ``consent`` does not authorise ``person``'s file of ``kind`` on ``on`` (today).

    ``consent`` None means none was found in force covering ``kind``; ``kind`` None (a file that
    could not be read) checks everything but the coverage. The same rule as
    ``ConsentRecord.objects.in_force(on).covering(kind)``, spelt out reason by reason.
    """
    day = on or timezone.localdate()
    if consent is None:
        if kind is None:
            return []
        return [
            f"{person} has no approved consent in force today that covers {KIND_WORDS[kind]}: "
            "record one and have it approved first."
        ]
    label = f"Consent record #{consent.pk}"
    reasons = []
    if consent.person_id != person.pk:
        reasons.append(f"{label} is another person's.")
    if consent.status != ConsentRecord.Status.APPROVED:
        reasons.append(f"{label} is {consent.get_status_display().lower()}, not approved.")
    if consent.starts_on > day:
        reasons.append(f"{label} starts on {consent.starts_on:%Y-%m-%d}: not in force yet.")
    if consent.expires_on is not None and consent.expires_on < day:
        reasons.append(f"{label} ended on {consent.expires_on:%Y-%m-%d}.")
    if kind is not None and kind not in consent.media_types():
        covered = ", ".join(KIND_WORDS[k] for k in consent.media_types())
        reasons.append(f"{label} does not cover {KIND_WORDS[kind]} (it covers {covered}).")
    return reasons
