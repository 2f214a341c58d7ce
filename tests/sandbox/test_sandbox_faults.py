"""Rate limits, injected faults and the call counters."""

from __future__ import annotations

import datetime
import json
import random
import threading

import pytest
import requests
import time_machine

from sandbox import counters, faults, ratelimit
from sandbox.models import SandboxSession
from sandbox.testing import api_path, call
from upstream.ratelimit import Budget

# Every fault played for real over HTTP, with its timeouts: CI and bin/test --all run it.
pytestmark = pytest.mark.slow

START = datetime.datetime(2026, 11, 24, 10, 0, tzinfo=datetime.UTC)
TOKEN_BODY = {"BytedToken": "2026" + "0" * 30}


@pytest.fixture(autouse=True)
def sandbox_settings(settings):
    settings.SANDBOX_ENFORCE_RATE_LIMITS = True
    settings.SANDBOX_RATE_LIMITS = {
        **settings.SANDBOX_RATE_LIMITS,
        "GetVisualValidateResult": "3/1",
        "ListAssets": "10/1",
    }
    settings.SANDBOX_LATENCY_MS = 0
    settings.SANDBOX_LATENCY_JITTER_MS = 0


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The sandbox's sleeps, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(faults, "sleep", recorded.append)
    return recorded


# --- Rate limits ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_calls_up_to_the_budget_pass_and_the_next_is_429(client):
    with time_machine.travel(START, tick=False):
        statuses = [
            call(client, "GetVisualValidateResult", TOKEN_BODY).status_code for _ in range(3)
        ]
        refused = call(client, "GetVisualValidateResult", TOKEN_BODY)

    assert statuses == [404, 404, 404]  # within the budget: the action answers (unknown token)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["message"].startswith("upstream_error: [RequestLimitExceeded] ")
    assert error["type"] == "upstream_error"
    assert counters.snapshot()["GetVisualValidateResult"] == {
        "calls": 4,
        "rate_limited": 1,
        "faults": 0,
    }


@pytest.mark.django_db
def test_a_call_is_refused_until_the_oldest_call_of_the_window_has_left_it(client):
    with time_machine.travel(START, tick=False):
        for _ in range(3):
            call(client, "GetVisualValidateResult", TOKEN_BODY)
    # 3/1 s counted in any 1-second window, with no burst allowance beyond it.
    with time_machine.travel(START + datetime.timedelta(seconds=0.999), tick=False):
        assert call(client, "GetVisualValidateResult", TOKEN_BODY).status_code == 429
    with time_machine.travel(START + datetime.timedelta(seconds=1), tick=False):
        statuses = [
            call(client, "GetVisualValidateResult", TOKEN_BODY).status_code for _ in range(4)
        ]
    assert statuses == [404, 404, 404, 429]


def _accepted(arrivals: list[float], action: str = "ListAssets") -> list[bool]:
    return [
        ratelimit.try_acquire(owner_fingerprint="k", action=action, now=at)
        for at in sorted(arrivals)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(5))
def test_calls_spaced_by_the_clients_interval_pass_despite_100_ms_of_jitter(seed):
    """What the portal's limiter sends (one ListAssets per (1 s + 0.105 s) / 10) always passes,
    with each call arriving up to 100 ms late."""
    rng = random.Random(seed)
    interval = Budget(10, 1).interval
    arrivals = [1_000_000.0 + n * interval + rng.uniform(0, 0.1) for n in range(60)]

    assert all(_accepted(arrivals))


@pytest.mark.django_db
def test_whole_window_bursts_are_refused_when_delay_moves_a_call_into_the_next_window():
    """The old limiter's pattern: a window's budget at once, the next burst 5 % of a window
    later. One call of the first burst arrives 60 ms late, so the second burst's first call makes
    11 calls in one second."""
    first = [1_000_000.0 + n * 0.001 for n in range(10)]
    first[-1] += 0.06
    second = [1_000_001.05 + n * 0.001 for n in range(10)]

    accepted = _accepted(first + second)

    assert all(accepted[:10])
    assert not all(accepted[10:])


@pytest.mark.django_db
def test_a_client_above_the_rate_gets_the_budget_of_each_window_only():
    # ListAssets is 10/1 s; 20 calls a second for two seconds.
    arrivals = [1_000_000.0 + n * 0.05 for n in range(40)]

    assert sum(_accepted(arrivals)) == 20


