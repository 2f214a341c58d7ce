"""Upstream sessions: start, callback, confirmation, polling, expiry — against the sandbox over
real HTTP (pytest-django's live server); the person's phone is played with ``sandbox.testing``.
"""

from __future__ import annotations

import datetime
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from assets.models import AssetGroup
from sandbox import counters
from sandbox.models import SandboxSession
from sandbox.testing import complete_session, fail_session
from tests.factories import UpstreamSessionFactory, VerificationSessionFactory
from tests.verification_helpers import AIGC_KEY, KEY, use_sandbox
from upstream import AnyfastClient, key_fingerprint
from verification import tasks as verification_tasks
from verification.models import UpstreamSession, VerificationSession
from verification.services import invitations, sessions
from verification.timeline import invitation_timeline

# Whole scenarios against the sandbox over HTTP: CI and bin/test --all run them.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

Status = UpstreamSession.Status
Phone = UpstreamSession.Purpose.PHONE
Desk = UpstreamSession.Purpose.DESK


@pytest.fixture
def upstream(settings, live_server, tmp_path):
    use_sandbox(settings, live_server, tmp_path)
    return live_server


def _start(invitation=None, **kwargs) -> UpstreamSession:
    invitation = invitation or VerificationSessionFactory()
    kwargs.setdefault("purpose", Phone)
    return sessions.upstream_session_start(invitation=invitation, **kwargs)


def _confirm(verification: UpstreamSession, **kwargs) -> UpstreamSession:
    return sessions.upstream_session_confirm(
        upstream_session_id=verification.pk, force=True, **kwargs
    )


def _callback(verification: UpstreamSession, result_code: str = "10000", **extra):
    params = {
        "bytedToken": verification.byted_token,
        "resultCode": result_code,
        "algorithmBaseRespCode": "0",
        "reqMeasureInfoValue": "1",
        "verify_type": "real_time",
        **extra,
    }
    return sessions.upstream_session_record_callback(
        public_id=verification.public_id, params=params
    )


def _later(seconds: float) -> time_machine.travel:
    return time_machine.travel(timezone.now() + datetime.timedelta(seconds=seconds), tick=True)


# --- Start ------------------------------------------------------------------------------------


def test_start_mints_a_session_whose_callback_names_it_and_whose_link_speaks_the_language(
    upstream,
):
    invitation = VerificationSessionFactory(person__preferred_language="zh-Hant")

    verification = _start(invitation)

    assert verification.status == Status.CREATED and len(verification.byted_token) == 34
    sandboxed = SandboxSession.objects.get(byted_token=verification.byted_token)
    assert sandboxed.callback_url == f"{upstream.url}/verify/callback/{verification.public_id}/"
    query = parse_qs(urlsplit(verification.h5_link).query)
    assert query["lng"] == ["zh-Hant"] and query["bytedToken"] == [verification.byted_token]
    assert verification.api_key_fingerprint == key_fingerprint(KEY)
    assert verification.token_expires_at - verification.h5_link_expires_at == datetime.timedelta(
        seconds=30 * 60 - 120
    )
    invitation.refresh_from_db()
    assert invitation.status == VerificationSession.Status.OPENED


def test_h5_language_is_replaced_not_repeated():
    link = invitations.h5_link_with_language("https://h5.test/p?bytedToken=T&lng=zh&x=1", "en")

    assert parse_qs(urlsplit(link).query) == {"bytedToken": ["T"], "x": ["1"], "lng": ["en"]}


def test_each_start_is_a_new_session_and_earlier_ones_stay_on_record(upstream):
    first = _start()
    second = _start(first.invitation)

    assert first.byted_token != second.byted_token
    assert first.invitation.upstream_sessions.count() == 2
    assert first.invitation.counted_attempts() == 2


