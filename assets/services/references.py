"""References for producers: every copy of an ``asset://`` reference is a ledger row first.

``reference_copy_create`` checks each asset is still usable for the project, writes a
``ReferenceCopy`` and its audit event, and only then returns the text to copy. Every refusal is
audited too, and worded without the reference or the person.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from assets import seedance
from assets.models import Asset, GroupStatus, ReferenceCopy, ReferenceCopyKind, producer_name
from assets.services.gate import KIND_WORDS
from audit.context import current_request_id
from audit.services import audit_record
from consent.models import ConsentRecord

# --- Producers: reference copies, and telling producers when a reference is withdrawn ----------

# An email that failed this many times is given up (``failed``), its last error kept on the row.


class ReferenceNotUsable(ValidationError):
    """Assets asked for may no longer be referenced (consent ended or revoked, asset or group
    withdrawn): the references page answers 409 with the messages, naming ``asset_ids``."""

    def __init__(self, messages: list[str], *, asset_ids: list[int]) -> None:
        super().__init__(messages)
        self.asset_ids = asset_ids


@dataclass(frozen=True)
class CopiedReferences:
    """What ``reference_copy_create`` recorded, and the text for the clipboard."""

    text: str
    copies: list[ReferenceCopy]


def reference_copy_create(
    *, user: Any, asset_ids: Sequence[int], project: str, kind: str
) -> CopiedReferences:
    """Record that ``user`` copies the references of ``asset_ids`` for ``project``; the text.

    ``kind`` is a ``ReferenceCopy.Kind``: ``reference`` (``asset://<Id>``) and ``content_item``
    (one Seedance 2.0 content item, JSON) take one asset, ``content_array`` (the items of all of
    them in the documented order, JSON) one to the documented maximum of each kind
    (``assets.seedance``). Every asset must be usable by producers now
    (``Asset.objects.usable_by_producers``), else ``ReferenceNotUsable`` says why; ``project``
    must be one of each asset's consent uses, else ``ValidationError``. One ``ReferenceCopy`` row
    and one audit event per asset are written in the same transaction, before any text is
    returned: no reference leaves without its row.

    The asset, consent and group rows are locked first, then read again: a revocation or a
    withdrawal committed meanwhile is seen, and one in progress waits for this copy to commit
    (and so finds it when producers are told).
    """
    ids = list(dict.fromkeys(asset_ids))
    if kind not in ReferenceCopyKind.values:
        raise ValidationError(f"Unknown kind of copy: {kind!r}.")
    if kind != ReferenceCopyKind.CONTENT_ARRAY and len(ids) != 1:
        raise ValidationError("A reference or a content item is copied for one asset at a time.")
    if not ids:
        raise ValidationError("Select at least one asset.")
    project = project.strip()
    with transaction.atomic():
        locked = _lock_for_copy(ids)
        usable = (
            Asset.objects.usable_by_producers()
            .filter(pk__in=ids)
            .select_related("consent", "group__person")
            .prefetch_related("consent__uses")
        )
        by_pk = {asset.pk: asset for asset in usable}
        refusal: ReferenceNotUsable | None = None
        copies: list[ReferenceCopy] = []
        if unusable := [pk for pk in ids if pk not in by_pk]:
            # Audited and committed, then raised: the refusal stays on record.
            refusal = _refuse(
                user=user, asset_ids=unusable, locked=locked, project=project, kind=kind
            )
        else:
            assets = [by_pk[pk] for pk in ids]
            copies = _record_copies(user=user, assets=assets, project=project, kind=kind)
    if refusal is not None:
        raise refusal
    return CopiedReferences(text=_copied_text(kind, assets), copies=copies)


def _refuse(
    *, user: Any, asset_ids: list[int], locked: dict[int, Asset], project: str, kind: str
) -> ReferenceNotUsable:
    """The refusal of a copy, each refused asset audited (``reference.refused``). Its messages
    name an asset by its number only: neither its reference nor its person, which a producer
    may no longer see."""
    reasons = [_not_usable_reason(pk, locked.get(pk)) for pk in asset_ids]
    for pk, reason in zip(asset_ids, reasons, strict=True):
        asset = locked.get(pk)
        audit_record(
            action="reference.refused",
            obj=asset,
            actor=user,
            person_id=asset.group.person_id if asset is not None else None,
            detail={"asset": pk, "project": project, "copied_as": kind, "why": reason},
        )
    return ReferenceNotUsable(reasons, asset_ids=asset_ids)


def _record_copies(
    *, user: Any, assets: list[Asset], project: str, kind: str
) -> list[ReferenceCopy]:
    """One ``ReferenceCopy`` and its audit event per asset, once the project is checked."""
    problems = [problem for asset in assets for problem in _project_problems(asset, project)]
    if kind == ReferenceCopyKind.CONTENT_ARRAY:
        problems += seedance.selection_problems(asset.kind for asset in assets)
    if problems:
        raise ValidationError(problems)
    copies = []
    for asset in assets:
        copy = ReferenceCopy.objects.create(
            user=user,
            asset=asset,
            reference=asset.asset_uri,
            project=project,
            kind=kind,
            request_id=current_request_id(),
        )
        audit_record(
            action="reference.copied",
            obj=copy,
            actor=user,
            person_id=asset.group.person_id,
            detail={
                "asset": asset.pk,
                "reference": copy.reference,
                "project": project,
                "copied_as": kind,
            },
        )
        copies.append(copy)
    return copies


def _lock_for_copy(ids: list[int]) -> dict[int, Asset]:
    """Lock the assets, their groups and their consents (by pk), as they are now."""
    assets = {
        asset.pk: asset
        for asset in Asset.objects.filter(pk__in=ids)
        .select_related("group__person")
        .select_for_update(of=("self", "group"))
    }
    consents = ConsentRecord.objects.filter(
        pk__in={asset.consent_id for asset in assets.values()}
    ).select_for_update()
    by_pk = {consent.pk: consent for consent in consents}
    for asset in assets.values():
        asset.consent = by_pk.get(asset.consent_id) if asset.consent_id else None
    return assets


def _copied_text(kind: str, assets: list[Asset]) -> str:
    if kind == ReferenceCopyKind.REFERENCE:
        return assets[0].asset_uri
    if kind == ReferenceCopyKind.CONTENT_ITEM:
        return json.dumps(seedance.content_item(assets[0].kind, assets[0].asset_uri), indent=2)
    pairs = [(asset.kind, asset.asset_uri) for asset in assets]
    return json.dumps(seedance.content_array(pairs), indent=2)


def _producer_label(asset: Asset) -> str:
    """An asset as producers know it: its reference, the person's display name, its kind."""
    reference = asset.asset_uri or f"Asset #{asset.pk}"
    person = producer_name(asset.group.person)
    return f"{reference} ({person}, {asset.get_kind_display().lower()})"


def _not_usable_reason(asset_id: int, asset: Asset | None) -> str:
    """Why producers may no longer reference an asset, in their words: named by its number
    (neither its reference nor its person's name), no consent details beyond its state."""
    if asset is None:
        return f"Asset #{asset_id} does not exist."
    label = f"Asset #{asset_id}"
    consent = asset.consent
    today = timezone.localdate()
    if asset.status != Asset.Status.ACTIVE:
        why = f"it is {asset.get_status_display().lower()}, not active"
    elif asset.group.status != GroupStatus.ACTIVE:
        why = "the person's asset group was withdrawn"
    elif consent is None:
        why = "no consent authorises it"
    elif consent.status != ConsentRecord.Status.APPROVED:
        why = f"its consent is {consent.get_status_display().lower()}"
    elif consent.starts_on > today:
        why = f"its consent starts on {consent.starts_on:%Y-%m-%d}"
    elif consent.expires_on is not None and consent.expires_on < today:
        why = f"its consent ended on {consent.expires_on:%Y-%m-%d}"
    else:
        why = f"its consent does not cover {KIND_WORDS[asset.kind]}"
    return f"{label} can no longer be used: {why}. Reload the page."


def _project_problems(asset: Asset, project: str) -> list[str]:
    """Why ``asset`` may not be copied for ``project``: it must be one of its consent's uses."""
    if not project:
        return ["State the project you are copying for."]
    projects = consent_projects(asset.consent)
    label = _producer_label(asset)
    if not projects:
        return [f"The consent of {label} describes no use: it cannot be copied for a project."]
    if project not in projects:
        return [
            f"“{project}” is not a use the consent of {label} covers; it covers: "
            f"{', '.join(projects)}."
        ]
    return []


def consent_projects(consent: ConsentRecord | None) -> list[str]:
    """The projects of a consent's uses, once each, in their order (reads ``consent.uses``)."""
    if consent is None:
        return []
    return list(dict.fromkeys(use.project for use in consent.uses.all()))
