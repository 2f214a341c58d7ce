"""The upstream client against canned HTTP answers (``responses``): shapes the sandbox cannot
produce, retries, ambiguity of writes, and the key never leaking."""

from __future__ import annotations

import json
import logging
import ssl
from urllib.parse import quote, quote_plus, unquote

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from tests.upstream_helpers import BASE_URL, SECRET_KEY, asset_json, body_of, url
from upstream import (
    AmbiguousCreate,
    AmbiguousWrite,
    AnyfastClient,
    AssetNotFound,
    AuthenticationFailed,
    CreateOutcomeUnknown,
    EndpointNotFound,
    GroupNotFound,
    InvalidRequest,
    NullRateLimiter,
    PermanentUpstreamError,
    RateLimited,
    TransientUpstreamError,
    UnexpectedResponse,
    UpstreamError,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnreachable,
    VerificationTokenInvalid,
    WrongTokenGroup,
    explain_asset_error,
    key_fingerprint,
)
from upstream import errors as upstream_errors
from upstream.keys import redact

GROUP = "group-20261124115900-kbdhw"
ASSET = "asset-20261124120000-abcde"
GROUP_404 = f"upstream_error: [NotFound.group_id] The specified asset_group {GROUP} is not found."
ASSET_404 = f"upstream_error: [NotFound.asset_id] The specified asset {ASSET} is not found."
MASKED_GROUP_404 = "upstream_error: [***.group_id] The specified asset_group group-x is not found."
MASKED_CALLBACK = "upstream_error: [***.CallbackURL] The required parameter CallbackURL is missing."
AIGC_ONLY = "upstream_error: [InvalidParameter.GroupType] GroupType must be one of [AIGC]"


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> AnyfastClient:
    return AnyfastClient(
        BASE_URL,
        SECRET_KEY,
        rate_limiter=NullRateLimiter(),
        connect_timeout=3.0,
        read_timeout=7.0,
        create_read_timeout=99.0,
        read_retries=3,
        sleep=sleeps.append,
    )


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


# --- Requests ---------------------------------------------------------------------------------


def test_every_call_sends_bearer_key_json_user_agent_and_explicit_timeouts(client, mocked):
    mocked.post(url("GetAsset"), json=asset_json())
    mocked.post(
        url("CreateVisualValidateSession"),
        json={
            "BytedToken": "T" * 34,
            "CallbackURL": "https://portal.test/cb",
            "H5Link": "https://h5",
        },
    )
    mocked.post(url("CreateAsset"), json={"Id": ASSET})

    client.get_asset(ASSET)
    client.create_visual_validate_session("https://portal.test/cb")
    client.create_asset(GROUP, "tcp-1", "Image", "https://portal.test/f")

    read, session, create = mocked.calls
    assert read.request.headers["Authorization"] == f"Bearer {SECRET_KEY}"
    assert read.request.headers["Content-Type"] == "application/json"
    assert read.request.headers["User-Agent"].startswith("talent-consent-portal/")
    assert body_of(read) == {"Id": ASSET}
    assert read.request.req_kwargs["timeout"] == (3.0, 7.0)
    # A person waits for a verification session, whose link lives 120 s: no long wait there.
    assert session.request.req_kwargs["timeout"] == (3.0, 7.0)
    assert body_of(session) == {"CallbackURL": "https://portal.test/cb"}
    # Asset creates get the long read timeout: the gateway may hold them open (docs/upstream.md §7).
    assert create.request.req_kwargs["timeout"] == (3.0, 99.0)


def test_client_defaults_come_from_settings(settings):
    settings.ANYFAST_BASE_URL = "https://example.test/"
    settings.ANYFAST_API_KEY = SECRET_KEY
    settings.ANYFAST_CONNECT_TIMEOUT = 1.5
    settings.ANYFAST_READ_RETRIES = 2
    settings.ANYFAST_RATE_LIMIT_ENABLED = False

    client = AnyfastClient()

    assert client.base_url == "https://example.test"
    assert client.key_fingerprint == key_fingerprint(SECRET_KEY)
    assert client.connect_timeout == 1.5
    assert client.read_retries == 2
    assert isinstance(client.rate_limiter, NullRateLimiter)


@pytest.mark.parametrize(
    ("asset_type", "model"),
    [("Image", "volc-asset"), ("Video", "volc-asset-video"), ("Audio", "volc-asset-audio")],
)
def test_create_asset_sends_the_billing_model_of_its_type(client, mocked, asset_type, model):
    mocked.post(url("CreateAsset"), json={"Id": ASSET})

    created = client.create_asset(GROUP, "tcp-1", asset_type, "https://portal.test/files/x")

    assert body_of(mocked.calls[0]) == {
        "model": model,
        "GroupId": GROUP,
        "Name": "tcp-1",
        "AssetType": asset_type,
        "URL": "https://portal.test/files/x",
    }
    assert created.id == ASSET
    assert created.asset_uri == f"asset://{ASSET}"