def test_starting_beyond_the_attempts_limit_is_refused(upstream, settings):
    settings.VERIFICATION_MAX_ATTEMPTS = 2
    first = _start()
    _start(first.invitation)

    with pytest.raises(invitations.AttemptsExhausted):
        _start(first.invitation)
    assert counters.snapshot()["CreateVisualValidateSession"]["calls"] == 2


def test_desk_sessions_count_as_attempts_only_once_their_callback_arrived(upstream, settings):
    settings.VERIFICATION_MAX_ATTEMPTS = 1
    invitation = VerificationSessionFactory()
    unused = _start(invitation, purpose=Desk)
    used = _start(invitation, purpose=Desk)
    assert invitation.counted_attempts() == 0 and unused.status == Status.CREATED

    _callback(used, "10001")

    assert invitation.counted_attempts() == 1
    with pytest.raises(invitations.AttemptsExhausted):
        _start(invitation)


def test_an_ended_invitation_cannot_start_a_session(upstream):
    invitation = VerificationSessionFactory(status=VerificationSession.Status.CANCELLED)

    with pytest.raises(invitations.InvitationUnavailable, match="cancelled"):
        _start(invitation)


def test_a_refused_start_is_kept_with_the_guides_explanation_and_is_no_attempt(upstream, settings):
    settings.ANYFAST_API_KEY = AIGC_KEY
    invitation = VerificationSessionFactory()

    with pytest.raises(invitations.UpstreamStartFailed) as refused:
        _start(invitation)

    failed = refused.value.verification
    assert failed.status == Status.FAILED and failed.byted_token is None
    assert "GroupType must be one of [AIGC]" in failed.last_error
    assert "Byteplus-Direct" in failed.last_error_explanation
    assert invitation.counted_attempts() == 0
    (entry,) = [e for e in invitation_timeline(invitation) if "could not be created" in e.label]
    assert entry.tone == "red" and "Byteplus-Direct" in entry.explanation


# --- Callback ---------------------------------------------------------------------------------


def test_a_callback_records_its_parameters_and_queues_a_confirmation_after_commit(upstream, queued):
    verification = _start()

    outcome = _callback(verification, unexpected="dropped")

    assert outcome.kind == "recorded"
    row = outcome.verification
    assert row.status == Status.CALLBACK_RECEIVED and row.callback_received_at
    assert row.callback_params["resultCode"] == "10000"
    assert "unexpected" not in row.callback_params
    assert queued.of(verification_tasks.confirm_upstream_session) == [(row.pk,)]


def test_a_replayed_callback_changes_nothing(upstream, queued):
    verification = _start()
    _callback(verification)
    first = UpstreamSession.objects.get(pk=verification.pk)

    replay = _callback(verification, "10001")

    assert replay.kind == "replayed"
    again = UpstreamSession.objects.get(pk=verification.pk)
    assert again.callback_params == first.callback_params
    assert again.callback_received_at == first.callback_received_at
    assert len(queued.of(verification_tasks.confirm_upstream_session)) == 1


def test_a_callback_with_another_sessions_token_or_an_unknown_id_is_unknown(upstream, queued):
    mine, theirs = _start(), _start()

    forged = sessions.upstream_session_record_callback(
        public_id=mine.public_id, params={"bytedToken": theirs.byted_token, "resultCode": "10000"}
    )
    unknown = sessions.upstream_session_record_callback(
        public_id="5f0c7a51-7a0b-4b1e-9a55-000000000000", params={"resultCode": "10000"}
    )

    assert forged.kind == unknown.kind == "unknown"
    assert UpstreamSession.objects.get(pk=mine.pk).callback_received_at is None
    assert queued.calls == []


# --- Confirmation -----------------------------------------------------------------------------


