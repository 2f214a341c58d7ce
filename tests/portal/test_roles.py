"""The roles (``portal.roles``): ``setup_roles``, the whole permission matrix page by page and
action by action, what producers never see, and each role's work on the admin home."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset, AssetGroup, Withdrawal
from audit.models import AuditEvent
from audit.services import audit_record
from consent import services
from consent.models import ConsentRecord, Person
from mail.models import OutboundEmail
from portal import admin_site, roles
from portal.management.commands import setup_roles
from portal.roles import LEGAL, ONBOARDING, PRODUCERS, ROLES, Role, WorkLink, WorkQueue
from sandbox.samples import make_image
from tests.factories import (
    AssetFactory,
    AssetGroupFactory,
    ConsentRecordFactory,
    OutboundEmailFactory,
    PersonFactory,
    UpstreamSessionFactory,
    UsableAssetFactory,
    UserFactory,
    VerificationSessionFactory,
)
from verification import admin_views
from verification.models import UpstreamSession, VerificationSession

# The whole matrix of pages and actions per role: CI and bin/test --all run it.
pytestmark = [pytest.mark.django_db, pytest.mark.slow]

ConsentStatus = ConsentRecord.Status
InvitationStatus = VerificationSession.Status
# Everyone the matrix is about: no login, each role's demo-like user, and a superuser.
WHO = ("anonymous", "producer", "onboarding", "legal", "superuser")
ROLE_OF = {"producer": PRODUCERS, "onboarding": ONBOARDING, "legal": LEGAL}


@pytest.fixture(autouse=True)
def no_broker(queued):
    """Emails and confirmations are recorded (``queued``), never sent to a broker."""
    return queued


def _client_for(who: str) -> Client:
    client = Client()
    if who == "anonymous":
        return client
    # No password: force_login needs none, and hashing one takes a fraction of a second.
    user = UserFactory(username=f"{who}-user", superuser=who == "superuser", password=None)
    if who in ROLE_OF:
        user.groups.add(Group.objects.get(name=ROLE_OF[who].name))
    client.force_login(user)
    return client


@pytest.fixture
def clients() -> dict[str, Client]:
    """A logged-in client per role (groups made by ``setup_roles``), plus anonymous and root."""
    roles.roles_apply()
    return {who: _client_for(who) for who in WHO}


@dataclass
class World:
    """One row of every kind the admin shows, around one person."""

    person: Person
    draft: ConsentRecord
    pending: ConsentRecord
    approved: ConsentRecord
    new_version: ConsentRecord  # a draft superseding ``approved``
    invitation: VerificationSession  # open
    cancelled: VerificationSession  # an earlier one, ended
    upstream: UpstreamSession
    email: OutboundEmail
    group: AssetGroup
    asset: Asset
    withdrawal: Withdrawal  # of another person's revoked consent
    event: AuditEvent


@pytest.fixture
def world() -> World:
    person = PersonFactory(
        email="ada.private@talent.test", phone="+44 20 7946 0123", notes="Allergic to latex."
    )
    approved = ConsentRecordFactory(person=person, complete=True, approved=True)
    invitation = VerificationSessionFactory(person=person, consent=approved)
    group = AssetGroupFactory(person=person)
    root = UserFactory(username="world-maker", superuser=True, password=None)
    return World(
        person=person,
        draft=ConsentRecordFactory(person=person, complete=True),
        pending=ConsentRecordFactory(
            person=person, complete=True, status=ConsentStatus.PENDING_REVIEW
        ),
        approved=approved,
        new_version=services.consent_new_version(record=approved, actor=root),
        invitation=invitation,
        cancelled=VerificationSessionFactory(
            person=person, consent=approved, status=InvitationStatus.CANCELLED
        ),
        upstream=UpstreamSessionFactory(invitation=invitation),
        email=OutboundEmailFactory(about=invitation),
        group=group,
        # Usable by producers: active, in an active group, under a consent in force for images.
        asset=AssetFactory(
            active=True,
            group=group,
            consent=approved,
            content=make_image(width=400, height=600, fmt="PNG", label="the original"),
        ),
        withdrawal=_withdrawal(),
        event=audit_record(action="test.event", obj=person, actor=root),
    )


def _withdrawal() -> Withdrawal:
    """The withdrawal of a revoked consent with one active asset."""
    asset = UsableAssetFactory()
    services.consent_revoke(record=asset.consent, actor=None, channel="email", reason="Letter.")
    return Withdrawal.objects.get(consent=asset.consent)


def _admin(name: str, *args: object) -> str:
    return reverse(f"admin:{name}", args=args)


# --- The matrix: every admin page and custom page, for everyone -------------------------------

Url = Callable[[World], str]
GET, POST, JSON = "GET", "POST", "POST JSON"

# page, method, its URL, then the status for: anonymous, producer, onboarding, legal, superuser.
# 302 for anonymous is the login page; 302 for a POST is the page it goes back to.
PAGES: list[tuple[str, str, Url, tuple[int, int, int, int, int]]] = [
    # Producers, who have nothing in the admin, are sent on to their references page.
    ("admin home", GET, lambda w: _admin("index"), (302, 302, 200, 200, 200)),
    ("people and consent app", GET, lambda w: _admin("app_list", "consent"),
     (302, 404, 200, 200, 200)),
    ("likeness assets app", GET, lambda w: _admin("app_list", "assets"),
     (302, 404, 200, 200, 200)),
    ("audit app", GET, lambda w: _admin("app_list", "audit"), (302, 404, 404, 200, 200)),
    # People
    ("person list", GET, lambda w: _admin("consent_person_changelist"),
     (302, 403, 200, 200, 200)),
    ("person add", GET, lambda w: _admin("consent_person_add"), (302, 403, 200, 403, 200)),
    ("person page", GET, lambda w: _admin("consent_person_change", w.person.pk),
     (302, 403, 200, 200, 200)),
    ("person invite button", POST, lambda w: _admin("consent_person_invite", w.person.pk),
     (302, 403, 302, 403, 302)),
    ("person upload assets", GET,
     lambda w: _admin("consent_person_upload_assets", w.person.pk), (302, 403, 200, 403, 200)),
    # Consent records
    ("consent list", GET, lambda w: _admin("consent_consentrecord_changelist"),
     (302, 403, 200, 200, 200)),
    ("consent add", GET, lambda w: _admin("consent_consentrecord_add"),
     (302, 403, 200, 403, 200)),
    ("consent draft page", GET, lambda w: _admin("consent_consentrecord_change", w.draft.pk),
     (302, 403, 200, 200, 200)),
    ("consent pending page", GET,
     lambda w: _admin("consent_consentrecord_change", w.pending.pk), (302, 403, 200, 200, 200)),
    ("consent approved page", GET,
     lambda w: _admin("consent_consentrecord_change", w.approved.pk), (302, 403, 200, 200, 200)),
    ("consent compare versions", GET,
     lambda w: _admin("consent_consentrecord_compare", w.new_version.pk),
     (302, 403, 200, 200, 200)),
    ("consent CSV export", GET, lambda w: _admin("consent_consentrecord_export_csv"),
     (302, 403, 200, 200, 200)),
    ("signed consent document", GET,
     lambda w: _admin("consent_consentrecord_file", w.approved.pk), (302, 403, 200, 200, 200)),
    # Invitations
    ("invitation list", GET, lambda w: _admin("verification_verificationsession_changelist"),
     (302, 403, 200, 200, 200)),
    ("invitation add (never by hand)", GET,
     lambda w: _admin("verification_verificationsession_add"),
     (302, 403, 403, 403, 403)),
    ("invitation page", GET,
     lambda w: _admin("verification_verificationsession_change", w.invitation.pk),
     (302, 403, 200, 200, 200)),
    ("invitation QR page", GET,
     lambda w: _admin("verification_verificationsession_qr", w.invitation.pk),
     (302, 403, 200, 403, 200)),
    ("invitation desk page", GET,
     lambda w: _admin("verification_verificationsession_desk", w.invitation.pk),
     (302, 403, 200, 403, 200)),
    ("invitation desk status", GET,
     lambda w: _admin("verification_verificationsession_desk_status", w.invitation.pk),
     (302, 403, 200, 200, 200)),
    # A code minted for an ended invitation is refused (409) once the permission let it through.
    ("invitation desk mint", POST,
     lambda w: _admin("verification_verificationsession_desk_mint", w.cancelled.pk),
     (302, 403, 409, 403, 409)),
    ("invitation resend button", POST,
     lambda w: _admin("verification_verificationsession_resend", w.invitation.pk),
     (302, 403, 302, 403, 302)),
    ("invitation cancel button", POST,
     lambda w: _admin("verification_verificationsession_cancel", w.invitation.pk),
     (302, 403, 302, 403, 302)),
    ("invitation reissue button", POST,
     lambda w: _admin("verification_verificationsession_reissue", w.invitation.pk),
     (302, 403, 302, 403, 302)),
    # Upstream sessions and emails: logs
    ("upstream session list", GET, lambda w: _admin("verification_upstreamsession_changelist"),
     (302, 403, 200, 200, 200)),
    ("upstream session page", GET,
     lambda w: _admin("verification_upstreamsession_change", w.upstream.pk),
     (302, 403, 200, 200, 200)),
    ("upstream session add", GET, lambda w: _admin("verification_upstreamsession_add"),
     (302, 403, 403, 403, 403)),
    ("email list", GET, lambda w: _admin("mail_outboundemail_changelist"),
     (302, 403, 200, 200, 200)),
    ("email page", GET, lambda w: _admin("mail_outboundemail_change", w.email.pk),
     (302, 403, 200, 200, 200)),
    # Asset groups and assets
    ("group list", GET, lambda w: _admin("assets_assetgroup_changelist"),
     (302, 403, 200, 200, 200)),
    ("group page", GET, lambda w: _admin("assets_assetgroup_change", w.group.pk),
     (302, 403, 200, 200, 200)),
    ("group add (never by hand)", GET, lambda w: _admin("assets_assetgroup_add"),
     (302, 403, 403, 403, 403)),
    ("asset list", GET, lambda w: _admin("assets_asset_changelist"), (302, 403, 200, 200, 200)),
    ("asset page", GET, lambda w: _admin("assets_asset_change", w.asset.pk),
     (302, 403, 200, 200, 200)),
    ("asset upload (add)", GET, lambda w: _admin("assets_asset_add"), (302, 403, 200, 403, 200)),
    ("asset original file", GET, lambda w: _admin("assets_asset_file", w.asset.pk),
     (302, 403, 200, 200, 200)),
    # The producers' page, and where references went (for legal)
    ("references page", GET, lambda w: reverse("references:list"), (302, 200, 403, 403, 200)),
    ("references copy", JSON, lambda w: reverse("references:copy"), (302, 200, 403, 403, 200)),
    ("references preview", GET, lambda w: reverse("references:thumbnail", args=[w.asset.pk]),
     (302, 200, 403, 403, 200)),
    ("reference copy list", GET, lambda w: _admin("assets_referencecopy_changelist"),
     (302, 403, 403, 200, 200)),
    ("producer notice list", GET, lambda w: _admin("assets_producernotice_changelist"),
     (302, 403, 403, 200, 200)),
    # Withdrawals: a revocation reaching the upstream (legal's)
    ("withdrawal list", GET, lambda w: _admin("assets_withdrawal_changelist"),
     (302, 403, 403, 200, 200)),
    ("withdrawal page", GET, lambda w: _admin("assets_withdrawal_change", w.withdrawal.pk),
     (302, 403, 403, 200, 200)),
    ("withdrawal add (never by hand)", GET, lambda w: _admin("assets_withdrawal_add"),
     (302, 403, 403, 403, 403)),
    # The audit trail
    ("audit event list", GET, lambda w: _admin("audit_auditevent_changelist"),
     (302, 403, 403, 200, 200)),
    ("audit event page", GET, lambda w: _admin("audit_auditevent_change", w.event.pk),
     (302, 403, 403, 200, 200)),
    # Users and groups: nobody gives themselves a role
    ("user list", GET, lambda w: _admin("auth_user_changelist"), (302, 403, 403, 403, 200)),
    ("group (role) list", GET, lambda w: _admin("auth_group_changelist"),
     (302, 403, 403, 403, 200)),
]  # fmt: skip


def _copy_request(world: World) -> dict[str, object]:
    """What the references page posts to copy the asset's reference."""
    project = world.approved.uses.get().project
    return {"assets": [world.asset.pk], "project": project, "kind": "reference"}