def test_list_assets_sends_filter_and_paging(client, mocked):
    mocked.post(
        url("ListAssets"),
        json={"PageNumber": 2, "PageSize": 5, "TotalCount": 6, "Items": [asset_json()]},
    )

    page = client.list_assets(
        group_type="LivenessFace",
        group_ids=[GROUP],
        name="tcp",
        statuses=["Active"],
        page_number=2,
        page_size=5,
    )

    assert body_of(mocked.calls[0]) == {
        "model": "volc-asset",
        "Filter": {
            "GroupType": "LivenessFace",
            "GroupIds": [GROUP],
            "Name": "tcp",
            "Statuses": ["Active"],
        },
        "PageNumber": 2,
        "PageSize": 5,
    }
    assert (page.page_number, page.page_size, page.total_count) == (2, 5, 6)
    assert not page.has_next
    with pytest.raises(ValueError):
        client.list_assets(group_type="LivenessFace", page_size=101)


def test_iter_assets_walks_every_page(client, mocked):
    pages = [
        {
            "PageNumber": 1,
            "PageSize": 2,
            "TotalCount": 5,
            "Items": [asset_json(Id="a1"), asset_json(Id="a2")],
        },
        {
            "PageNumber": 2,
            "PageSize": 2,
            "TotalCount": 5,
            "Items": [asset_json(Id="a3"), asset_json(Id="a4")],
        },
        {"PageNumber": 3, "PageSize": 2, "TotalCount": 5, "Items": [asset_json(Id="a5")]},
    ]
    for page in pages:
        mocked.post(url("ListAssets"), json=page)

    ids = [a.id for a in client.iter_assets(group_type="LivenessFace", page_size=2)]

    assert ids == ["a1", "a2", "a3", "a4", "a5"]
    assert [body_of(c)["PageNumber"] for c in mocked.calls] == [1, 2, 3]


def test_find_asset_by_name_matches_exactly_although_the_upstream_filter_is_fuzzy(client, mocked):
    items = [asset_json(Id="a1", Name="tcp-1-twin"), asset_json(Id="a2", Name="tcp-1")]
    mocked.post(
        url("ListAssets"), json={"PageNumber": 1, "PageSize": 100, "TotalCount": 2, "Items": items}
    )

    found = client.find_asset_by_name(GROUP, "tcp-1")

    assert found is not None and found.id == "a2"
    assert body_of(mocked.calls[0])["Filter"] == {
        "GroupType": "LivenessFace",
        "GroupIds": [GROUP],
        "Name": "tcp-1",
    }


def test_find_asset_by_name_returns_none_when_nothing_matches(client, mocked):
    mocked.post(
        url("ListAssets"), json={"PageNumber": 1, "PageSize": 100, "TotalCount": 0, "Items": []}
    )

    assert client.find_asset_by_name(GROUP, "tcp-1") is None


def test_update_and_delete_calls(client, mocked):
    mocked.post(url("UpdateAsset"), json={"Id": ASSET})
    mocked.post(url("DeleteAsset"), json={"Id": ASSET, "Deleted": True})
    mocked.post(url("DeleteAssetGroup"), json={})  # the upstream's own empty Result is accepted

    assert client.update_asset(ASSET, "tcp-2").id == ASSET
    assert client.delete_asset(ASSET).id == ASSET
    assert client.delete_asset_group(GROUP).id == GROUP
    update, delete, delete_group = (body_of(c) for c in mocked.calls)
    assert update == {"model": "volc-asset", "Id": ASSET, "Name": "tcp-2"}
    assert delete == {"model": "volc-asset", "Id": ASSET}
    assert delete_group == {"Id": GROUP}


# --- Results ----------------------------------------------------------------------------------


def test_asset_is_parsed_defensively_and_unknown_fields_are_ignored(client, mocked):
    mocked.post(
        url("GetAsset"),
        json=asset_json(
            LastInferenceTime="2026-07-24T10:08:49+08:00",
            Moderation={"Strategy": "Default"},
            CreateTime=None,
            Status="Active",
        ),
    )

    asset = client.get_asset(ASSET)

    assert asset.is_active and not asset.is_failed
    assert asset.asset_uri == f"asset://{ASSET}"
    assert asset.create_time is None
    assert (
        asset.update_time is not None
        and asset.update_time.isoformat() == "2026-11-24T04:00:05+00:00"
    )
    assert asset.explanation == ""


def test_face_mismatch_asset_is_failed_and_explained_in_the_guides_words(client, mocked):
    failed = asset_json(
        Status="Failed",
        Error={"Code": "FaceMismatch", "Message": "Face consistency verification failed."},
    )
    mocked.post(url("GetAsset"), json=failed)

    asset = client.get_asset(ASSET)

    assert asset.is_failed and not asset.is_active
    assert (asset.error_code, asset.error_message) == (
        "FaceMismatch",
        "Face consistency verification failed.",
    )
    assert "clearer, front-facing asset of the same person" in asset.explanation