def test_confirmation_stores_the_group_with_the_keys_fingerprint_and_verifies_the_invitation(
    upstream,
):
    verification = _start()
    assert _confirm(verification).status == Status.CREATED  # GroupId still empty

    group_id = complete_session(verification.byted_token)
    _callback(verification)
    with _later(2):  # a confirmation asks at most once a second
        confirmed = _confirm(verification)

    assert confirmed.status == Status.CONFIRMED and confirmed.group_id == group_id
    group = AssetGroup.objects.get(group_id=group_id)
    assert group.person == verification.invitation.person
    assert group.upstream_session == confirmed
    assert group.api_key_fingerprint == key_fingerprint(KEY)
    invitation = VerificationSession.objects.get(pk=verification.invitation_id)
    assert invitation.status == VerificationSession.Status.VERIFIED and invitation.verified_at
    labels = [entry.label for entry in invitation_timeline(invitation)]
    assert labels == [
        "Invited",
        "Opened",
        "Upstream session created",
        "Callback received",
        "Confirmed",
        "Group created",
        "Verified",
    ]


def test_confirming_twice_does_nothing_twice(upstream):
    verification = _start()
    complete_session(verification.byted_token)
    _confirm(verification)
    calls = counters.snapshot()["GetVisualValidateResult"]["calls"]

    again = _confirm(verification)

    assert again.status == Status.CONFIRMED and again.attempts == 1
    assert counters.snapshot()["GetVisualValidateResult"]["calls"] == calls
    assert AssetGroup.objects.count() == 1


def test_two_workers_confirming_at_once_make_one_group(upstream):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and concurrent transactions need PostgreSQL")
    verification = _start()
    complete_session(verification.byted_token)
    UpstreamSession.objects.filter(pk=verification.pk).update(next_poll_at=timezone.now())
    results: list[str] = []

    def worker() -> None:
        client = AnyfastClient()
        # Both pass the claim (no force, both due): only the conditional UPDATE can split them.
        row = sessions.upstream_session_confirm(upstream_session_id=verification.pk, client=client)
        results.append(row.status)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results.count(Status.CONFIRMED) >= 1
    assert AssetGroup.objects.count() == 1
    assert UpstreamSession.objects.get(pk=verification.pk).status == Status.CONFIRMED


def test_a_forged_success_callback_verifies_nobody(upstream, queued):
    verification = _start()

    _callback(verification, "10000")  # the person never completed
    row = _confirm(verification)

    assert row.status == Status.CALLBACK_RECEIVED and not row.group_id
    assert not AssetGroup.objects.exists()
    invitation = VerificationSession.objects.get(pk=verification.invitation_id)
    assert invitation.status == VerificationSession.Status.OPENED


def test_a_session_never_completed_expires_with_its_token_and_is_no_portal_failure(
    upstream, settings
):
    verification = _start()

    with _later(settings.ANYFAST_TOKEN_TTL + 1):
        expired = _confirm(verification)

    assert expired.status == Status.EXPIRED and expired.ended_at
    assert expired.last_error_code == "InvalidParameter.BytedToken"  # the sandbox's own words
    assert "has expired" in expired.last_error
    assert "start again" in expired.last_error_explanation
    invitation = VerificationSession.objects.get(pk=verification.invitation_id)
    assert invitation.is_open  # attempts are left
    (entry,) = [e for e in invitation_timeline(invitation) if e.label == "Expired"]
    assert "has expired" in entry.detail and "start again" in entry.explanation


def test_an_empty_group_id_after_the_configured_token_lifetime_ends_the_session(upstream, settings):
    settings.ANYFAST_TOKEN_TTL = 120  # the shorter lifetime one page of the docs gives
    verification = _start()

    with _later(121):
        expired = _confirm(verification)

    assert expired.status == Status.EXPIRED
    assert "GroupId still empty" in expired.last_error


def test_an_unknown_token_ends_the_session_as_expired(upstream):
    verification = UpstreamSessionFactory(byted_token="20261124120000AAAAAAAAAAAAAAAAAAAA")

    ended = _confirm(verification)

    assert ended.status == Status.EXPIRED and ended.last_error_code == "NotFound.BytedToken"


