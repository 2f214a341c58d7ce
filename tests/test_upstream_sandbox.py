"""The real client against the sandbox over real HTTP (pytest-django's threaded live server).

Nothing is patched in the client: ``ANYFAST_BASE_URL`` points at ``<live server>/sandbox``.
"""

from __future__ import annotations

import datetime
import io
import re
import threading
import time
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from assets.models import AssetGroup
from assets.signing import signed_file_url
from assets.upstream import (
    AmbiguousCreate,
    AnyfastClient,
    AssetNotFound,
    Attempt,
    GroupNotFound,
    UpstreamError,
    UpstreamServerError,
    WrongTokenGroup,
    key_fingerprint,
)
from sandbox import counters, faults
from sandbox.samples import make_image
from tests.factories import AssetFactory, AssetGroupFactory
from tests.upstream_helpers import max_in_any_window

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-direct-portal-tests-0123456789"
OTHER_KEY = "sk-direct-another-account-987654"
AIGC_KEY = "sk-aigc-ordinary-key-555555"
IDENTITY = "ada"


@pytest.fixture
def upstream(settings, live_server, tmp_path):
    """The sandbox as the upstream, quiet (no faults, no latency), with a private limiter file."""
    settings.ANYFAST_BASE_URL = live_server.url + "/sandbox"
    settings.PORTAL_PUBLIC_URL = live_server.url
    settings.ANYFAST_API_KEY = KEY
    settings.ANYFAST_RATE_LIMIT_ENABLED = True
    settings.ANYFAST_RATE_LIMIT_REDIS_URL = ""
    settings.ANYFAST_RATE_LIMIT_FILE = tmp_path / "rate-limit.sqlite3"
    settings.SANDBOX_ENFORCE_RATE_LIMITS = False
    settings.SANDBOX_LATENCY_MS = 0
    for fault in ("500", "502", "429", "TIMEOUT", "DROP"):
        setattr(settings, f"SANDBOX_FAULT_RATE_{fault}", 0.0)
    counters.reset()
    return live_server


def client_for(key: str = KEY, **kwargs) -> AnyfastClient:
    kwargs.setdefault("sleep", lambda seconds: None)  # retries do not wait for real
    return AnyfastClient(api_key=key, **kwargs)


