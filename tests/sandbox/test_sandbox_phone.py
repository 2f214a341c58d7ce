"""The phone page behind H5Link: pick a face or upload a selfie, then Complete or Fail."""

from __future__ import annotations

import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from sandbox.models import GroupType, SandboxGroup, SandboxSession
from sandbox.samples import make_audio, make_image
from sandbox.testing import call

pytestmark = pytest.mark.django_db

CALLBACK = "http://testserver/verification/done?invite=abc"


@pytest.fixture(autouse=True)
def sandbox_settings(settings):
    settings.PORTAL_PUBLIC_URL = "http://testserver"
    settings.SANDBOX_ENFORCE_RATE_LIMITS = False
    settings.SANDBOX_H5_LINK_TTL = 120
    settings.SANDBOX_TOKEN_TTL = 1800


def _h5_path(client) -> tuple[str, str]:
    """A new session's H5 link (as a path the test client can open) and its token."""
    body = call(client, "CreateVisualValidateSession", {"CallbackURL": CALLBACK}).json()
    return body["H5Link"].removeprefix("http://testserver"), body["BytedToken"]


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_page_shows_the_session_and_the_identities(client):
    with time_machine.travel(
        datetime.datetime(2026, 11, 24, 10, 0, tzinfo=datetime.UTC), tick=False
    ):
        path, token = _h5_path(client)
        response = client.get(path)

    assert response.status_code == 200
    html = response.content.decode()
    assert '<meta name="viewport"' in html
    assert token[-6:] in html
    assert "Link valid for" in html
    assert 'data-seconds="120"' in html
    assert "2026-11-24 18:00:00 (UTC+8)" in html
    for identity in ("ada", "grace", "linus"):
        assert f'value="{identity}"' in html
    assert "csrfmiddlewaretoken" in html
    assert SandboxSession.objects.get().link_opened_at is not None


@pytest.mark.parametrize(
    ("lng", "text"), [("en", "Complete"), ("zh", "完成"), ("zh-Hant", "真人認證"), ("", "真人认证")]
)
def test_page_speaks_the_lng_language(client, lng, text):
    path, _ = _h5_path(client)
    path = path.replace("lng=en", f"lng={lng}")
    assert text in client.get(path).content.decode()


def test_complete_creates_the_group_and_redirects_to_the_callback(client):
    path, token = _h5_path(client)

    response = client.post(path, {"decision": "complete", "identity": "grace"}, follow=True)

    final_url, status = response.redirect_chain[-1]
    assert status == 302
    assert final_url.startswith("http://testserver/verification/done?")
    assert _query(final_url) == {
        "invite": ["abc"],
        "bytedToken": [token],
        "resultCode": ["10000"],
        "algorithmBaseRespCode": ["0"],
        "reqMeasureInfoValue": ["1"],
        "verify_type": ["real_time"],
    }
    group = SandboxGroup.objects.get()
    assert group.group_type == GroupType.LIVENESS_FACE
    assert group.verified_identity == "grace"
    session = SandboxSession.objects.get()
    assert session.group == group
    assert session.result_code == "10000"
    result = call(client, "GetVisualValidateResult", {"BytedToken": token}).json()
    assert result == {"GroupId": group.group_id}


def test_fail_redirects_with_a_failure_code_and_creates_no_group(client):
    path, token = _h5_path(client)

    response = client.post(path, {"decision": "fail"}, follow=True)

    final_url, _ = response.redirect_chain[-1]
    query = _query(final_url)
    assert query["resultCode"] == ["10001"]
    assert query["bytedToken"] == [token]
    assert query["reqMeasureInfoValue"] == ["0"]
    assert not SandboxGroup.objects.exists()
    assert call(client, "GetVisualValidateResult", {"BytedToken": token}).json() == {"GroupId": ""}


def test_the_link_works_once(client):
    path, _ = _h5_path(client)
    assert client.post(path, {"decision": "complete", "identity": "ada"}).status_code == 302

    again = client.get(path)
    resubmitted = client.post(path, {"decision": "complete", "identity": "ada"})

    assert again.status_code == 410
    assert "This link has expired or was already used" in again.content.decode()
    assert resubmitted.status_code == 410
    assert SandboxGroup.objects.count() == 1


def test_the_link_expires_after_its_lifetime(client):
    start = datetime.datetime(2026, 11, 24, 10, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False):
        path, _ = _h5_path(client)
    with time_machine.travel(start + datetime.timedelta(seconds=119), tick=False):
        assert client.get(path).status_code == 200
    with time_machine.travel(start + datetime.timedelta(seconds=120), tick=False):
        assert client.get(path).status_code == 410
        response = client.post(path, {"decision": "complete", "identity": "ada"})
    assert response.status_code == 410
    assert not SandboxGroup.objects.exists()


def test_a_wrong_token_or_link_is_404(client):
    path, token = _h5_path(client)
    assert client.get(path.replace(token, "2026" + "0" * 30)).status_code == 404
    assert client.get("/sandbox/h5/unknown?bytedToken=x").status_code == 404


def test_the_form_is_csrf_protected():
    client = Client(enforce_csrf_checks=True)
    path, _ = _h5_path(client)
    assert client.post(path, {"decision": "complete", "identity": "ada"}).status_code == 403
    assert not SandboxGroup.objects.exists()


def test_a_marked_selfie_decides_the_identity(client):
    path, _ = _h5_path(client)
    selfie = SimpleUploadedFile("me.jpg", make_image(width=600, height=800, face="linus"))

    client.post(path, {"decision": "complete", "identity": "ada", "selfie": selfie})

    assert SandboxGroup.objects.get().verified_identity == "linus"


def test_an_unmarked_selfie_becomes_a_new_person(client):
    identities = set()
    for _ in range(2):
        path, _ = _h5_path(client)
        selfie = SimpleUploadedFile("me.jpg", make_image(width=600, height=800))
        client.post(path, {"decision": "complete", "selfie": selfie})
        identities.add(SandboxSession.objects.filter(group__isnull=False).first().identity)
        SandboxSession.objects.all().delete()
    assert len(identities) == 2
    assert all(identity.startswith("selfie-") for identity in identities)


def test_a_selfie_with_several_faces_cannot_verify(client):
    path, _ = _h5_path(client)
    selfie = SimpleUploadedFile("us.jpg", make_image(width=600, height=800, face="crowd"))

    response = client.post(path, {"decision": "complete", "selfie": selfie})

    assert response.status_code == 400
    assert "Several faces were detected" in response.content.decode()
    assert not SandboxGroup.objects.exists()
    assert SandboxSession.objects.get().link_used_at is None


def test_a_selfie_that_is_not_a_photo_is_refused(client):
    path, _ = _h5_path(client)
    selfie = SimpleUploadedFile("me.wav", make_audio(seconds=2))
    response = client.post(path, {"decision": "complete", "selfie": selfie})
    assert response.status_code == 400
    assert not SandboxGroup.objects.exists()


def test_complete_without_an_identity_asks_for_one(client):
    path, _ = _h5_path(client)
    response = client.post(path, {"decision": "complete"})
    assert response.status_code == 400
    assert "Choose a face or upload a selfie." in response.content.decode()


def test_the_callback_urls_own_query_is_kept_byte_for_byte(client):
    callback = "http://testserver/verification/done?flag&sig=a%20b+c&x=1"
    body = call(client, "CreateVisualValidateSession", {"CallbackURL": callback}).json()
    path = body["H5Link"].removeprefix("http://testserver")

    response = client.post(path, {"decision": "fail"})

    assert response["Location"].startswith(f"{callback}&bytedToken={body['BytedToken']}&")