def test_explain_asset_error_covers_known_and_unknown_codes():
    assert "front-facing" in explain_asset_error("FaceMismatch")
    assert "only the verified person" in explain_asset_error(
        "MultipleFacesDetected", "Multiple faces were detected in the material."
    )
    assert "PixelCountTooSmall" in explain_asset_error("PixelCountTooSmall", "too few pixels")
    assert "Weird: odd" in explain_asset_error("Weird", "odd")


def test_empty_group_id_means_verification_not_finished(client, mocked):
    mocked.post(url("GetVisualValidateResult"), json={"GroupId": ""})

    result = client.get_visual_validate_result("T" * 34)

    assert not result.is_complete
    assert "ask the person to finish" in result.explanation
    assert "picked up automatically" in result.explanation


def test_upstream_envelope_is_accepted(client, mocked):
    mocked.post(
        url("GetVisualValidateResult"),
        json={
            "ResponseMetadata": {
                "RequestId": "r",
                "Action": "GetVisualValidateResult",
                "Region": "ap-southeast-1",
            },
            "Result": {"GroupId": GROUP},
        },
    )

    result = client.get_visual_validate_result("T" * 34)

    assert result.is_complete and result.group_id == GROUP
    assert result.explanation == ""


def test_upstream_envelope_with_an_error_is_an_error_even_with_status_200(client, mocked):
    mocked.post(
        url("GetAsset"),
        json={
            "ResponseMetadata": {
                "RequestId": "r",
                "Action": "GetAsset",
                "Error": {
                    "Code": "NotFound.asset_id",
                    "Message": f"The specified asset {ASSET} is not found.",
                },
            }
        },
    )

    with pytest.raises(AssetNotFound) as caught:
        client.get_asset(ASSET)

    assert caught.value.code == "NotFound.asset_id"
    assert len(mocked.calls) == 1  # permanent: not retried


def test_success_without_the_documented_fields_is_unexpected(client, mocked):
    mocked.post(url("CreateVisualValidateSession"), json={"CallbackURL": "x"})
    mocked.post(url("GetAsset"), body="<html>captive portal</html>", status=200)

    with pytest.raises(UnexpectedResponse):
        client.create_visual_validate_session("https://portal.test/cb")
    with pytest.raises(UnexpectedResponse):
        client.get_asset(ASSET)


# --- Error shapes (docs/upstream.md §5.1) ------------------------------------------------------

ERROR_CASES = [
    pytest.param(
        401,
        {
            "error": {
                "message": "Invalid API key provided.",
                "type": "authentication_error",
                "code": "invalid_api_key",
            }
        },
        AuthenticationFailed,
        "invalid_api_key",
        "Invalid API key provided.",
        id="gateway-401",
    ),
    pytest.param(
        401,
        {"error": {"type": "new_api_error", "message": "Invalid token"}},
        AuthenticationFailed,
        "",
        "Invalid token",
        id="new-api-401-without-code",
    ),
    pytest.param(
        404,
        {"error": {"message": GROUP_404}},
        GroupNotFound,
        "NotFound.group_id",
        f"The specified asset_group {GROUP} is not found.",
        id="relayed-group-not-found",
    ),
    pytest.param(
        404,
        {"error": {"message": MASKED_GROUP_404}},
        GroupNotFound,
        "***.group_id",
        "The specified asset_group group-x is not found.",
        id="masked-group-not-found",
    ),
    pytest.param(
        404,
        {"error": {"message": "asset group group-x not found"}},
        GroupNotFound,
        "",
        "asset group group-x not found",
        id="guide-wording-without-code",
    ),
    pytest.param(
        404,
        {
            "error": {
                "message": ASSET_404,
                "type": "upstream_error",
                "code": "NotFound.asset_id",
            }
        },
        AssetNotFound,
        "NotFound.asset_id",
        f"The specified asset {ASSET} is not found.",
        id="relayed-asset-not-found",
    ),
    pytest.param(
        400,
        {"error": {"message": MASKED_CALLBACK}},
        InvalidRequest,
        "***.CallbackURL",
        "The required parameter CallbackURL is missing.",
        id="masked-code",
    ),
    pytest.param(
        400,
        {"error": {"message": AIGC_ONLY}},
        WrongTokenGroup,
        "InvalidParameter.GroupType",
        "GroupType must be one of [AIGC]",
        id="wrong-token-group-relayed",
    ),
    pytest.param(
        400,
        {"error": {"message": "GroupType must be one of [AIGC]", "type": "new_api_error"}},
        WrongTokenGroup,
        "",
        "GroupType must be one of [AIGC]",
        id="wrong-token-group-plain",
    ),
    pytest.param(
        400,
        {
            "code": "fail_to_fetch_task",
            "message": json.dumps(
                {
                    "error": {
                        "code": "InvalidParameter",
                        "message": "The specified asset asset-1 is not found",
                        "type": "BadRequest",
                    }
                }
            ),
            "data": None,
        },
        InvalidRequest,
        "InvalidParameter",
        "The specified asset asset-1 is not found",
        id="task-shape-with-json-message",
    ),
    pytest.param(
        400,
        {
            "ResponseMetadata": {
                "Action": "GetAsset",
                "Error": {"Code": "MissingParameter", "Message": "Id is missing"},
            }
        },
        InvalidRequest,
        "MissingParameter",
        "Id is missing",
        id="upstream-envelope-error",
    ),
    pytest.param(
        403,
        {"error": {"message": "upstream_error: [AccessDenied] no permission"}},
        InvalidRequest,
        "AccessDenied",
        "no permission",
        id="access-denied",
    ),
]


