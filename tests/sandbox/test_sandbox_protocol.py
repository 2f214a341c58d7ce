"""The sandbox's wire protocol, action by action, through Django's test client.

CreateAsset, which downloads a URL for real, is covered in test_sandbox_create_asset.py.
"""

from __future__ import annotations

import datetime
import re

import pytest
import time_machine
from django.utils import timezone

from sandbox.models import GroupType, SandboxAsset, SandboxGroup, SandboxSession
from sandbox.testing import DEFAULT_KEY, call, complete_session, fail_session
from upstream import key_fingerprint

pytestmark = pytest.mark.django_db

KEY = DEFAULT_KEY
OTHER_KEY = "sk-direct-bob"
AIGC_KEY = "sk-aigc-carol"


@pytest.fixture(autouse=True)
def no_rate_limits(settings):
    settings.SANDBOX_ENFORCE_RATE_LIMITS = False
    settings.PORTAL_PUBLIC_URL = "https://portal.test"


def _session(client, key: str = KEY, callback: str = "https://portal.test/cb") -> dict:
    response = call(client, "CreateVisualValidateSession", {"CallbackURL": callback}, key=key)
    assert response.status_code == 200
    return response.json()


def _verified_group(client, key: str = KEY, identity: str = "ada") -> str:
    return complete_session(_session(client, key)["BytedToken"], identity=identity)


def _aigc_group(client, key: str = KEY, name: str = "stills") -> str:
    response = call(client, "CreateAssetGroup", {"model": "volc-asset", "Name": name}, key=key)
    assert response.status_code == 200
    return response.json()["Id"]


def _asset(group_id: str, name: str, *, outcome: str = "Active", ready_in: float = 0) -> str:
    """An asset row as CreateAsset leaves it, without a download."""
    now = timezone.now()
    asset = SandboxAsset.objects.create(
        asset_id=f"asset-20261124120000-{SandboxAsset.objects.count():05d}",
        group=SandboxGroup.objects.get(group_id=group_id),
        name=name,
        asset_type="Image",
        source_url="https://portal.test/files/x.jpg",
        outcome=outcome,
        error_code="FaceMismatch" if outcome == "Failed" else "",
        error_message="Face consistency verification failed." if outcome == "Failed" else "",
        created_at=now,
        updated_at=now,
        ready_at=now + datetime.timedelta(seconds=ready_in),
    )
    return asset.asset_id


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "code"}
    return body["error"]


# --- Gateway: keys, JSON, unknown actions -----------------------------------------------------


def test_missing_key_is_refused_with_401(client):
    response = client.post(
        "/sandbox/volc/asset/GetAsset", data="{}", content_type="application/json"
    )
    assert response.status_code == 401
    assert _error(response)["message"] == "No token provided"


def test_non_bearer_authorization_is_refused_with_401(client):
    response = client.post(
        "/sandbox/volc/asset/GetAsset",
        data="{}",
        content_type="application/json",
        headers={"Authorization": "Basic abc"},
    )
    assert response.status_code == 401
    assert _error(response)["message"] == "Invalid token"