def _status(client: Client, method: str, url: str, world: World) -> int:
    """The status of one request, whose changes are then rolled back (a POST cancels or
    reissues the invitation the next request needs)."""
    with transaction.atomic():
        if method == JSON:
            response = client.post(url, _copy_request(world), content_type="application/json")
        else:
            response = (client.post if method == POST else client.get)(url)
        transaction.set_rollback(True)
    return response.status_code


@pytest.mark.parametrize(("name", "method", "url", "expected"), PAGES, ids=[p[0] for p in PAGES])
def test_each_page_answers_each_role_as_the_matrix_says(
    name, method, url, expected, clients, world: World
):
    target = url(world)

    answered = {who: _status(clients[who], method, target, world) for who in WHO}

    assert answered == dict(zip(WHO, expected, strict=True)), f"{method} {target}"


# --- Actions offered on each list -------------------------------------------------------------

INVITE = {"invite_to_verify"}
HOLD = {"place_legal_hold", "lift_legal_hold"}
EVIDENCE = {"export_evidence_bundle"}
SUBMIT = {"submit_for_review"}
REVIEW = {"approve_records", "reject_records", "revoke_consent"}
INVITATIONS = {"resend_invitations", "cancel_invitations", "reissue_invitations"}
UPLOADS = {"retry_assets", "withdraw_assets", "refresh_assets"}
RETRY = {"retry_failed_items"}
NONE: set[str] = set()

