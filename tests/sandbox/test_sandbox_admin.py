"""The sandbox's read-only admin: changelists, detail pages and the counter reset action."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sandbox import counters
from sandbox.models import (
    ActionCounter,
    RateLimitWindow,
    SandboxAsset,
    SandboxGroup,
    SandboxSession,
)
from sandbox.testing import call, complete_session

pytestmark = pytest.mark.django_db

MODELS = [SandboxSession, SandboxGroup, SandboxAsset, ActionCounter, RateLimitWindow]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # admin_client's superuser is made with a password; the default hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def rows(client, settings):
    """One row of every sandbox model, made through the API."""
    settings.SANDBOX_ENFORCE_RATE_LIMITS = True
    token = call(
        client, "CreateVisualValidateSession", {"CallbackURL": "https://portal.test/"}
    ).json()["BytedToken"]
    group = SandboxGroup.objects.get(group_id=complete_session(token))
    SandboxAsset.objects.create(
        asset_id="asset-20261124120000-abcde",
        group=group,
        name="face",
        asset_type="Image",
        source_url="https://portal.test/x.jpg",
        ready_at=group.created_at,
    )


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:sandbox_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", MODELS)
def test_changelist_renders(admin_client, rows, model):
    response = admin_client.get(_url(model, "changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_detail_page_renders_read_only(admin_client, rows, model):
    obj = model.objects.first()
    response = admin_client.get(_url(model, "change", obj.pk))
    assert response.status_code == 200
    assert b'type="submit" value="Save"' not in response.content


@pytest.mark.parametrize("model", MODELS)
def test_nothing_can_be_added_by_hand(admin_client, model):
    assert admin_client.get(_url(model, "add")).status_code == 403


def test_reset_counters_action(admin_client, rows):
    assert counters.snapshot()
    response = admin_client.post(
        _url(ActionCounter, "changelist"),
        {
            "action": "reset_counters",
            "_selected_action": [ActionCounter.objects.first().pk],
        },
        follow=True,
    )
    assert response.status_code == 200
    assert counters.snapshot() == {}
