"""Audit events in words, for people: each action's label and a detail as one line of text.

Used by the admin's timelines and list, and by the evidence bundle's summary.
"""

from __future__ import annotations

import json
from typing import Any

# Each action in words. An action not listed here reads as its name does ("reference.copied":
# "Reference copied"), so that a new kind of event needs no entry to be legible.
ACTION_LABELS = {
    "person.created": "Person added",
    "person.changed": "Person's details changed",
    "person.evidence_exported": "Evidence bundle exported",
    "consent.created": "Consent record drafted",
    "consent.draft_changed": "Draft consent record edited",
    "consent.submit": "Consent submitted for review",
    "consent.approve": "Consent approved",
    "consent.reject": "Consent rejected",
    "consent.revoke": "Consent revoked",
    "consent.expire": "Consent expired (end date passed)",
    "consent.supersede": "Consent superseded by a newer version",
    "consent.new_version": "New consent version drafted",
    "consent.exported_csv": "Consent list exported (CSV)",
    "invitation.created": "Invited to verify",
    "invitation.resent": "Invitation email sent again",
    "invitation.opened": "Invitation opened",
    "invitation.cancelled": "Invitation cancelled",
    "invitation.reissued": "Invitation reissued (new link and code)",
    "invitation.expired": "Invitation expired",
    "invitation.failed": "Invitation failed: every attempt used",
    "invitation.verified": "Person verified",
    "email.sent": "Email sent",
    "email.attempt_failed": "Email attempt failed (to be retried)",
    "email.failed": "Email failed",
    "verification.started": "Upstream verification session started",
    "verification.start_failed": "Upstream refused to start a verification session",
    "verification.callback": "Back from the verification page (callback)",
    "verification.confirmed": "Upstream confirmed the verification",
    "verification.failed": "Verification failed",
    "verification.expired": "Verification session expired",
    "verification.upstream_error": "Upstream error while confirming",
    "group.created": "Verified asset group recorded",
    "group.linked": "Asset group linked to its verification",
    "asset.created": "Asset uploaded",
    "asset.submitted": "Asset sent upstream",
    "asset.accepted": "Upstream accepted the asset",
    "asset.requeued": "Asset upload to be retried",
    "asset.active": "Asset active upstream",
    "asset.failed": "Asset failed",
    "asset.retried": "Asset retried",
    "asset.withdrawn": "Asset withdrawn upstream",
    "asset.refreshed": "Asset status refreshed from upstream",
    "asset.late_copy_deleted": "Upstream copy made after withdrawal deleted",
    "asset.upstream_error": "Upstream error about the asset",
    "file.downloaded": "File downloaded",
    "reference.copied": "Reference copied by a producer",
    "withdrawal.started": "Withdrawal from the upstream started",
    "withdrawal.confirmed": "Withdrawal confirmed by the upstream",
    "withdrawal.item_failed": "Withdrawal step failed: needs staff",
    "withdrawal.item_retried": "Withdrawal step retried",
    "withdrawal.upstream_error": "Upstream error while withdrawing",
    "asset.withdrawn_upstream": "Asset deleted upstream (withdrawal)",
    "asset_group.deleted_upstream": "Asset group deleted upstream (withdrawal)",
    "asset.media_destroyed": "Biometric media destroyed (retention)",
    "asset.consent_reassigned": "Asset moved to the consent's new version",
    "consent.expiry_warning_sent": "Warned that the consent ends soon",
    "person.legal_hold_placed": "Legal hold placed",
    "person.legal_hold_lifted": "Legal hold lifted",
}


def action_label(action: str) -> str:
    """``action`` in words, for people (timelines, the evidence summary)."""
    if action in ACTION_LABELS:
        return ACTION_LABELS[action]
    return action.replace("_", " ").replace(".", " ").strip().capitalize()


def detail_summary(detail: dict[str, Any] | None, *, limit: int = 300) -> str:
    """An event's detail as one short line of text: ``key: value; ...``."""
    if not detail:
        return ""
    parts = [
        f"{key}: {value if isinstance(value, str) else json.dumps(value)}"
        for key, value in detail.items()
        if value not in (None, "", [], {})
    ]
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"