def test_malformed_json_is_refused_with_400(client):
    response = client.post(
        "/sandbox/volc/asset/GetAsset",
        data="{not json",
        content_type="application/json",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_json"


def test_json_that_is_not_an_object_is_refused_with_400(client):
    response = client.post(
        "/sandbox/volc/asset/GetAsset",
        data="[1, 2]",
        content_type="application/json",
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == 400


def test_unknown_action_is_404(client):
    response = call(client, "StealAssets", {})
    assert response.status_code == 404
    assert "Invalid URL" in _error(response)["message"]


def test_get_is_not_allowed(client):
    assert client.get("/sandbox/volc/asset/GetAsset").status_code == 405


# --- Verification sessions --------------------------------------------------------------------


def test_create_session_answers_token_callback_and_h5_link(client):
    with time_machine.travel(datetime.datetime(2026, 11, 24, 4, 5, 6, tzinfo=datetime.UTC)):
        body = _session(client, callback="https://portal.test/cb?x=1")

    assert set(body) == {"BytedToken", "CallbackURL", "H5Link"}
    # 14-digit UTC+8 timestamp and 20 uppercase hex digits.
    assert re.fullmatch(r"20261124120506[0-9A-F]{20}", body["BytedToken"])
    assert body["CallbackURL"] == "https://portal.test/cb?x=1"
    link_id = SandboxSession.objects.get().link_id
    assert body["H5Link"] == (
        f"https://portal.test/sandbox/h5/{link_id}?bytedToken={body['BytedToken']}&lng=en"
    )


def test_session_stores_a_fingerprint_of_the_key_never_the_key(client):
    _session(client)
    session = SandboxSession.objects.get()
    assert session.owner_fingerprint == key_fingerprint(KEY)
    assert KEY not in str(SandboxSession.objects.values().get())


def test_create_session_without_callback_url_is_refused(client):
    response = call(client, "CreateVisualValidateSession", {})
    assert response.status_code == 400
    assert _error(response)["message"] == (
        "upstream_error: [***.CallbackURL] The required parameter CallbackURL is missing."
    )


def test_create_session_with_a_non_http_callback_is_refused(client):
    response = call(client, "CreateVisualValidateSession", {"CallbackURL": "javascript:alert(1)"})
    assert response.status_code == 400
    assert _error(response)["code"] == "InvalidParameter.CallbackURL"


def test_result_is_empty_until_the_person_completes_then_the_group(client):
    token = _session(client)["BytedToken"]
    pending = call(client, "GetVisualValidateResult", {"BytedToken": token})
    assert pending.status_code == 200
    assert pending.json() == {"GroupId": ""}

    group_id = complete_session(token, identity="ada")

    done = call(client, "GetVisualValidateResult", {"BytedToken": token})
    assert done.json() == {"GroupId": group_id}
    assert re.fullmatch(r"group-\d{14}-[a-z0-9]{5}", group_id)
    group = SandboxGroup.objects.get(group_id=group_id)
    assert group.group_type == GroupType.LIVENESS_FACE
    assert group.verified_identity == "ada"
    # Queries do not consume the token.
    assert call(client, "GetVisualValidateResult", {"BytedToken": token}).json() == done.json()


def test_result_stays_empty_after_a_failed_verification(client):
    token = _session(client)["BytedToken"]
    fail_session(token)
    response = call(client, "GetVisualValidateResult", {"BytedToken": token})
    assert response.json() == {"GroupId": ""}
    assert not SandboxGroup.objects.exists()


def test_result_answers_expired_after_the_token_lifetime(client, settings):
    settings.SANDBOX_TOKEN_TTL = 1800
    start = datetime.datetime(2026, 11, 24, 10, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False):
        token = _session(client)["BytedToken"]
        complete_session(token)
    with time_machine.travel(start + datetime.timedelta(seconds=1799), tick=False):
        assert call(client, "GetVisualValidateResult", {"BytedToken": token}).status_code == 200
    with time_machine.travel(start + datetime.timedelta(seconds=1800), tick=False):
        response = call(client, "GetVisualValidateResult", {"BytedToken": token})
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "InvalidParameter.BytedToken"
    assert error["message"].endswith("has expired.")


def test_result_of_an_unknown_token_is_not_found(client):
    response = call(client, "GetVisualValidateResult", {"BytedToken": "2026" + "0" * 30})
    assert response.status_code == 404
    assert _error(response)["code"] == "NotFound.BytedToken"


def test_result_of_another_keys_token_is_not_found(client):
    token = _session(client, KEY)["BytedToken"]
    response = call(client, "GetVisualValidateResult", {"BytedToken": token}, key=OTHER_KEY)
    assert response.status_code == 404


def test_result_without_token_is_a_missing_parameter(client):
    response = call(client, "GetVisualValidateResult", {})
    assert response.status_code == 400
    assert _error(response)["code"] == "MissingParameter.BytedToken"


# --- AIGC-only keys ---------------------------------------------------------------------------

AIGC_MESSAGE = "upstream_error: [InvalidParameter.GroupType] GroupType must be one of [AIGC]"


def test_aigc_key_cannot_create_a_verification_session(client):
    response = call(
        client, "CreateVisualValidateSession", {"CallbackURL": "https://x.test"}, key=AIGC_KEY
    )
    assert response.status_code == 400
    assert _error(response)["message"] == AIGC_MESSAGE


def test_aigc_key_cannot_create_an_asset_in_a_liveness_group(client):
    group_id = _verified_group(client)
    body = {
        "model": "volc-asset",
        "GroupId": group_id,
        "Name": "x",
        "AssetType": "Image",
        "URL": "https://portal.test/files/x.jpg",
    }

    response = call(client, "CreateAsset", body, key=AIGC_KEY)

    assert response.status_code == 400
    assert _error(response)["message"] == AIGC_MESSAGE


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("ListAssets", {"Filter": {"GroupType": "LivenessFace"}}),
        ("ListAssetGroups", {"Filter": {"GroupType": "LivenessFace"}}),
    ],
)
def test_aigc_key_may_list_liveness_face_and_sees_nothing(client, action, body):
    """The guide refuses such keys verification sessions only: a read succeeds, proving nothing
    about the key's token group."""
    _asset(_verified_group(client), "face")

    response = call(client, action, body, key=AIGC_KEY)

    assert response.status_code == 200
    assert response.json()["Items"] == [] and response.json()["TotalCount"] == 0