@pytest.mark.parametrize(("status", "payload", "error_class", "code", "message"), ERROR_CASES)
def test_error_bodies_are_parsed_and_classified(
    client, mocked, status, payload, error_class, code, message
):
    mocked.post(url("GetAsset"), json=payload, status=status)

    with pytest.raises(error_class) as caught:
        client.get_asset(ASSET)

    error = caught.value
    assert isinstance(error, PermanentUpstreamError)
    assert (error.code, error.message, error.http_status, error.action) == (
        code,
        message,
        status,
        "GetAsset",
    )
    assert error.explanation
    assert len(mocked.calls) == 1  # permanent errors are not retried


def test_troubleshooting_rows_map_to_the_guides_explanations(client, mocked):
    mocked.post(
        url("CreateVisualValidateSession"),
        json={"error": {"message": "GroupType must be one of [AIGC]"}},
        status=400,
    )
    mocked.post(
        url("CreateAsset"),
        json={"error": {"message": GROUP_404}},
        status=404,
    )

    with pytest.raises(WrongTokenGroup) as wrong_group:
        client.create_visual_validate_session("https://portal.test/cb")
    with pytest.raises(GroupNotFound) as not_found:
        client.create_asset(GROUP, "tcp-1", "Image", "https://portal.test/f")

    assert "Byteplus-Direct group" in wrong_group.value.explanation
    explanation = not_found.value.explanation
    assert "use the same API key that created the verification session" in explanation
    assert "same Name already exists in the group" in explanation


def test_html_502_page_is_a_transient_server_error(client, mocked):
    page = (
        "<html><head><title>502 Bad Gateway</title></head>"
        "<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
    )
    mocked.post(url("GetAsset"), body=page, status=502, content_type="text/html")

    with pytest.raises(UpstreamServerError) as caught:
        client.get_asset(ASSET)

    assert caught.value.message == "502 Bad Gateway"
    assert caught.value.http_status == 502
    assert len(mocked.calls) == 4  # 1 + ANYFAST_READ_RETRIES (3 here)


def test_html_404_means_the_base_url_is_wrong(client, mocked):
    mocked.post(url("GetAsset"), body="<h1>Not Found</h1>", status=404, content_type="text/html")

    with pytest.raises(EndpointNotFound) as caught:
        client.get_asset(ASSET)

    assert "ANYFAST_BASE_URL" in caught.value.explanation


def test_the_gateways_invalid_url_answer_means_the_base_url_is_wrong(client, mocked):
    mocked.post(
        url("GetAsset"),
        json={"error": {"message": "Invalid URL (POST /v1/volc/asset/GetAsset)", "type": "x"}},
        status=404,
    )

    with pytest.raises(EndpointNotFound) as caught:
        client.get_asset(ASSET)

    assert "ANYFAST_BASE_URL" in caught.value.explanation


def test_throttling_code_without_429_is_rate_limited():
    error = upstream_errors.error_from_response(
        action="ListAssets",
        http_status=400,
        body=json.dumps({"error": {"message": "upstream_error: [RequestLimitExceeded] slow down"}}),
    )
    assert isinstance(error, RateLimited)


def test_retry_after_as_http_date_is_understood():
    assert (
        upstream_errors.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412475.0) == 5.0
    )
    assert upstream_errors.parse_retry_after("2") == 2.0
    assert upstream_errors.parse_retry_after("soon") is None


# --- Retries ----------------------------------------------------------------------------------


def test_a_read_succeeds_after_two_transient_failures(client, mocked, sleeps):
    mocked.post(
        url("GetAsset"),
        json={"error": {"message": "upstream_error: [InternalServiceError] oops"}},
        status=500,
    )
    mocked.post(url("GetAsset"), body="<title>502 Bad Gateway</title>", status=502)
    mocked.post(url("GetAsset"), json=asset_json())

    asset = client.get_asset(ASSET)

    assert asset.id == ASSET
    assert len(mocked.calls) == 3
    # Full jitter: each wait lies in [0, base·2^(n-1)] (base 0.5 s).
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


