"""``manage.py seed_demo``: demo data with real images, safe to run twice, DEBUG only."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from PIL import Image

from assets.models import Asset
from consent.models import ConsentRecord, Person
from upstream import AnyfastClient
from verification.models import VerificationSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(settings, capsys) -> str:
    settings.DEBUG = True
    call_command("seed_demo")
    return capsys.readouterr().out


def test_seed_demo_makes_people_in_every_consent_state_and_prints_the_login(seeded: str):
    statuses = set(ConsentRecord.objects.values_list("status", flat=True))

    assert statuses == {"draft", "pending_review", "approved", "revoked"}
    assert ConsentRecord.objects.get(status="revoked").revocation_reason
    # Only the person with consent in force was invited (and verified): verification collects
    # biometric data, so nobody is invited before their consent is approved.
    assert VerificationSession.objects.count() == 1
    login = RequestFactory().post("/admin/login/")  # django-axes needs the request
    assert authenticate(login, username="admin", password="admin").is_superuser
    assert "http://127.0.0.1:8000/admin/" in seeded
    assert "Password: admin" in seeded


def test_seed_demo_makes_one_staff_user_per_role_and_prints_their_logins(seeded: str):
    for username, group in (
        ("onboarding", "Onboarding"),
        ("legal", "Legal"),
        ("producer", "Producers"),
    ):
        login = RequestFactory().post("/admin/login/")
        user = authenticate(login, username=username, password=username)

        assert user is not None and user.is_staff and not user.is_superuser
        assert list(user.groups.values_list("name", flat=True)) == [group]
        assert f"{group + ':':<12}{username}" in seeded


def test_seed_demo_assets_are_real_active_images(seeded: str):
    assets = list(Asset.objects.all())

    assert len(assets) == 2
    for asset in assets:
        assert asset.status == Asset.Status.ACTIVE
        assert asset.asset_uri.startswith("asset://asset-")
        with asset.file.open("rb") as file, Image.open(file) as image:
            assert image.format == "JPEG"
            assert image.size == (asset.width, asset.height)


def test_seed_demo_can_run_again_without_duplicating_anything(seeded: str, capsys):
    counts = (Person.objects.count(), ConsentRecord.objects.count(), Asset.objects.count())

    call_command("seed_demo")

    assert (Person.objects.count(), ConsentRecord.objects.count(), Asset.objects.count()) == counts


def test_seed_demo_refuses_to_run_without_debug(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="only with DEBUG=true"):
        call_command("seed_demo")
    assert not Person.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_seed_demo_references_are_active_in_the_sandbox(settings, live_server):
    settings.DEBUG = True
    settings.ANYFAST_BASE_URL = f"{live_server.url}/sandbox"
    settings.ANYFAST_RATE_LIMIT_ENABLED = False
    call_command("seed_demo")
    client = AnyfastClient()

    for asset in Asset.objects.select_related("group"):
        upstream = client.get_asset(asset.upstream_id, group_id=asset.group.group_id)
        assert upstream.is_active
        assert upstream.asset_uri == asset.asset_uri
        assert upstream.name == asset.upstream_name