def test_aigc_key_is_answered_not_found_for_another_keys_liveness_objects(client):
    started = _session(client)
    group_id = _verified_group(client)
    asset_id = _asset(group_id, "face")
    for action, body, code in [
        ("GetVisualValidateResult", {"BytedToken": started["BytedToken"]}, "NotFound.BytedToken"),
        ("DeleteAssetGroup", {"Id": group_id}, "NotFound.group_id"),
        ("GetAsset", {"Id": asset_id}, "NotFound.asset_id"),
        ("DeleteAsset", {"Id": asset_id}, "NotFound.asset_id"),
    ]:
        response = call(client, action, body, key=AIGC_KEY)
        assert response.status_code == 404, action
        assert _error(response)["code"] == code


def test_aigc_key_works_with_aigc_groups(client):
    group_id = _aigc_group(client, key=AIGC_KEY)
    response = call(client, "ListAssetGroups", {"Filter": {"GroupType": "AIGC"}}, key=AIGC_KEY)
    assert [item["Id"] for item in response.json()["Items"]] == [group_id]


# --- Groups -----------------------------------------------------------------------------------


def test_create_asset_group_makes_an_aigc_group(client):
    group_id = _aigc_group(client, name="stills")
    group = SandboxGroup.objects.get(group_id=group_id)
    assert group.group_type == GroupType.AIGC
    assert group.name == "stills"


def test_create_asset_group_refuses_liveness_face(client):
    response = call(client, "CreateAssetGroup", {"Name": "x", "GroupType": "LivenessFace"})
    assert response.status_code == 400
    assert _error(response)["code"] == "InvalidParameter.GroupType"


def test_liveness_groups_never_appear_in_list_asset_groups(client):
    liveness_id = _verified_group(client)
    aigc_id = _aigc_group(client)

    listed = call(client, "ListAssetGroups", {"Filter": {"GroupType": "AIGC"}}).json()
    by_id = call(
        client,
        "ListAssetGroups",
        {"Filter": {"GroupType": "LivenessFace", "GroupIds": [liveness_id]}},
    ).json()

    assert [item["Id"] for item in listed["Items"]] == [aigc_id]
    assert listed["TotalCount"] == 1
    assert by_id["Items"] == []
    item = listed["Items"][0]
    assert set(item) == {
        "Id",
        "Name",
        "Title",
        "Description",
        "GroupType",
        "ProjectName",
        "CreateTime",
        "UpdateTime",
    }


def test_list_asset_groups_only_shows_the_callers_groups(client):
    _aigc_group(client, key=OTHER_KEY)
    assert call(client, "ListAssetGroups", {}).json()["Items"] == []


def test_update_asset_group_renames_it(client):
    group_id = _aigc_group(client)
    response = call(client, "UpdateAssetGroup", {"Id": group_id, "Name": "renamed"})
    assert response.json() == {"Id": group_id}
    assert SandboxGroup.objects.get(group_id=group_id).name == "renamed"


def test_delete_asset_group_deletes_its_assets(client):
    group_id = _verified_group(client)
    asset_id = _asset(group_id, "face")

    response = call(client, "DeleteAssetGroup", {"Id": group_id})

    assert response.status_code == 200
    assert response.json() == {"Id": group_id, "Deleted": True}
    assert not SandboxAsset.objects.exists()
    assert call(client, "GetAsset", {"Id": asset_id}).status_code == 404
    assert call(client, "DeleteAssetGroup", {"Id": group_id}).status_code == 404