def test_read_retries_honour_retry_after_on_429(client, mocked, sleeps):
    mocked.post(
        url("ListAssets"),
        json={"error": {"message": "rate limited"}},
        status=429,
        headers={"Retry-After": "3"},
    )
    mocked.post(
        url("ListAssets"), json={"PageNumber": 1, "PageSize": 100, "TotalCount": 0, "Items": []}
    )

    client.list_assets(group_type="LivenessFace")

    assert len(mocked.calls) == 2
    assert 3 <= sleeps[0] <= 3.2


def test_read_gives_up_when_retry_after_is_longer_than_it_may_wait(client, mocked, sleeps):
    mocked.post(
        url("GetAsset"),
        json={"error": {"message": "busy"}},
        status=429,
        headers={"Retry-After": "3600"},
    )

    with pytest.raises(RateLimited) as caught:
        client.get_asset(ASSET)

    assert caught.value.retry_after == 3600
    assert isinstance(caught.value, TransientUpstreamError)
    assert len(mocked.calls) == 1 and sleeps == []


def test_a_read_timeout_is_retried_then_reported_as_transient(client, mocked, sleeps):
    mocked.post(url("GetVisualValidateResult"), body=requests.ReadTimeout("read timed out"))

    with pytest.raises(UpstreamTimeout):
        client.get_visual_validate_result("T" * 34)

    assert len(mocked.calls) == 4 and len(sleeps) == 3


def test_a_timeout_on_create_is_ambiguous_and_never_repeated(client, mocked, sleeps):
    mocked.post(url("CreateAsset"), body=requests.ReadTimeout("read timed out"))

    with pytest.raises(AmbiguousCreate) as caught:
        client.create_asset(GROUP, "tcp-1", "Image", "https://portal.test/f")

    assert len(mocked.calls) == 1 and sleeps == []
    assert not isinstance(caught.value, TransientUpstreamError | PermanentUpstreamError)
    assert "looks it up by its Name" in caught.value.explanation


def test_a_dropped_connection_on_create_is_ambiguous(client, mocked):
    dropped = requests.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )
    mocked.post(url("CreateAsset"), body=dropped)

    with pytest.raises(AmbiguousCreate):
        client.create_asset(GROUP, "tcp-1", "Image", "https://portal.test/f")
    assert len(mocked.calls) == 1


def test_a_5xx_on_create_is_ambiguous(client, mocked):
    mocked.post(url("CreateAsset"), body="<title>504 Gateway Time-out</title>", status=504)

    with pytest.raises(AmbiguousCreate) as caught:
        client.create_asset(GROUP, "tcp-1", "Image", "https://portal.test/f")
    assert caught.value.http_status == 504
    assert len(mocked.calls) == 1


def test_a_timeout_on_delete_is_an_ambiguous_write(client, mocked):
    mocked.post(url("DeleteAsset"), body=requests.ReadTimeout("read timed out"))

    with pytest.raises(AmbiguousWrite):
        client.delete_asset(ASSET)
    assert len(mocked.calls) == 1


def test_a_429_on_create_is_retried_because_nothing_was_created(client, mocked, sleeps):
    mocked.post(
        url("CreateAsset"),
        json={"error": {"message": "upstream_error: [RequestLimitExceeded] throttled"}},
        status=429,
        headers={"Retry-After": "1"},
    )
    mocked.post(url("CreateAsset"), json={"Id": ASSET})

    created = client.create_asset(GROUP, "tcp-1", "Image", "https://portal.test/f")

    assert created.id == ASSET
    assert len(mocked.calls) == 2 and len(sleeps) == 1


def test_a_refused_connection_on_create_is_retried_because_nothing_was_sent(client, mocked, sleeps):
    refused = requests.ConnectionError(
        MaxRetryError(
            None, "/volc/asset/CreateAsset", NewConnectionError(None, "Connection refused")
        )  # type: ignore[arg-type]
    )
    mocked.post(url("CreateAsset"), body=refused)
    mocked.post(url("CreateAsset"), json={"Id": ASSET})

    assert client.create_asset(GROUP, "tcp-1", "Image", "https://portal.test/f").id == ASSET
    assert len(mocked.calls) == 2


def test_a_refused_certificate_on_create_is_retried_because_nothing_was_sent(
    client, mocked, sleeps
):
    refused = requests.exceptions.SSLError(
        MaxRetryError(None, "/volc/asset/CreateAsset", ssl.SSLCertVerificationError(1, "bad"))  # type: ignore[arg-type]
    )
    mocked.post(url("CreateAsset"), body=refused)
    mocked.post(url("CreateAsset"), json={"Id": ASSET})

    assert client.create_asset(GROUP, "tcp-1", "Image", "https://portal.test/f").id == ASSET


