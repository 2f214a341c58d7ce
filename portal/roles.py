"""The portal's roles: who does what, as Django groups with exactly the permissions they need.

``ROLES`` is the one table of them. ``python manage.py setup_roles`` (``roles_apply``) makes each
role's group hold exactly its permissions, creating the group when it is missing and taking away
any permission given to it by hand since; users are put in a group in the admin (Users).
Superusers hold every permission and belong to no role.

Each role also names its work: the rows waiting for it (``WorkQueue``, counted on its admin home
and linked to the list that shows them) and the pages it lives on (``WorkLink``). The admin home
shows an item to whoever holds the item's permission, so a user in two roles sees both.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from assets.models import AssetStatus
from audit.services import audit_record
from consent.models import ConsentStatus

Params = Callable[[datetime.date], dict[str, Any]]


def _fixed(params: dict[str, Any]) -> Params:
    return lambda today: params


def _people_in_state(state: str) -> Params:
    """People by verification state, counted from the invitations' side (issue 16)."""

    def lookups(today: datetime.date) -> dict[str, Any]:
        from verification.admin_views import people_in_verification_state

        return {"pk__in": people_in_verification_state(state)}

    return lookups


@dataclass(frozen=True)
class WorkQueue:
    """Rows waiting for a role: a count on its admin home, linked to the changelist showing them.

    ``params`` is the changelist's query string (given today's date); ``lookups`` selects the same
    rows from the model admin's queryset, when the query string names a list filter rather than
    a field (default: ``params`` themselves).
    """

    title: str
    model: str  # "app_label.model_name"; a queue whose model is not installed is not shown
    permission: str  # who works this queue ("app_label.codename")
    params: Params
    lookups: Params | None = None


@dataclass(frozen=True)
class WorkLink:
    """A page a role works on, linked from its admin home (not shown while it does not exist)."""

    title: str
    url_name: str
    permission: str


@dataclass(frozen=True)
class Role:
    name: str  # the Django group's name
    summary: str
    permissions: frozenset[str]  # "app_label.codename"
    work: tuple[WorkQueue | WorkLink, ...] = ()


def _ending_within_30_days(today: datetime.date) -> dict[str, Any]:
    return {
        "status": ConsentStatus.APPROVED,
        "expires_on__gte": today.isoformat(),
        "expires_on__lte": (today + datetime.timedelta(days=30)).isoformat(),
    }


ONBOARDING = Role(
    name="Onboarding",
    summary=(
        "Adds people, records their consent as drafts and submits it for review, invites them to "
        "verification (email, QR page, desk), uploads their assets and retries, refreshes or "
        "withdraws uploads. Cannot approve, reject or revoke consent, nor read the audit trail."
    ),
    permissions=frozenset(
        {
            "consent.add_person",
            "consent.change_person",
            "consent.view_person",
            # Drafts: their terms and specific uses; "Submit for review" takes change.
            "consent.add_consentrecord",
            "consent.change_consentrecord",
            "consent.view_consentrecord",
            "consent.add_consentuse",
            "consent.change_consentuse",
            "consent.delete_consentuse",
            "consent.view_consentuse",
            # Drafts pick a published consent text; signatures are shown on the record.
            "consent.view_consenttemplate",
            "consent.view_consenttemplateversion",
            "consent.view_consentsignature",
            # "Invite to verify" takes add; resend, cancel, the QR and desk pages change;
            # reissue both.
            "verification.add_verificationsession",
            "verification.change_verificationsession",
            "verification.view_verificationsession",
            "verification.view_upstreamsession",
            "mail.view_outboundemail",
            "assets.view_assetgroup",
            # Uploads take add; retry, refresh and withdraw (of a mistaken upload) change.
            "assets.add_asset",
            "assets.change_asset",
            "assets.view_asset",
            "assets.view_asset_file",
        }
    ),
    work=(
        WorkQueue(
            "People invited, not verified yet",
            "consent.person",
            "verification.change_verificationsession",
            params=_fixed({"verification": "waiting"}),
            lookups=_people_in_state("waiting"),
        ),
        WorkQueue(
            "People whose verification failed",
            "consent.person",
            "verification.change_verificationsession",
            params=_fixed({"verification": "failed"}),
            lookups=_people_in_state("failed"),
        ),
        WorkQueue(
            "People whose invitation expired unused",
            "consent.person",
            "verification.change_verificationsession",
            params=_fixed({"verification": "expired"}),
            lookups=_people_in_state("expired"),
        ),
        WorkQueue(
            "Failed uploads",
            "assets.asset",
            "assets.change_asset",
            params=_fixed({"status": AssetStatus.FAILED}),
        ),
    ),
)