def test_another_key_cannot_touch_a_group(client):
    group_id = _verified_group(client, KEY)
    response = call(client, "DeleteAssetGroup", {"Id": group_id}, key=OTHER_KEY)
    assert response.status_code == 404
    assert _error(response)["message"] == (
        f"upstream_error: [NotFound.group_id] The specified asset_group {group_id} is not found."
    )
    assert SandboxGroup.objects.filter(group_id=group_id).exists()


# --- Assets -----------------------------------------------------------------------------------


def test_get_asset_describes_the_asset(client):
    group_id = _verified_group(client)
    with time_machine.travel(datetime.datetime(2026, 11, 24, 4, 0, tzinfo=datetime.UTC)):
        asset_id = _asset(group_id, "portrait-front", ready_in=4)
    with time_machine.travel(datetime.datetime(2026, 11, 24, 4, 1, tzinfo=datetime.UTC)):
        response = call(client, "GetAsset", {"Id": asset_id})

    assert response.status_code == 200
    body = response.json()
    assert list(body) == [
        "Id",
        "Name",
        "URL",
        "AssetType",
        "GroupId",
        "Status",
        "ProjectName",
        "CreateTime",
        "UpdateTime",
    ]
    assert body["Id"] == asset_id
    assert body["Name"] == "portrait-front"
    assert body["GroupId"] == group_id
    assert body["Status"] == "Active"
    assert body["ProjectName"] == "default"
    assert body["CreateTime"] == "2026-11-24T04:00:00Z"
    assert body["UpdateTime"] == "2026-11-24T04:00:04Z"
    assert body["URL"].startswith("https://") and "X-Tos-Expires=43200" in body["URL"]


def test_get_asset_reports_processing_then_the_outcome(client):
    group_id = _verified_group(client)
    start = datetime.datetime(2026, 11, 24, 4, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False):
        asset_id = _asset(group_id, "face", outcome="Failed", ready_in=4)
        processing = call(client, "GetAsset", {"Id": asset_id}).json()
    with time_machine.travel(start + datetime.timedelta(seconds=4), tick=False):
        failed = call(client, "GetAsset", {"Id": asset_id}).json()

    assert processing["Status"] == "Processing"
    assert "Error" not in processing
    assert failed["Status"] == "Failed"
    assert failed["Error"] == {
        "Code": "FaceMismatch",
        "Message": "Face consistency verification failed.",
    }


def test_get_asset_of_another_key_or_unknown_is_not_found(client):
    asset_id = _asset(_verified_group(client, KEY), "face")
    for key, wanted in [(OTHER_KEY, asset_id), (KEY, "asset-20990101000000-zzzzz")]:
        response = call(client, "GetAsset", {"Id": wanted}, key=key)
        assert response.status_code == 404
        assert _error(response)["message"] == (
            f"upstream_error: [NotFound.asset_id] The specified asset {wanted} is not found."
        )


def test_list_assets_requires_group_type(client):
    response = call(client, "ListAssets", {"model": "volc-asset", "Filter": {}})
    assert response.status_code == 400
    assert _error(response)["message"] == "GroupType is missing"


def test_list_assets_filters_by_group_name_and_status(client):
    group_id = _verified_group(client)
    other_group = _verified_group(client, identity="grace")
    active = _asset(group_id, "tcp-front")
    _asset(group_id, "tcp-side", ready_in=60)
    failed = _asset(group_id, "other", outcome="Failed")
    _asset(other_group, "tcp-elsewhere")

    def ids(filters: dict) -> list[str]:
        body = {"Filter": {"GroupType": "LivenessFace", "GroupIds": [group_id], **filters}}
        response = call(client, "ListAssets", body)
        assert response.status_code == 200
        return sorted(item["Id"] for item in response.json()["Items"])

    assert len(ids({})) == 3
    assert ids({"Name": "front"}) == [active]
    assert ids({"Statuses": ["Failed"]}) == [failed]
    assert len(ids({"Statuses": ["Processing", "Active"]})) == 2
    aigc = call(client, "ListAssets", {"Filter": {"GroupType": "AIGC"}}).json()
    assert aigc["Items"] == []


def test_list_assets_pages(client):
    group_id = _verified_group(client)
    for index in range(5):
        _asset(group_id, f"a{index}")
    body = {"Filter": {"GroupType": "LivenessFace"}, "PageNumber": 2, "PageSize": 2}
    page = call(client, "ListAssets", body).json()
    assert page["PageNumber"] == 2
    assert page["PageSize"] == 2
    assert page["TotalCount"] == 5
    assert len(page["Items"]) == 2