def test_a_tls_failure_after_sending_a_create_is_ambiguous_and_not_repeated(client, mocked):
    broken = requests.exceptions.SSLError(
        MaxRetryError(None, "/volc/asset/CreateAsset", ssl.SSLError(1, "bad record mac"))  # type: ignore[arg-type]
    )
    mocked.post(url("CreateAsset"), body=broken)

    with pytest.raises(AmbiguousCreate):
        client.create_asset(GROUP, "tcp-1", "Image", "https://portal.test/f")
    assert len(mocked.calls) == 1


def test_unreachable_upstream_is_transient(client, mocked):
    refused = requests.ConnectionError(
        MaxRetryError(None, "/volc/asset/GetAsset", NewConnectionError(None, "Connection refused"))  # type: ignore[arg-type]
    )
    mocked.post(url("GetAsset"), body=refused)

    with pytest.raises(UpstreamUnreachable) as caught:
        client.get_asset(ASSET)
    assert "ANYFAST_BASE_URL" in caught.value.explanation


# --- GetAsset falls back to ListAssets (docs/upstream.md §4.5 CONFLICT) -----------------------


def test_get_asset_falls_back_to_list_assets_in_the_group(client, mocked):
    mocked.post(
        url("GetAsset"),
        json={"error": {"message": ASSET_404}},
        status=404,
    )
    items = [asset_json(Id="asset-other"), asset_json(Status="Processing")]
    mocked.post(
        url("ListAssets"), json={"PageNumber": 1, "PageSize": 100, "TotalCount": 2, "Items": items}
    )

    asset = client.get_asset(ASSET, group_id=GROUP)

    assert asset.id == ASSET and asset.is_processing
    assert body_of(mocked.calls[1])["Filter"] == {"GroupType": "LivenessFace", "GroupIds": [GROUP]}


def test_get_asset_without_a_group_or_a_match_raises_not_found(client, mocked):
    mocked.post(
        url("GetAsset"),
        json={"error": {"message": "upstream_error: [NotFound.asset_id] gone"}},
        status=404,
    )
    mocked.post(
        url("ListAssets"), json={"PageNumber": 1, "PageSize": 100, "TotalCount": 0, "Items": []}
    )

    with pytest.raises(AssetNotFound):
        client.get_asset(ASSET)
    with pytest.raises(AssetNotFound):
        client.get_asset(ASSET, group_id=GROUP)


# --- An expired or unknown BytedToken --------------------------------------------------------

TOKEN = "2026112412000000000000000000ABCDEF"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        pytest.param(
            404,
            f"upstream_error: [NotFound.BytedToken] The specified BytedToken {TOKEN} is not found.",
            id="unknown-404",
        ),
        pytest.param(
            400,
            f"upstream_error: [InvalidParameter.BytedToken] The specified BytedToken {TOKEN} "
            "has expired.",
            id="expired-400",
        ),
        pytest.param(
            400,
            f"upstream_error: [***.BytedToken] The specified BytedToken {TOKEN} has expired.",
            id="masked-code",
        ),
    ],
)
def test_an_expired_or_unknown_byted_token_says_to_start_a_new_session(
    client, mocked, status, message
):
    mocked.post(url("GetVisualValidateResult"), json={"error": {"message": message}}, status=status)

    with pytest.raises(VerificationTokenInvalid) as caught:
        client.get_visual_validate_result(TOKEN)

    error = caught.value
    assert isinstance(error, PermanentUpstreamError)
    assert error.http_status == status and error.code.endswith(".BytedToken")
    assert "Start a new verification session" in error.explanation
    assert "the key that created it" in error.explanation
    assert "bug in the portal" not in error.explanation
    assert len(mocked.calls) == 1


def test_a_missing_byted_token_is_the_portals_own_invalid_request(client, mocked):
    mocked.post(
        url("GetVisualValidateResult"),
        json={
            "error": {
                "message": "upstream_error: [MissingParameter.BytedToken] The required "
                "parameter BytedToken is missing."
            }
        },
        status=400,
    )

    with pytest.raises(InvalidRequest) as caught:
        client.get_visual_validate_result("")

    assert not isinstance(caught.value, VerificationTokenInvalid)


# --- Many assets of a group in one listing ---------------------------------------------------


def _page(items: list[dict], *, number: int, total: int) -> dict:
    return {"PageNumber": number, "PageSize": 100, "TotalCount": total, "Items": items}


