"""The person page shows another model's rows only to users who may view that model."""

from __future__ import annotations

import posixpath

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from tests.factories import AssetFactory, AssetGroupFactory, UserFactory, VerificationSessionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def asset():
    session = VerificationSessionFactory(consent__consent_text_version="2026.7-secret-terms")
    group = AssetGroupFactory(person=session.person, group_id="group-20261124-hidden")
    return AssetFactory(active=True, group=group, original_filename="jane-front-private.png")


def _client_with(client: Client, *codenames: str) -> Client:
    user = UserFactory(username="+".join(codenames))
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def _person_page(client: Client, asset) -> str:
    response = client.get(reverse("admin:consent_person_change", args=[asset.group.person_id]))
    assert response.status_code == 200
    return response.content.decode()


def _traces_of(asset) -> dict[str, str]:
    """What each related model would give away on the person page."""
    session = asset.group.person.verification_sessions.get()
    return {
        "asset reference": asset.upstream_id,
        "asset file name": asset.original_filename,
        "stored file name": posixpath.basename(asset.file.name),
        "asset file link": reverse("admin:assets_asset_file", args=[asset.pk]),
        "group id": asset.group.group_id,
        "consent version": session.consent.consent_text_version,
        "verification inline": "Invitations",
        "consent in force": "Consent in force today",
    }


def test_a_user_who_may_only_view_people_sees_no_related_rows(client: Client, asset):
    page = _person_page(_client_with(client, "view_person"), asset)

    assert asset.group.person.legal_name in page
    leaked = [what for what, trace in _traces_of(asset).items() if trace in page]
    assert leaked == []


def test_each_inline_follows_the_view_permission_of_its_own_model(client: Client, asset):
    page = _person_page(_client_with(client, "view_person", "view_consentrecord"), asset)
    traces = _traces_of(asset)

    assert traces["consent version"] in page
    assert traces["consent in force"] in page
    assert traces["group id"] not in page
    assert traces["verification inline"] not in page


def test_the_asset_list_needs_view_permission_on_assets_and_their_groups(client: Client, asset):
    assets_only = _person_page(_client_with(client, "view_person", "view_asset"), asset)
    client.logout()
    both = _person_page(_client_with(client, "view_person", "view_asset", "view_assetgroup"), asset)
    traces = _traces_of(asset)

    # The asset list names each asset's group: without view_assetgroup it is not shown.
    assert traces["group id"] not in assets_only
    assert traces["asset reference"] not in assets_only
    assert traces["asset reference"] in both
    assert traces["group id"] in both
    # Viewing assets is not opening their files: that takes view_asset_file.
    assert traces["asset file link"] not in both


def test_the_asset_list_links_the_files_for_staff_who_may_open_them(client: Client, asset):
    page = _person_page(
        _client_with(client, "view_person", "view_asset", "view_assetgroup", "view_asset_file"),
        asset,
    )
    traces = _traces_of(asset)

    assert traces["asset file link"] in page
    assert traces["asset reference"] in page


def test_the_people_list_shows_counts_only_of_models_the_user_may_view(client: Client, asset):
    url = reverse("admin:consent_person_changelist")
    related = {"consent_in_force", "consent_count", "active_asset_count"}

    limited = _client_with(client, "view_person").get(url)
    client.logout()
    trusted = _client_with(client, "view_person", "view_consentrecord", "view_asset").get(url)

    assert related.isdisjoint(limited.context["cl"].list_display)
    assert related <= set(trusted.context["cl"].list_display)
