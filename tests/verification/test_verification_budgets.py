"""Budgets that hold per call, against the sandbox over real HTTP with a hung upstream: a poll
sweep ends within its budget, a callback's confirmation within its call's, and "Start
verification" answers the person within 10 s with a page to try again."""

from __future__ import annotations

import threading
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from sandbox import faults
from tests.factories import VerificationSessionFactory
from tests.verification_helpers import use_sandbox
from verification.models import UpstreamSession
from verification.services import sessions

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def hung_upstream(settings, live_server, tmp_path, monkeypatch):
    """The sandbox, every call of which hangs (until the test ends) when ``hang()`` is called."""
    use_sandbox(settings, live_server, tmp_path)
    released = threading.Event()
    monkeypatch.setattr(faults, "sleep", lambda seconds: released.wait(60))

    def hang() -> None:
        settings.SANDBOX_FAULT_RATE_TIMEOUT = 1.0

    yield hang
    released.set()


def test_a_hung_poll_never_holds_a_sweep_past_its_budget(hung_upstream, settings):
    settings.VERIFICATION_POLL_SWEEP_SECONDS = 4.0
    settings.VERIFICATION_POLL_CALL_SECONDS = 1.5
    invitation = VerificationSessionFactory()
    started = [
        sessions.upstream_session_start(invitation=invitation, purpose="desk") for _ in range(5)
    ]
    UpstreamSession.objects.update(next_poll_at=timezone.now())
    hung_upstream()

    began = time.monotonic()
    polled = sessions.upstream_session_poll_due(max_sessions=5)
    took = time.monotonic() - began

    # Each hung call gave up after its own 1.5 s; the sweep stopped at its 4 s.
    assert took < 4.0 + 0.5
    assert polled == 3
    rows = UpstreamSession.objects.filter(pk__in=[s.pk for s in started])
    errors = [row.last_error_code for row in rows]
    assert errors.count("ReadTimeout") == 3
    assert all(row.is_pending for row in UpstreamSession.objects.all())


def test_a_callbacks_confirmation_gives_up_on_a_hung_call_within_its_budget(
    hung_upstream, settings
):
    settings.VERIFICATION_POLL_CALL_SECONDS = 1.0
    verification = sessions.upstream_session_start(
        invitation=VerificationSessionFactory(), purpose="desk"
    )
    hung_upstream()

    began = time.monotonic()
    verification = sessions.upstream_session_confirm(
        upstream_session_id=verification.pk, force=True
    )

    assert time.monotonic() - began < 1.5
    assert verification.is_pending and verification.last_error_code == "ReadTimeout"


def test_start_answers_within_ten_seconds_with_a_retry_page_when_the_upstream_hangs(
    hung_upstream, client
):
    invitation = VerificationSessionFactory()
    hung_upstream()

    began = time.monotonic()
    response = client.post(reverse("verify:start", args=[invitation.invitation_token]))
    took = time.monotonic() - began

    assert took < 10
    assert response.status_code == 503
    page = response.content.decode()
    assert "Start verification" in page  # the button to try again
    row = UpstreamSession.objects.get(invitation=invitation)
    assert row.status == UpstreamSession.Status.FAILED and row.last_error_code == "ReadTimeout"