def test_get_assets_resolves_many_ids_with_one_listing_pass_and_stops_when_all_are_seen(
    client, mocked
):
    first = [asset_json(Id=f"asset-{n}", Status="Processing") for n in range(100)]
    second = [asset_json(Id=f"asset-{n}") for n in range(100, 200)]
    mocked.post(url("ListAssets"), json=_page(first, number=1, total=301))
    mocked.post(url("ListAssets"), json=_page(second, number=2, total=301))

    found = client.get_assets(["asset-3", "asset-150", "asset-3"], group_id=GROUP)

    assert sorted(found) == ["asset-150", "asset-3"]
    assert found["asset-3"].is_processing and found["asset-150"].is_active
    assert [call.request.url for call in mocked.calls] == [url("ListAssets")] * 2  # not page 3
    assert body_of(mocked.calls[0])["Filter"] == {"GroupType": "LivenessFace", "GroupIds": [GROUP]}
    assert client.get_assets([], group_id=GROUP) == {}
    assert len(mocked.calls) == 2


def test_get_asset_fallback_filters_the_listing_by_name(client, mocked):
    mocked.post(url("GetAsset"), json={"error": {"message": ASSET_404}}, status=404)
    mocked.post(url("ListAssets"), json=_page([asset_json(Id=ASSET)], number=1, total=1))

    asset = client.get_asset(ASSET, group_id=GROUP, name="tcp-0001")

    assert asset.id == ASSET
    assert body_of(mocked.calls[1])["Filter"] == {
        "GroupType": "LivenessFace",
        "GroupIds": [GROUP],
        "Name": "tcp-0001",
    }


# --- Creates whose outcome is unknown --------------------------------------------------------


def test_a_create_that_stays_unanswered_ends_in_a_transient_still_unknown_error(
    client, mocked, sleeps
):
    mocked.post(url("CreateAsset"), body=requests.ReadTimeout("read timed out"))
    mocked.post(url("ListAssets"), json=_page([], number=1, total=0))

    with pytest.raises(CreateOutcomeUnknown) as caught:
        client.create_asset_reconciled(GROUP, "tcp-1", "Image", "https://portal.test/f")

    assert isinstance(caught.value, TransientUpstreamError)
    assert caught.value.code == "ReadTimeout"
    assert "no twin" in caught.value.explanation
    actions = [call.request.url.rsplit("/", 1)[-1] for call in mocked.calls]
    # Create, wait, look up; create again, wait longer, look up: then give up for now.
    assert actions == ["CreateAsset", "ListAssets", "CreateAsset", "ListAssets"]
    assert sleeps == [3.0, 6.0]


def test_a_duplicate_name_refusal_after_an_unanswered_create_returns_the_existing_asset(
    client, mocked, sleeps
):
    mocked.post(url("CreateAsset"), body=requests.ReadTimeout("read timed out"))
    mocked.post(url("ListAssets"), json=_page([], number=1, total=0))  # not listed yet
    mocked.post(url("CreateAsset"), json={"error": {"message": GROUP_404}}, status=404)
    landed = asset_json(Id=ASSET, Name="tcp-1", Status="Processing")
    mocked.post(url("ListAssets"), json=_page([landed], number=1, total=1))

    created = client.create_asset_reconciled(GROUP, "tcp-1", "Image", "https://portal.test/f")

    assert (created.id, created.name, created.group_id) == (ASSET, "tcp-1", GROUP)


def test_a_group_not_found_with_nothing_by_that_name_is_still_group_not_found(client, mocked):
    mocked.post(url("CreateAsset"), json={"error": {"message": GROUP_404}}, status=404)
    mocked.post(url("ListAssets"), json=_page([], number=1, total=0))

    with pytest.raises(GroupNotFound):
        client.create_asset_reconciled(GROUP, "tcp-1", "Image", "https://portal.test/f")


# --- The key never leaks ----------------------------------------------------------------------


def test_the_api_key_never_appears_in_errors_reprs_or_logs(client, mocked, caplog):
    caplog.set_level(logging.DEBUG)
    echoed = {
        "error": {
            "message": f"Invalid token {SECRET_KEY} (Bearer {SECRET_KEY})",
            "code": SECRET_KEY,
        }
    }
    mocked.post(url("GetAsset"), json=echoed, status=401)
    mocked.post(url("CreateAsset"), body=requests.ReadTimeout(f"timed out for Bearer {SECRET_KEY}"))
    mocked.post(url("ListAssets"), body=f"<title>oops {SECRET_KEY}</title>", status=500)

    caught: list[UpstreamError] = []
    for call in (
        lambda: client.get_asset(ASSET),
        lambda: client.create_asset(GROUP, "tcp-1", "Image", "https://portal.test/f"),
        lambda: client.list_assets(group_type="LivenessFace"),
    ):
        with pytest.raises(UpstreamError) as info:
            call()
        caught.append(info.value)

    texts = [repr(client), caplog.text]
    for error in caught:
        texts += [
            str(error),
            repr(error),
            error.explanation,
            error.message,
            error.code,
            str(error.args),
        ]
    for text in texts:
        assert SECRET_KEY not in text
        assert SECRET_KEY[3:] not in text
    assert key_fingerprint(SECRET_KEY) in repr(client)
    assert "AuthenticationFailed" in caplog.text or "HTTP 401" in caplog.text