@pytest.mark.parametrize(
    ("field", "value"), [("PageSize", 101), ("PageSize", 0), ("PageNumber", 0), ("PageNumber", "1")]
)
def test_list_assets_refuses_bad_paging(client, field, value):
    body = {"Filter": {"GroupType": "LivenessFace"}, field: value}
    response = call(client, "ListAssets", body)
    assert response.status_code == 400
    assert _error(response)["code"] == f"InvalidParameter.{field}"


def test_list_assets_hides_other_keys_assets(client):
    group_id = _verified_group(client, KEY)
    _asset(group_id, "face")
    body = {"Filter": {"GroupType": "LivenessFace", "GroupIds": [group_id]}}
    assert call(client, "ListAssets", body, key=OTHER_KEY).json()["TotalCount"] == 0


def test_update_asset_renames_it(client):
    asset_id = _asset(_verified_group(client), "old")
    response = call(client, "UpdateAsset", {"model": "volc-asset", "Id": asset_id, "Name": "new"})
    assert response.json() == {"Id": asset_id}
    assert SandboxAsset.objects.get(asset_id=asset_id).name == "new"


def test_update_asset_onto_a_taken_name_answers_group_not_found(client):
    group_id = _verified_group(client)
    _asset(group_id, "taken")
    asset_id = _asset(group_id, "mine")
    response = call(client, "UpdateAsset", {"Id": asset_id, "Name": "taken"})
    assert response.status_code == 404
    assert _error(response)["code"] == "NotFound.group_id"


def test_delete_asset(client):
    asset_id = _asset(_verified_group(client), "face")
    response = call(client, "DeleteAsset", {"model": "volc-asset", "Id": asset_id})
    assert response.json() == {"Id": asset_id, "Deleted": True}
    assert call(client, "DeleteAsset", {"Id": asset_id}).status_code == 404


def test_another_key_cannot_delete_an_asset(client):
    asset_id = _asset(_verified_group(client, KEY), "face")
    assert call(client, "DeleteAsset", {"Id": asset_id}, key=OTHER_KEY).status_code == 404
    assert SandboxAsset.objects.filter(asset_id=asset_id).exists()


# --- CreateAsset checks made before any download ----------------------------------------------


@pytest.mark.parametrize(
    ("asset_type", "model"),
    [("Video", "volc-asset"), ("Image", "volc-asset-video"), ("Audio", None)],
)
def test_create_asset_refuses_a_model_that_does_not_match_the_type(client, asset_type, model):
    group_id = _verified_group(client)
    body = {"GroupId": group_id, "Name": "n", "AssetType": asset_type, "URL": "http://x.test/a"}
    if model:
        body["model"] = model
    response = call(client, "CreateAsset", body)
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_model"


def test_create_asset_in_another_keys_group_is_not_found(client):
    group_id = _verified_group(client, KEY)
    body = {
        "model": "volc-asset",
        "GroupId": group_id,
        "Name": "n",
        "AssetType": "Image",
        "URL": "http://127.0.0.1:9/never-fetched.jpg",
    }
    response = call(client, "CreateAsset", body, key=OTHER_KEY)
    assert response.status_code == 404
    assert _error(response)["code"] == "NotFound.group_id"


def test_create_asset_with_a_duplicate_name_answers_group_not_found(client):
    group_id = _verified_group(client)
    _asset(group_id, "portrait-front")
    body = {
        "model": "volc-asset",
        "GroupId": group_id,
        "Name": "portrait-front",
        "AssetType": "Image",
        "URL": "http://127.0.0.1:9/never-fetched.jpg",
    }
    response = call(client, "CreateAsset", body)
    assert response.status_code == 404
    assert _error(response)["message"] == (
        f"upstream_error: [NotFound.group_id] The specified asset_group {group_id} is not found."
    )


def test_create_asset_without_url_is_a_missing_parameter(client):
    body = {
        "model": "volc-asset",
        "GroupId": _verified_group(client),
        "Name": "n",
        "AssetType": "Image",
    }
    response = call(client, "CreateAsset", body)
    assert response.status_code == 400
    assert _error(response)["code"] == "MissingParameter.URL"