@pytest.mark.django_db
def test_the_budget_is_per_key_and_per_action(client):
    with time_machine.travel(START, tick=False):
        for _ in range(3):
            call(client, "GetVisualValidateResult", TOKEN_BODY, key="sk-one")
        assert call(client, "GetVisualValidateResult", TOKEN_BODY, key="sk-one").status_code == 429
        assert call(client, "GetVisualValidateResult", TOKEN_BODY, key="sk-two").status_code == 404
        assert call(client, "GetAsset", {"Id": "asset-x"}, key="sk-one").status_code == 404


@pytest.mark.django_db
def test_minute_budgets_are_counted_over_the_whole_minute(client, settings):
    settings.SANDBOX_RATE_LIMITS = {**settings.SANDBOX_RATE_LIMITS, "GetAsset": "2/60"}
    with time_machine.travel(START, tick=False):
        assert call(client, "GetAsset", {"Id": "asset-x"}).status_code == 404
        assert call(client, "GetAsset", {"Id": "asset-x"}).status_code == 404
        assert call(client, "GetAsset", {"Id": "asset-x"}).status_code == 429
    with time_machine.travel(START + datetime.timedelta(seconds=59.9), tick=False):
        assert call(client, "GetAsset", {"Id": "asset-x"}).status_code == 429
    with time_machine.travel(START + datetime.timedelta(seconds=60), tick=False):
        assert call(client, "GetAsset", {"Id": "asset-x"}).status_code == 404
        assert call(client, "GetAsset", {"Id": "asset-x"}).status_code == 404
        assert call(client, "GetAsset", {"Id": "asset-x"}).status_code == 429


@pytest.mark.django_db
def test_no_429_when_enforcement_is_off(client, settings):
    settings.SANDBOX_ENFORCE_RATE_LIMITS = False
    with time_machine.travel(START, tick=False):
        statuses = {
            call(client, "GetVisualValidateResult", TOKEN_BODY).status_code for _ in range(6)
        }
    assert statuses == {404}


# --- Injected faults --------------------------------------------------------------------------


@pytest.mark.django_db
def test_fault_500_answers_a_json_error(client, settings):
    settings.SANDBOX_FAULT_RATE_500 = 1.0
    response = call(client, "GetAsset", {"Id": "asset-x"})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "InternalServiceError"
    assert counters.snapshot()["GetAsset"] == {"calls": 1, "rate_limited": 0, "faults": 1}