def test_key_fingerprint_is_short_stable_and_not_the_key():
    fingerprint = key_fingerprint(SECRET_KEY)

    assert fingerprint == key_fingerprint(SECRET_KEY)
    assert fingerprint != key_fingerprint(SECRET_KEY + "x")
    assert fingerprint.startswith("sha256:") and len(fingerprint) <= 32
    assert SECRET_KEY not in fingerprint
    assert key_fingerprint("") == ""


def test_an_upstream_error_quoting_a_signed_file_link_does_not_carry_the_live_link(
    client, mocked, caplog
):
    link = "https://portal.test/files/eyJuIjoiYXNzZXRzIn0:1tX:abc/3f9a.jpg"
    presigned = "https://s3.test/private/a.jpg?X-Amz-Expires=900&X-Amz-Signature=deadbeef42"
    mocked.post(
        url("CreateAsset"),
        json={"error": {"message": f"upstream_error: [InvalidParameter.URL] {link} {presigned}"}},
        status=400,
    )

    with caplog.at_level("DEBUG"), pytest.raises(InvalidRequest) as caught:
        client.create_asset(GROUP, "tcp-1", "Image", link)

    shown = f"{caught.value} {caught.value!r} {caught.value.explanation} {caplog.text}"
    assert "eyJuIjoiYXNzZXRzIn0" not in shown and "deadbeef42" not in shown
    assert "/files/***/3f9a.jpg" in str(caught.value)


LINK = "https://portal.test/files/eyJuIjoiYXNzZXRzIn0:1tX:abc/3f9a.jpg"
# A key the client does not know (an upstream echoing another account's key).
OTHER_KEY = "sk-OTHERACCOUNTKEY4242"


def _percent_every_byte(text: str) -> str:
    return "".join(f"%{byte:02X}" for byte in text.encode())


@pytest.mark.parametrize(
    "quoted",
    [
        pytest.param(quote(LINK, safe=""), id="link-url-encoded"),
        pytest.param(quote(quote(LINK, safe=""), safe=""), id="link-encoded-twice"),
        pytest.param("url=" + quote_plus(LINK), id="link-form-encoded"),
        pytest.param(LINK.replace("/", "\\/"), id="link-json-escaped"),
        pytest.param(quote(f"Bearer {OTHER_KEY}", safe=""), id="bearer-url-encoded"),
        pytest.param(f"Authorization: Bearer+{OTHER_KEY[3:]}", id="bearer-plus"),
        pytest.param(quote(f"?key={OTHER_KEY}", safe=""), id="other-key-in-encoded-query"),
        pytest.param(_percent_every_byte(SECRET_KEY), id="key-every-byte-encoded"),
        pytest.param(_percent_every_byte(SECRET_KEY).lower(), id="key-encoded-lowercase"),
        pytest.param(quote(f"?key={SECRET_KEY}", safe=""), id="key-in-encoded-query"),
        pytest.param(
            quote("https://s3.test/a.jpg?X-Amz-Signature=deadbeef42&X-Amz-Expires=900", safe=""),
            id="presigned-url-encoded",
        ),
    ],
)
def test_url_encoded_keys_and_links_are_redacted_from_errors_and_logs(
    client, mocked, caplog, quoted
):
    mocked.post(
        url("CreateAsset"),
        json={"error": {"message": f"upstream_error: [InvalidParameter.URL] cannot get {quoted}"}},
        status=400,
    )

    with caplog.at_level("DEBUG"), pytest.raises(InvalidRequest) as caught:
        client.create_asset(GROUP, "tcp-1", "Image", LINK)

    shown = f"{caught.value} {caught.value!r} {caught.value.explanation} {caplog.text}"
    for secret in ("eyJuIjoiYXNzZXRzIn0", SECRET_KEY[3:], OTHER_KEY[3:], "deadbeef42"):
        assert secret not in shown
        assert secret not in unquote(unquote(shown)).replace("\\/", "/")
    assert "***" in str(caught.value)


def test_redaction_leaves_ordinary_text_alone():
    text = (
        "upstream_error: [NotFound.group_id] The specified asset_group group-x is not found; "
        "ask-me-anything sk-short /files/list X-Amz-Expires=900"
    )
    assert redact(text, [SECRET_KEY]) == text


def test_upstream_values_have_names_of_their_own_beside_the_portals_choices():
    import upstream as upstream
    from assets import models

    assert upstream.UpstreamAssetStatus.ACTIVE == "Active"
    assert upstream.UpstreamGroupType.LIVENESS_FACE == models.GroupType.LIVENESS_FACE
    # The portal's AssetStatus is its own life cycle; the upstream's names never shadow it.
    for portal_name in ("AssetStatus", "GroupType", "AssetType", "Budget"):
        assert not hasattr(upstream, portal_name)