# list, then the actions offered to: producer, onboarding, legal, superuser (None: no list).
ACTIONS: list[tuple[str, tuple[set[str] | None, ...]]] = [
    (
        "consent_person_changelist",
        (None, INVITE, HOLD | EVIDENCE, INVITE | HOLD | EVIDENCE | {"delete_selected"}),
    ),
    ("consent_consentrecord_changelist", (None, SUBMIT, REVIEW, SUBMIT | REVIEW)),
    ("verification_verificationsession_changelist", (None, INVITATIONS, NONE, INVITATIONS)),
    ("verification_upstreamsession_changelist", (None, NONE, NONE, NONE)),
    ("mail_outboundemail_changelist", (None, NONE, NONE, NONE)),
    ("assets_assetgroup_changelist", (None, NONE, NONE, NONE)),
    ("assets_asset_changelist", (None, UPLOADS, NONE, UPLOADS)),
    ("assets_referencecopy_changelist", (None, None, NONE, NONE)),
    ("assets_producernotice_changelist", (None, None, NONE, NONE)),
    ("assets_withdrawal_changelist", (None, None, RETRY, RETRY)),
    ("audit_auditevent_changelist", (None, None, NONE, NONE)),
]
STAFF = ("producer", "onboarding", "legal", "superuser")