def test_a_failure_on_the_phone_ends_as_failed_and_the_last_attempt_fails_the_invitation(
    upstream, settings
):
    settings.VERIFICATION_MAX_ATTEMPTS = 1
    verification = _start()
    fail_session(verification.byted_token)
    _callback(verification, "10001")

    assert _confirm(verification).status == Status.CALLBACK_RECEIVED  # only the upstream decides
    with _later(settings.ANYFAST_TOKEN_TTL + 1):
        failed = _confirm(verification)

    assert failed.status == Status.FAILED and failed.last_error_code == "resultCode=10001"
    assert "try again" in failed.last_error_explanation
    invitation = VerificationSession.objects.get(pk=verification.invitation_id)
    assert invitation.status == VerificationSession.Status.FAILED


def test_a_transient_upstream_error_is_recorded_and_the_session_stays_pending(upstream, settings):
    verification = _start()
    settings.SANDBOX_FAULT_RATE_500 = 1.0

    row = _confirm(verification, client=AnyfastClient(read_retries=0))

    assert row.status == Status.CREATED and row.last_error
    assert "tried again later" in row.last_error_explanation


def test_the_confirm_task_returns_the_outcome(upstream):
    verification = _start()
    complete_session(verification.byted_token)

    assert (
        verification_tasks.confirm_upstream_session.apply(args=[verification.pk]).get()
        == "confirmed"
    )


# --- Polling ----------------------------------------------------------------------------------


def test_polling_confirms_a_person_who_never_came_back(upstream):
    verification = _start()
    complete_session(verification.byted_token)  # and closed the phone: no callback

    with _later(6):
        polled = sessions.upstream_session_poll_due()

    assert polled == 1
    assert UpstreamSession.objects.get(pk=verification.pk).status == Status.CONFIRMED


def test_polling_takes_due_sessions_oldest_first_within_its_share_of_the_budget(upstream):
    started = [_start() for _ in range(3)]
    UpstreamSession.objects.filter(pk=started[2].pk).update(
        next_poll_at=timezone.now() + datetime.timedelta(minutes=5)
    )
    UpstreamSession.objects.update(created_at=timezone.now() - datetime.timedelta(hours=1))
    UpstreamSession.objects.filter(pk=started[1].pk).update(
        created_at=timezone.now() - datetime.timedelta(hours=2)
    )

    with _later(6):
        due = list(UpstreamSession.objects.due_for_poll().values_list("pk", flat=True))
        polled = sessions.upstream_session_poll_due(max_sessions=1)

    assert due == [started[1].pk, started[0].pk]
    assert polled == 1
    attempts = dict(UpstreamSession.objects.values_list("pk", "attempts"))
    assert attempts == {started[0].pk: 0, started[1].pk: 1, started[2].pk: 0}


def test_the_default_sweep_stays_within_two_thirds_of_the_result_budget(upstream, settings):
    settings.VERIFICATION_POLL_SWEEP_SECONDS = 2.0
    for _ in range(6):
        _start()

    with _later(6):
        polled = sessions.upstream_session_poll_due()

    assert polled == 4  # 3 per s, for 2 s, two thirds of it
    assert counters.snapshot()["GetVisualValidateResult"]["rate_limited"] == 0


def test_poll_cadence_is_fast_while_a_person_can_complete_then_backs_off():
    now = timezone.now()
    fresh = UpstreamSession(
        created_at=now, h5_link_expires_at=now + datetime.timedelta(seconds=120)
    )

    assert sessions.poll_interval(fresh, now) == 5
    assert sessions.poll_interval(fresh, now + datetime.timedelta(minutes=4)) == 30
    assert sessions.poll_interval(fresh, now + datetime.timedelta(minutes=11)) == 120
    fresh.callback_received_at = now
    fresh.callback_params = {"resultCode": "10000"}
    assert sessions.poll_interval(fresh, now + datetime.timedelta(seconds=10)) == 2
    fresh.callback_params = {"resultCode": "10001"}
    assert sessions.poll_interval(fresh, now + datetime.timedelta(seconds=10)) == 60