LEGAL = Role(
    name="Legal",
    summary=(
        "Writes and publishes the consent texts (versioned, per language, frozen once "
        "published), reviews consent records (approve, reject), records revocations and follows "
        "their withdrawals upstream (retrying failed items), places legal holds, exports evidence "
        "bundles, reads the audit trail "
        "and everything a review needs, read-only: people, consent records and their documents, "
        "invitations and upstream sessions, assets and their files, where references went and "
        "what producers were told."
    ),
    permissions=frozenset(
        {
            "consent.view_person",
            "consent.view_consentrecord",
            "consent.view_consentuse",
            "consent.review_consentrecord",
            "consent.revoke_consentrecord",
            # People's own links to their page (/me/): who got one, when, revoked or not.
            "consent.view_personallink",
            # Keeps a person's biometric media past retention (a dispute, a claim).
            "consent.legal_hold_person",
            # "Export evidence bundle" on people: consent versions, timeline, files, manifest.
            "consent.export_evidence",
            # Consent texts: written, then published (frozen for good); signatures' evidence.
            "consent.add_consenttemplate",
            "consent.change_consenttemplate",
            "consent.view_consenttemplate",
            "consent.add_consenttemplateversion",
            "consent.change_consenttemplateversion",
            "consent.view_consenttemplateversion",
            "consent.publish_consenttemplateversion",
            "consent.view_consentsignature",
            "verification.view_verificationsession",
            "verification.view_upstreamsession",
            "mail.view_outboundemail",
            "assets.view_assetgroup",
            "assets.view_asset",
            "assets.view_asset_file",
            "assets.view_referencecopy",
            "assets.view_producernotice",
            # A revocation's proof that it reached the upstream; change retries failed items.
            "assets.view_withdrawal",
            "assets.view_withdrawalitem",
            "assets.change_withdrawal",
            "audit.view_auditevent",
        }
    ),
    work=(
        WorkQueue(
            "Consent records waiting for review",
            "consent.consentrecord",
            "consent.review_consentrecord",
            params=_fixed({"status": ConsentStatus.PENDING_REVIEW}),
        ),
        WorkQueue(
            "Consents ending within 30 days",
            "consent.consentrecord",
            "consent.review_consentrecord",
            params=_ending_within_30_days,
        ),
        WorkQueue(
            "Withdrawals not yet confirmed upstream",
            "assets.withdrawal",
            "consent.revoke_consentrecord",
            params=_fixed({"confirmed": "no"}),
            lookups=_fixed({"confirmed_at__isnull": True}),
        ),
    ),
)

PRODUCERS = Role(
    name="Producers",
    summary=(
        "Copy the references of active, consented assets from the references page, every copy "
        "recorded. Nothing in the admin: its asset list would show the reference of an asset "
        "whose consent just ended, and copy it without a record."
    ),
    permissions=frozenset({"assets.view_references"}),
    work=(
        WorkLink(
            "The references page: copy asset:// references",
            "references:list",
            "assets.view_references",
        ),
    ),
)

ROLES = (ONBOARDING, LEGAL, PRODUCERS)


# --- Applying the table -----------------------------------------------------------------------


class UnknownPermissions(Exception):
    """The table names permissions the database does not have (a model or migration missing)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(
            "These permissions do not exist: "
            + ", ".join(names)
            + ". Run `manage.py migrate` first; if they still do not exist, the table in "
            "portal/roles.py names a permission no model defines."
        )


@dataclass(frozen=True)
class RoleChange:
    """What ``roles_apply`` did to one role's group."""

    role: Role
    created: bool
    added: list[str]
    removed: list[str]


def permission_name(permission: Permission) -> str:
    """``app_label.codename``, as ``user.has_perm`` and ``ROLES`` name a permission."""
    return f"{permission.content_type.app_label}.{permission.codename}"


def _resolve(names: Iterable[str]) -> dict[str, Permission]:
    """The permissions called ``names``, by name; ``UnknownPermissions`` lists any missing."""
    wanted = set(names)
    codenames = {name.partition(".")[2] for name in wanted}
    candidates = Permission.objects.filter(codename__in=codenames).select_related("content_type")
    found = {permission_name(p): p for p in candidates if permission_name(p) in wanted}
    missing = sorted(wanted - set(found))
    if missing:
        raise UnknownPermissions(missing)
    return found


@transaction.atomic
def roles_apply(*, roles: Iterable[Role] = ROLES) -> list[RoleChange]:
    """Give each role's group exactly the role's permissions: create missing groups, add what is
    missing, take away what is not in the table. Other groups and group members are untouched.

    Nothing changes unless every permission named exists (``UnknownPermissions``). Each group
    whose permissions changed gets an audit event with the permissions before and after.
    """
    roles = list(roles)
    permissions = _resolve(name for role in roles for name in role.permissions)
    changes = []
    for role in roles:
        group, created = Group.objects.get_or_create(name=role.name)
        current = {permission_name(p) for p in group.permissions.select_related("content_type")}
        added, removed = sorted(role.permissions - current), sorted(current - role.permissions)
        if created or added or removed:
            group.permissions.set([permissions[name] for name in role.permissions])
            audit_record(
                action="role.permissions_set",
                obj=group,
                actor_label="setup_roles",
                before={"permissions": sorted(current)},
                after={"permissions": sorted(role.permissions)},
                detail={"created": created, "added": added, "removed": removed},
            )
        changes.append(RoleChange(role=role, created=created, added=added, removed=removed))
    return changes