def _offered_actions(client: Client, url: str) -> set[str] | None:
    response = client.get(url)
    if response.status_code == 403:
        return None
    assert response.status_code == 200
    form = response.context["action_form"]
    if form is None:
        return set()
    return {name for name, _ in form.fields["action"].choices if name}


@pytest.mark.parametrize(("changelist", "expected"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_each_list_offers_each_role_the_actions_the_matrix_says(
    changelist, expected, clients, world: World
):
    url = _admin(changelist)

    offered = {who: _offered_actions(clients[who], url) for who in STAFF}

    assert offered == dict(zip(STAFF, expected, strict=True))


def _run_action(client: Client, changelist: str, action: str, row, data: dict) -> None:
    form = {"action": action, "_selected_action": [row.pk], "confirm": "yes", **data}
    client.post(_admin(changelist), form)


@pytest.mark.parametrize(
    ("who", "changelist", "action", "row", "data"),
    [
        ("onboarding", "consent_consentrecord_changelist", "approve_records", "pending",
         {"note": "Fine."}),
        ("onboarding", "consent_consentrecord_changelist", "revoke_consent", "approved",
         {"channel": "in_writing", "reason": "Letter."}),
        ("legal", "consent_consentrecord_changelist", "submit_for_review", "draft", {}),
        ("legal", "consent_person_changelist", "invite_to_verify", "person", {}),
        ("legal", "assets_asset_changelist", "withdraw_assets", "asset", {}),
        ("onboarding", "consent_person_changelist", "place_legal_hold", "person",
         {"note": "Claim."}),
        ("producer", "assets_asset_changelist", "retry_assets", "asset", {}),
    ],
)  # fmt: skip
def test_an_action_not_offered_to_a_role_does_nothing_when_posted(
    who, changelist, action, row, data, clients, world: World
):
    target = getattr(world, row)
    before = type(target).objects.filter(pk=target.pk).values().get()
    invitations = VerificationSession.objects.count()

    _run_action(clients[who], changelist, action, target, data)

    assert type(target).objects.filter(pk=target.pk).values().get() == before
    assert VerificationSession.objects.count() == invitations


@pytest.mark.parametrize(
    ("who", "status", "content_type"),
    [
        ("producer", 403, "text/html; charset=utf-8"),
        # Not offered: the list goes back to itself, nothing exported.
        ("onboarding", 302, "text/html; charset=utf-8"),
        ("legal", 200, "application/zip"),
        ("superuser", 200, "application/zip"),
    ],
)
def test_only_legal_gets_a_persons_evidence_bundle(who, status, content_type, clients, world):
    response = clients[who].post(
        _admin("consent_person_changelist"),
        {"action": "export_evidence_bundle", "_selected_action": [world.person.pk]},
    )

    assert (response.status_code, response["Content-Type"]) == (status, content_type)
    exported = AuditEvent.objects.filter(action="person.evidence_exported").exists()
    assert exported is (status == 200)


# --- Buttons on change pages ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "onboarding", "legal"),
    [
        ("draft", ["submit_for_review"], []),
        ("pending", [], ["approve_records", "reject_records"]),
        ("approved", [], ["revoke_consent"]),
    ],
)
def test_a_consent_page_offers_each_role_only_its_lifecycle_buttons(
    record, onboarding, legal, clients, world: World
):
    url = _admin("consent_consentrecord_change", getattr(world, record).pk)

    def buttons(who: str) -> list[str]:
        return [name for name, _ in clients[who].get(url).context["lifecycle_buttons"]]

    assert buttons("onboarding") == onboarding
    assert buttons("legal") == legal


def test_the_person_and_invitation_pages_offer_their_buttons_to_onboarding_only(
    clients, world: World
):
    never_invited = PersonFactory()
    person_url = _admin("consent_person_change", never_invited.pk)
    invitation_url = _admin("verification_verificationsession_change", world.invitation.pk)

    for who, may in (("onboarding", True), ("legal", False)):
        person_page = clients[who].get(person_url).context
        panel = clients[who].get(invitation_url).context["panel"]
        assert (person_page["can_invite"], person_page["can_upload_assets"]) == (may, may), who
        assert bool(panel["buttons"]) is may, who
        # The invitation's link and code let whoever holds them verify as the person.
        assert panel["show_secrets"] is may and ("link" in panel) is may, who


# --- What producers never see -----------------------------------------------------------------


def test_producers_see_display_names_never_contact_details_notes_documents_or_files(
    clients, world: World
):
    producer = clients["producer"]
    home = producer.get(_admin("index"), follow=True).content.decode()  # the references page
    page = producer.get(reverse("references:list")).content.decode()
    secrets = {
        "legal name": world.person.legal_name,
        "email": world.person.email,
        "phone": world.person.phone,
        "notes": world.person.notes,
        "file link": _admin("assets_asset_file", world.asset.pk),
        "stored file name": Path(world.asset.file.name).name,
        "signed document": _admin("consent_consentrecord_file", world.approved.pk),
        "person page": _admin("consent_person_change", world.person.pk),
    }

    assert producer.get(_admin("index"))["Location"] == reverse("references:list")
    assert world.person.display_name in page  # whose likeness each reference is
    assert [what for what, secret in secrets.items() if secret in home + page] == []


def test_staff_who_may_open_files_see_the_file_link_on_asset_and_group_pages(clients, world: World):
    file_url = _admin("assets_asset_file", world.asset.pk)

    for who in ("onboarding", "legal"):
        for url in (
            _admin("assets_asset_change", world.asset.pk),
            _admin("assets_assetgroup_change", world.group.pk),
            _admin("consent_person_change", world.person.pk),
        ):
            assert file_url in clients[who].get(url).content.decode(), (who, url)


def test_producers_hold_the_references_page_and_nothing_in_the_admin():
    # Not even view_asset: the admin's asset list shows the reference of any active asset,
    # one whose consent just ended included, and its copy button writes no ledger row.
    assert PRODUCERS.permissions == {"assets.view_references"}


def test_neither_onboarding_nor_producers_may_approve_reject_or_revoke():
    lifecycle = {"consent.review_consentrecord", "consent.revoke_consentrecord"}

    assert lifecycle <= LEGAL.permissions
    assert lifecycle.isdisjoint(ONBOARDING.permissions | PRODUCERS.permissions)


# --- setup_roles ------------------------------------------------------------------------------


def _group_permissions(name: str) -> set[str]:
    group = Group.objects.get(name=name)
    return {roles.permission_name(p) for p in group.permissions.select_related("content_type")}


def test_setup_roles_creates_each_group_with_exactly_its_permissions(capsys):
    call_command("setup_roles")

    assert {role.name: _group_permissions(role.name) for role in ROLES} == {
        role.name: set(role.permissions) for role in ROLES
    }
    assert "Onboarding: created with 23 permissions." in capsys.readouterr().out
    assert AuditEvent.objects.filter(action="role.permissions_set").count() == len(ROLES)


def test_setup_roles_run_again_changes_nothing(capsys):
    call_command("setup_roles")
    events = AuditEvent.objects.count()
    capsys.readouterr()

    call_command("setup_roles")

    assert Group.objects.count() == len(ROLES)
    assert AuditEvent.objects.count() == events
    assert capsys.readouterr().out.count("already has exactly its") == len(ROLES)


def test_setup_roles_takes_away_permissions_added_by_hand_and_puts_back_removed_ones(capsys):
    call_command("setup_roles")
    producers = Group.objects.get(name="Producers")
    producers.permissions.add(Permission.objects.get(codename="view_person"))
    producers.permissions.remove(Permission.objects.get(codename="view_references"))
    capsys.readouterr()

    call_command("setup_roles")

    assert _group_permissions("Producers") == set(PRODUCERS.permissions)
    output = capsys.readouterr().out
    assert "Producers: corrected to its 1 permission." in output
    assert "  + assets.view_references" in output and "  - consent.view_person" in output
    event = AuditEvent.objects.filter(action="role.permissions_set").order_by("-pk").first()
    assert event.detail == {
        "created": False,
        "added": ["assets.view_references"],
        "removed": ["consent.view_person"],
    }


def test_setup_roles_leaves_other_groups_and_the_members_of_its_own_alone():
    call_command("setup_roles")
    editors = Group.objects.create(name="Editors")
    editors.permissions.add(Permission.objects.get(codename="view_person"))
    member = UserFactory(username="a-member", password=None)
    member.groups.add(Group.objects.get(name="Legal"))

    call_command("setup_roles")

    assert _group_permissions("Editors") == {"consent.view_person"}
    assert list(member.groups.values_list("name", flat=True)) == ["Legal"]


def test_setup_roles_refuses_a_table_naming_unknown_permissions_and_changes_nothing(
    monkeypatch,
):
    typo = Role(
        name="Producers",
        summary="",
        permissions=frozenset({"assets.view_asset", "assets.view_referencez", "nope.view_x"}),
    )
    monkeypatch.setattr(
        setup_roles, "roles_apply", lambda: roles.roles_apply(roles=[ONBOARDING, typo])
    )

    with pytest.raises(CommandError, match=r"assets\.view_referencez, nope\.view_x\."):
        call_command("setup_roles")
    assert not Group.objects.exists()


def _portal_apps() -> list[str]:
    """The portal's own apps (the sandbox is a stand-in: nobody works in it)."""
    base = Path(settings.BASE_DIR)
    return [
        config.label
        for config in apps.get_app_configs()
        if Path(config.path).parent == base and config.label != "sandbox"
    ]


def test_every_view_and_custom_permission_of_the_portal_belongs_to_a_role():
    granted = set().union(*(role.permissions for role in ROLES))
    needed = set()
    for label in _portal_apps():
        for model in apps.get_app_config(label).get_models():
            opts = model._meta
            if "view" in opts.default_permissions:  # none: a table of the portal's own
                needed.add(f"{label}.view_{opts.model_name}")
            needed.update(f"{label}.{codename}" for codename, _ in opts.permissions)

    assert {"consent", "verification", "assets", "mail", "audit", "portal"} <= set(_portal_apps())
    # A new model or permission: decide which role needs it, in portal/roles.py.
    assert sorted(needed - granted) == []


# --- Each role's work on the admin home -------------------------------------------------------


def _queue_rows(today: datetime.date) -> None:
    """One row in each queue, and rows beside each that are in none."""
    VerificationSessionFactory()  # waiting
    VerificationSessionFactory(status=InvitationStatus.FAILED)
    VerificationSessionFactory(status=InvitationStatus.EXPIRED)
    # Still open, but past its lifetime before beat's sweep ends it: expired as well.
    VerificationSessionFactory(expires_at=timezone.now() - datetime.timedelta(minutes=1))
    VerificationSessionFactory(verified=True)
    AssetFactory(status=Asset.Status.FAILED)
    AssetFactory(active=True)
    ConsentRecordFactory(status=ConsentStatus.PENDING_REVIEW)
    ConsentRecordFactory()  # a draft
    ConsentRecordFactory(approved=True, expires_on=today + datetime.timedelta(days=30))
    ConsentRecordFactory(approved=True, expires_on=today + datetime.timedelta(days=31))
    _withdrawal()  # not confirmed upstream yet
    Withdrawal.objects.filter(pk=_withdrawal().pk).update(confirmed_at=timezone.now())


def _work(client: Client) -> dict[str, dict[str, int | None]]:
    response = client.get(_admin("index"))
    assert response.status_code == 200
    return {
        role_work.role: {item.title: item.count for item in role_work.items}
        for role_work in response.context["work"]
    }


def test_each_role_sees_its_own_work_queues_with_their_counts(clients):
    _queue_rows(timezone.localdate())
    onboarding = {
        "People invited, not verified yet": 1,
        "People whose verification failed": 1,
        "People whose invitation expired unused": 2,
        "Failed uploads": 1,
    }
    legal = {
        "Consent records waiting for review": 1,
        "Consents ending within 30 days": 1,
        "Withdrawals not yet confirmed upstream": 1,
    }

    assert _work(clients["onboarding"]) == {"Onboarding": onboarding}
    assert _work(clients["legal"]) == {"Legal": legal}
    producers = {"The references page: copy asset:// references": None}

    # Producers never see the admin home: it sends them on to that page.
    assert clients["producer"].get(_admin("index"))["Location"] == reverse("references:list")
    assert _work(clients["superuser"]) == {
        "Onboarding": onboarding,
        "Legal": legal,
        "Producers": producers,
    }


def test_the_work_queues_come_first_on_the_admin_home(clients):
    html = clients["legal"].get(_admin("index")).content.decode()

    assert html.index('id="work-queues"') < html.index('class="app-')
    assert "Consent records waiting for review" in html


def test_each_queue_links_to_the_list_of_exactly_the_rows_it_counts(clients):
    _queue_rows(timezone.localdate())
    client = clients["superuser"]
    response = client.get(_admin("index"))

    for role_work in response.context["work"]:
        for item in role_work.items:
            page = client.get(item.url)
            assert page.status_code == 200, item.url
            if item.count is not None:  # a queue, not a link to a page
                assert page.context["cl"].result_count == item.count, item.title
                assert item.count > 0, item.title


def test_the_admin_home_runs_the_same_number_of_queries_for_1_and_10_rows_per_queue(
    clients, django_assert_max_num_queries
):
    today = timezone.localdate()
    _queue_rows(today)
    client = clients["superuser"]
    with CaptureQueriesContext(connection) as one_row:
        client.get(_admin("index"))

    for _ in range(9):
        _queue_rows(today)
    with django_assert_max_num_queries(len(one_row.captured_queries)):
        work = _work(client)
    assert work["Legal"]["Consent records waiting for review"] == 10


def test_work_of_a_model_or_page_this_deployment_lacks_is_not_shown(clients, monkeypatch):
    missing = Role(
        name="Later",
        summary="",
        permissions=frozenset(),
        work=(
            WorkQueue("Not here yet", "withdrawals.withdrawal", "consent.view_person",
                      params=lambda today: {}),
            WorkLink("No such page", "nowhere:index", "consent.view_person"),
            WorkLink("Here", "admin:consent_person_changelist", "consent.view_person"),
        ),
    )  # fmt: skip
    monkeypatch.setattr(admin_site, "ROLES", [missing])

    assert _work(clients["superuser"]) == {"Later": {"Here": None}}
    no_permission = Client()
    no_permission.force_login(UserFactory(username="no-permission"))
    assert _work(no_permission) == {}


def test_the_verification_state_reads_each_persons_latest_invitation_once():
    # Onboarding's three people queues count by it: with the state worked out outside the
    # subquery, PostgreSQL ran one subquery per CASE branch (550 ms instead of 90 ms for the
    # admin home with 5,000 people).
    people = admin_views.with_verification_state(Person.objects.all())

    sql = str(people.filter(verification_state="failed").values("pk").query)

    assert sql.count('FROM "verification_verificationsession"') == 1