@pytest.mark.django_db
def test_fault_502_answers_a_gateway_html_page(client, settings):
    settings.SANDBOX_FAULT_RATE_502 = 1.0
    response = call(client, "GetAsset", {"Id": "asset-x"})
    assert response.status_code == 502
    assert response["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in response.content


@pytest.mark.django_db
def test_fault_429_is_counted_as_a_fault_not_a_limit(client, settings):
    settings.SANDBOX_FAULT_RATE_429 = 1.0
    response = call(client, "GetAsset", {"Id": "asset-x"})
    assert response.status_code == 429
    assert "RequestLimitExceeded" in response.json()["error"]["message"]
    assert counters.snapshot()["GetAsset"] == {"calls": 1, "rate_limited": 0, "faults": 1}


@pytest.mark.django_db
def test_fault_timeout_waits_then_handles_the_call(client, settings, sleeps):
    settings.SANDBOX_FAULT_RATE_TIMEOUT = 1.0
    settings.SANDBOX_TIMEOUT_SECONDS = 35.0
    response = call(client, "CreateVisualValidateSession", {"CallbackURL": "https://portal.test/"})
    assert sleeps == [35.0]
    assert response.status_code == 200
    assert SandboxSession.objects.count() == 1


@pytest.mark.django_db
def test_latency_is_added_to_every_call(client, settings, sleeps):
    settings.SANDBOX_LATENCY_MS = 250
    call(client, "GetAsset", {"Id": "asset-x"})
    assert sleeps == [0.25]
    assert "GetAsset" not in {a for a, c in counters.snapshot().items() if c["faults"]}


@pytest.mark.django_db
def test_latency_jitter_adds_a_random_delay_up_to_its_maximum(client, settings, sleeps):
    settings.SANDBOX_LATENCY_MS = 20
    settings.SANDBOX_LATENCY_JITTER_MS = 100
    for _ in range(30):
        call(client, "GetAsset", {"Id": "asset-x"})

    assert all(0.02 <= slept <= 0.12 for slept in sleeps)
    assert max(sleeps) - min(sleeps) > 0.05  # 30 draws spread over the 100 ms


@pytest.mark.django_db
def test_fault_drop_without_a_socket_raises_in_the_test_client(client, settings):
    settings.SANDBOX_FAULT_RATE_DROP = 1.0
    with pytest.raises(ConnectionAbortedError):
        call(client, "GetAsset", {"Id": "asset-x"})


@pytest.mark.django_db(transaction=True)
def test_fault_drop_closes_the_connection_without_an_answer(live_server, settings):
    settings.SANDBOX_FAULT_RATE_DROP = 1.0
    url = f"{live_server.url}{api_path('GetAsset')}"
    headers = {"Authorization": "Bearer sk-drop"}

    with pytest.raises(requests.ConnectionError):
        requests.post(url, json={"Id": "asset-x"}, headers=headers, timeout=5)

    settings.SANDBOX_FAULT_RATE_DROP = 0.0
    assert requests.post(url, json={"Id": "asset-x"}, headers=headers, timeout=5).status_code == 404
    assert counters.snapshot()["GetAsset"] == {"calls": 2, "rate_limited": 0, "faults": 1}


@pytest.mark.django_db(transaction=True)
def test_fault_timeout_outlasts_the_clients_read_timeout(live_server, settings):
    # Real HTTP timing is the point here, so this test waits for real (about half a second).
    settings.SANDBOX_FAULT_RATE_TIMEOUT = 1.0
    settings.SANDBOX_TIMEOUT_SECONDS = 0.5
    url = f"{live_server.url}{api_path('CreateVisualValidateSession')}"
    body = json.dumps({"CallbackURL": "https://portal.test/"})
    headers = {"Authorization": "Bearer sk-timeout", "Content-Type": "application/json"}

    with pytest.raises(requests.ReadTimeout):
        requests.post(url, data=body, headers=headers, timeout=(5, 0.1))

    # The call was still handled after the wait, as a gateway that held it open would. Let the
    # server's request thread finish before the test (and its database) goes away.
    for thread in threading.enumerate():
        if thread.name.endswith("(process_request_thread)"):
            thread.join(timeout=5)
    assert SandboxSession.objects.count() == 1


@pytest.mark.django_db
def test_a_fault_after_handling_does_the_work_then_answers_500(client, settings):
    settings.SANDBOX_FAULT_RATE_500_AFTER = 1.0
    settings.SANDBOX_FAULT_ACTIONS = ["CreateVisualValidateSession"]

    answer = call(client, "CreateVisualValidateSession", {"CallbackURL": "https://portal.test/"})

    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "InternalServiceError"
    assert SandboxSession.objects.count() == 1  # the write happened all the same
    # Only the listed actions get faults.
    assert call(client, "GetAsset", {"Id": "asset-x"}).status_code == 404
    assert counters.snapshot()["GetAsset"]["faults"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_drop_after_handling_does_the_work_and_never_answers(live_server, settings):
    settings.SANDBOX_FAULT_RATE_DROP_AFTER = 1.0
    url = f"{live_server.url}{api_path('CreateVisualValidateSession')}"
    headers = {"Authorization": "Bearer sk-drop-after"}

    with pytest.raises(requests.ConnectionError):
        requests.post(url, json={"CallbackURL": "https://portal.test/"}, headers=headers, timeout=5)

    assert SandboxSession.objects.count() == 1


@pytest.mark.django_db
def test_faults_are_drawn_by_their_shares(settings, monkeypatch):
    settings.SANDBOX_FAULT_RATE_500 = 0.1
    settings.SANDBOX_FAULT_RATE_502 = 0.1
    draws = iter([0.05, 0.15, 0.5])
    monkeypatch.setattr(faults.random, "random", lambda: next(draws))
    assert [faults.draw_fault() for _ in range(3)] == ["500", "502", None]


# --- Counters ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_counters_count_calls_per_action_and_reset(client, settings):
    settings.SANDBOX_ENFORCE_RATE_LIMITS = False
    call(client, "GetAsset", {"Id": "asset-x"})
    call(client, "GetAsset", {"Id": "asset-y"})
    call(client, "ListAssets", {"Filter": {"GroupType": "AIGC"}})
    call(client, "NoSuchAction", {})

    assert counters.snapshot() == {
        "GetAsset": {"calls": 2, "rate_limited": 0, "faults": 0},
        "ListAssets": {"calls": 1, "rate_limited": 0, "faults": 0},
    }
    counters.reset()
    assert counters.snapshot() == {}