def verify_on_phone(h5_link: str, identity: str = IDENTITY) -> str:
    """Open the H5 link like a phone browser, press Complete; the callback URL it redirects to."""
    phone = requests.Session()
    page = phone.get(h5_link, timeout=10)
    assert page.status_code == 200
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert csrf, "the phone page has a CSRF-protected form"
    assert f'value="{identity}"' in page.text
    answer = phone.post(
        h5_link,
        data={
            "csrfmiddlewaretoken": csrf.group(1),
            "identity": identity,
            "decision": "complete",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text[:500]
    callback = answer.headers["Location"]
    # The browser follows the redirect with a GET to the CallbackURL (docs/upstream.md §6.1).
    landed = phone.get(callback, allow_redirects=False, timeout=10)
    assert landed.request.method == "GET" and landed.url == callback
    return callback


def verified_group(client: AnyfastClient, live_server, identity: str = IDENTITY) -> str:
    started = client.create_visual_validate_session(f"{live_server.url}/verification/done")
    verify_on_phone(started.h5_link, identity)
    result = client.get_visual_validate_result(started.byted_token)
    assert result.is_complete
    return result.group_id


def upload(client: AnyfastClient, group_id: str, *, face: str = IDENTITY, label: str = ""):
    """An Asset row with a real image, registered upstream from its signed URL."""
    group = AssetGroup.objects.filter(group_id=group_id).first() or AssetGroupFactory(
        group_id=group_id, api_key_fingerprint=client.key_fingerprint
    )
    content = make_image(width=400, height=600, fmt="PNG", face=face, label=label)
    asset = AssetFactory(group=group, content=content)
    created = client.create_asset(
        group_id, asset.upstream_name, "Image", signed_file_url(asset.file)
    )
    return asset, created


def after_processing(settings) -> time_machine.travel:
    """The sandbox derives an asset's status from the clock: move past its processing time."""
    seconds = settings.SANDBOX_PROCESSING_SECONDS + 1
    return time_machine.travel(timezone.now() + datetime.timedelta(seconds=seconds), tick=True)


# --- The guide's whole flow -------------------------------------------------------------------


def test_whole_flow_from_verification_session_to_an_active_asset_uri(upstream, settings):
    client = client_for()
    callback_url = f"{upstream.url}/verification/done?session=42"

    # 1. Create a verification session.
    started = client.create_visual_validate_session(callback_url)
    assert len(started.byted_token) == 34
    assert started.callback_url == callback_url
    assert started.h5_link.startswith(upstream.url)

    # 3 (before 2). Not finished yet: the GroupId is empty, and the guide's row explains it.
    pending = client.get_visual_validate_result(started.byted_token)
    assert pending.group_id == "" and not pending.is_complete
    assert "ask the person to finish" in pending.explanation

    # 2. The person verifies on the phone and taps Complete: a GET redirect to the callback.
    callback = verify_on_phone(started.h5_link, IDENTITY)
    assert callback.startswith(f"{upstream.url}/verification/done?")
    params = parse_qs(urlsplit(callback).query)
    assert params["session"] == ["42"]  # the CallbackURL's own query survives
    assert params["bytedToken"] == [started.byted_token]
    assert params["resultCode"] == ["10000"]
    assert params["verify_type"] == ["real_time"]
    assert params["reqMeasureInfoValue"][0] in ("0", "1")
    assert "algorithmBaseRespCode" in params

    # 3. The result now carries the LivenessFace group.
    result = client.get_visual_validate_result(started.byted_token)
    assert result.is_complete and result.group_id.startswith("group-")

    # 4. Upload a matching portrait from its signed URL.
    asset, created = upload(client, result.group_id, face=IDENTITY)
    assert created.id.startswith("asset-")
    processing = client.get_asset(created.id, group_id=result.group_id)
    assert processing.is_processing and not processing.is_active

    # Poll until Active (the sandbox's clock moved past the processing time).
    with after_processing(settings):
        for _ in range(5):
            polled = client.get_asset(created.id, group_id=result.group_id)
            if not polled.is_processing:
                break
    assert polled.is_active, polled
    assert (polled.name, polled.group_id, polled.asset_type) == (
        asset.upstream_name,
        result.group_id,
        "Image",
    )

    # 5. What producers paste into Seedance 2.0 requests.
    assert polled.asset_uri == "asset://" + created.id


# --- The guide's troubleshooting rows ---------------------------------------------------------


def test_face_mismatch_is_a_failed_asset_with_the_guides_explanation(upstream, settings):
    client = client_for()
    group_id = verified_group(client, upstream, identity="ada")

    _, created = upload(client, group_id, face="grace")
    with after_processing(settings):
        failed = client.get_asset(created.id, group_id=group_id)

    assert failed.is_failed and failed.error_code == "FaceMismatch"
    assert "clearer, front-facing asset of the same person" in failed.explanation


def test_get_asset_falls_back_to_the_group_listing_when_liveness_assets_are_hidden(
    upstream, settings
):
    client = client_for()
    group_id = verified_group(client, upstream)
    _, created = upload(client, group_id)
    settings.SANDBOX_GETASSET_HIDES_LIVENESS = True

    with pytest.raises(AssetNotFound):
        client.get_asset(created.id)  # no group known: nothing to fall back on
    with after_processing(settings):
        found = client.get_asset(created.id, group_id=group_id)

    assert (found.id, found.group_id) == (created.id, group_id)
    assert found.is_active and found.asset_uri == f"asset://{created.id}"


def test_an_aigc_key_is_told_to_use_the_byteplus_direct_group(upstream):
    client = client_for(AIGC_KEY)

    with pytest.raises(WrongTokenGroup) as session_error:
        client.create_visual_validate_session(f"{upstream.url}/verification/done")
    with pytest.raises(WrongTokenGroup) as list_error:
        client.list_assets(group_type="LivenessFace")

    for error in (session_error.value, list_error.value):
        assert "GroupType must be one of [AIGC]" in error.message
        assert "Byteplus-Direct group" in error.explanation


def test_another_keys_group_is_not_found_and_explained(upstream):
    owner = client_for(KEY)
    group_id = verified_group(owner, upstream)
    _, created = upload(owner, group_id)
    stranger = client_for(OTHER_KEY)

    with pytest.raises(GroupNotFound) as caught:
        upload(stranger, group_id, label="stranger")
    with pytest.raises(AssetNotFound):
        stranger.get_asset(created.id, group_id=group_id)

    assert caught.value.code == "NotFound.group_id" and caught.value.http_status == 404
    assert "use the same API key that created the verification session" in (
        caught.value.explanation
    )


def test_a_duplicate_name_is_answered_as_group_not_found_and_found_by_name(upstream):
    client = client_for()
    group_id = verified_group(client, upstream)
    asset, created = upload(client, group_id)

    with pytest.raises(GroupNotFound) as caught:
        client.create_asset(group_id, asset.upstream_name, "Image", signed_file_url(asset.file))

    assert "same Name already exists in the group" in caught.value.explanation
    found = client.find_asset_by_name(group_id, asset.upstream_name)
    assert found is not None and found.id == created.id


# --- Listing and deleting ---------------------------------------------------------------------


def test_list_assets_pages_through_a_group_and_deletes_work(upstream):
    client = client_for()
    group_id = verified_group(client, upstream)
    ids = {upload(client, group_id, label=str(n))[1].id for n in range(5)}

    first = client.list_assets(group_type="LivenessFace", group_ids=[group_id], page_size=2)
    assert (first.page_number, first.page_size, first.total_count) == (1, 2, 5)
    assert len(first.items) == 2 and first.has_next
    listed = [
        a.id
        for a in client.iter_assets(group_type="LivenessFace", group_ids=[group_id], page_size=2)
    ]
    assert sorted(listed) == sorted(ids)
    assert counters.snapshot()["ListAssets"]["calls"] == 1 + 3  # three pages of 2, 2, 1

    victim = listed[0]
    assert client.delete_asset(victim).id == victim
    with pytest.raises(AssetNotFound):
        client.get_asset(victim, group_id=group_id)

    renamed = client.update_asset(listed[1], "tcp-renamed")
    assert renamed.id == listed[1]
    assert client.get_asset(listed[1]).name == "tcp-renamed"

    assert client.delete_asset_group(group_id).id == group_id
    assert client.list_assets(group_type="LivenessFace", group_ids=[group_id]).total_count == 0
    with pytest.raises(GroupNotFound):
        upload(client, group_id, label="after delete")


# --- Faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["500", "502"])
def test_reads_retry_injected_server_faults(upstream, settings, fault):
    client = client_for(read_retries=2)
    group_id = verified_group(client, upstream)
    _, created = upload(client, group_id)
    setattr(settings, f"SANDBOX_FAULT_RATE_{fault}", 1.0)

    # Every attempt fails: 1 + 2 retries, then the transient error surfaces.
    with pytest.raises(UpstreamServerError) as caught:
        client.get_asset(created.id)
    assert caught.value.http_status == int(fault)
    assert counters.snapshot()["GetAsset"] == {"calls": 3, "rate_limited": 0, "faults": 3}

    # The fault clears after the first attempt: the retry succeeds.
    attempts: list[Attempt] = []

    def clear_fault(attempt: Attempt) -> None:
        attempts.append(attempt)
        setattr(settings, f"SANDBOX_FAULT_RATE_{fault}", 0.0)

    recovering = client_for(read_retries=2, on_attempt=clear_fault)
    setattr(settings, f"SANDBOX_FAULT_RATE_{fault}", 1.0)
    assert recovering.get_asset(created.id).id == created.id
    assert [(a.http_status, a.outcome) for a in attempts] == [
        (int(fault), "UpstreamServerError"),
        (200, "ok"),
    ]


def test_a_dropped_connection_is_retried_for_reads_and_ambiguous_for_creates(upstream, settings):
    client = client_for(read_retries=2)
    group_id = verified_group(client, upstream)
    _, created = upload(client, group_id)
    attempts: list[Attempt] = []

    def clear_fault(attempt: Attempt) -> None:
        attempts.append(attempt)
        settings.SANDBOX_FAULT_RATE_DROP = 0.0

    settings.SANDBOX_FAULT_RATE_DROP = 1.0
    assert client_for(read_retries=2, on_attempt=clear_fault).get_asset(created.id).is_processing
    assert [(a.http_status, a.outcome) for a in attempts] == [
        (None, "UpstreamUnreachable"),
        (200, "ok"),
    ]

    settings.SANDBOX_FAULT_RATE_DROP = 1.0
    asset = AssetFactory(
        group=AssetGroup.objects.get(group_id=group_id),
        content=make_image(width=400, height=600, fmt="PNG", face=IDENTITY, label="drop"),
    )
    with pytest.raises(AmbiguousCreate) as caught:
        client.create_asset(group_id, asset.upstream_name, "Image", signed_file_url(asset.file))
    assert caught.value.code == "ConnectionDropped"
    assert counters.snapshot()["CreateAsset"]["calls"] == 2  # the first upload, then this one


def test_a_create_that_times_out_is_not_repeated_and_is_reconciled_by_name(
    upstream, settings, monkeypatch
):
    client = client_for(create_read_timeout=0.5)
    group_id = verified_group(client, upstream)
    released = threading.Event()
    # The sandbox holds the call open with faults.sleep; hold it until the client gave up.
    monkeypatch.setattr(faults, "sleep", lambda seconds: released.wait(10))
    settings.SANDBOX_FAULT_RATE_TIMEOUT = 1.0

    asset = AssetFactory(
        group=AssetGroupFactory(group_id=group_id),
        content=make_image(width=400, height=600, fmt="PNG", face=IDENTITY),
    )
    with pytest.raises(AmbiguousCreate) as caught:
        client.create_asset(group_id, asset.upstream_name, "Image", signed_file_url(asset.file))
    assert caught.value.code == "ReadTimeout"
    assert counters.snapshot()["CreateAsset"]["calls"] == 1  # never repeated

    # The upstream finishes the create after the client gave up; reconcile by Name.
    settings.SANDBOX_FAULT_RATE_TIMEOUT = 0.0
    released.set()
    deadline = time.monotonic() + 10
    found = None
    while found is None and time.monotonic() < deadline:
        found = client.find_asset_by_name(group_id, asset.upstream_name)
        if found is None:
            time.sleep(0.05)  # real time: waiting for the server thread to finish the create
    assert found is not None and found.name == asset.upstream_name
    assert counters.snapshot()["CreateAsset"]["calls"] == 1


# --- Rate limits ------------------------------------------------------------------------------


def test_the_limiter_keeps_concurrent_workers_within_the_sandboxs_limits(upstream, settings):
    """Several threads hammer GetAsset and ListAssets through the shared limiter at the
    documented budgets (GetAsset 100/s, ListAssets 10/s) while the sandbox enforces them."""
    client = client_for()
    group_id = verified_group(client, upstream)
    _, created = upload(client, group_id)
    settings.SANDBOX_ENFORCE_RATE_LIMITS = True
    counters.reset()

    outcomes: Counter[str] = Counter()
    sent_at: dict[str, list[float]] = {"GetAsset": [], "ListAssets": []}
    failures: list[UpstreamError] = []
    lock = threading.Lock()

    def record(attempt: Attempt) -> None:
        with lock:
            outcomes[f"{attempt.action}:{attempt.outcome}"] += 1
            # When the request left, give or take the (tiny) time it took.
            sent_at[attempt.action].append(time.time() - attempt.elapsed)

    stop_at = time.monotonic() + 2.5

    def worker(n: int) -> None:
        # Each thread has its own client (and session), like separate worker processes; the
        # limiter's SQLite file is what they share. Reads keep their usual retries: the sandbox
        # on the in-memory test database sometimes answers 500 "database table is locked" under
        # this load, and every retry goes through the limiter too.
        mine = client_for(on_attempt=record, read_retries=3)
        while time.monotonic() < stop_at:
            try:
                if n % 2:
                    mine.list_assets(group_type="LivenessFace", group_ids=[group_id], page_size=1)
                else:
                    mine.get_asset(created.id)
            except UpstreamError as error:
                with lock:
                    failures.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    snapshot = counters.snapshot()
    windows = {action: max_in_any_window(times, 1.0) for action, times in sent_at.items()}
    print(
        f"sandbox counters: {snapshot}; client outcomes: {dict(outcomes)}; max per 1 s: {windows}"
    )
    assert failures == []
    assert sum(row["rate_limited"] for row in snapshot.values()) == 0
    assert windows["ListAssets"] <= 10 and windows["GetAsset"] <= 100
    # The limiter was binding for ListAssets: 3 threads alone would do far more than 10/s.
    assert snapshot["ListAssets"]["calls"] >= 20
    assert snapshot["GetAsset"]["calls"] > 30


# --- check_upstream ---------------------------------------------------------------------------


def run_check(*args: str) -> tuple[str, bool]:
    out = io.StringIO()
    try:
        call_command("check_upstream", *args, stdout=out, stderr=out)
    except CommandError as exc:
        out.write(f"CommandError: {exc}\n")
        return out.getvalue(), False
    return out.getvalue(), True


def test_check_upstream_passes_with_a_good_key(upstream):
    output, ok = run_check("--create-session")

    assert ok, output
    assert key_fingerprint(KEY) in output and KEY not in output
    assert "API key is accepted" in output
    assert "LivenessFace" in output
    assert "verification session was created" in output


def test_check_upstream_explains_an_aigc_key(upstream, settings):
    settings.ANYFAST_API_KEY = AIGC_KEY

    output, ok = run_check()

    assert not ok
    assert "GroupType must be one of [AIGC]" in output
    assert "Byteplus-Direct group" in output
    assert AIGC_KEY not in output and key_fingerprint(AIGC_KEY) in output


def test_check_upstream_explains_an_unreachable_base_url(upstream, settings):
    settings.ANYFAST_BASE_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.ANYFAST_CONNECT_TIMEOUT = 1.0

    output, ok = run_check()

    assert not ok
    assert "not usable at http://127.0.0.1:9" in output
    assert "check ANYFAST_BASE_URL" in output
    assert KEY not in output


def test_check_upstream_explains_a_missing_key(upstream, settings):
    settings.ANYFAST_API_KEY = ""

    output, ok = run_check()

    assert not ok and "ANYFAST_API_KEY is empty" in output
