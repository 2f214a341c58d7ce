"""Rate limits, injected faults and the call counters."""

from __future__ import annotations

import datetime
import json
import time

import pytest
import requests
import time_machine

from sandbox import counters, faults
from sandbox.models import SandboxSession
from sandbox.testing import api_path, call

START = datetime.datetime(2026, 11, 24, 10, 0, tzinfo=datetime.UTC)
TOKEN_BODY = {"BytedToken": "2026" + "0" * 30}


@pytest.fixture(autouse=True)
def sandbox_settings(settings):
    settings.SANDBOX_ENFORCE_RATE_LIMITS = True
    settings.ANYFAST_RATE_LIMITS = {
        **settings.ANYFAST_RATE_LIMITS,
        "GetVisualValidateResult": "3/1",
    }
    settings.SANDBOX_LATENCY_MS = 0


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
def test_the_budget_is_per_window(client):
    with time_machine.travel(START, tick=False):
        for _ in range(3):
            call(client, "GetVisualValidateResult", TOKEN_BODY)
        assert call(client, "GetVisualValidateResult", TOKEN_BODY).status_code == 429
    with time_machine.travel(START + datetime.timedelta(seconds=1), tick=False):
        assert call(client, "GetVisualValidateResult", TOKEN_BODY).status_code == 404


@pytest.mark.django_db
def test_the_budget_is_per_key_and_per_action(client):
    with time_machine.travel(START, tick=False):
        for _ in range(3):
            call(client, "GetVisualValidateResult", TOKEN_BODY, key="sk-one")
        assert call(client, "GetVisualValidateResult", TOKEN_BODY, key="sk-one").status_code == 429
        assert call(client, "GetVisualValidateResult", TOKEN_BODY, key="sk-two").status_code == 404
        assert call(client, "GetAsset", {"Id": "asset-x"}, key="sk-one").status_code == 404


@pytest.mark.django_db
def test_minute_budgets_count_over_the_minute(client, settings):
    settings.ANYFAST_RATE_LIMITS = {**settings.ANYFAST_RATE_LIMITS, "GetAsset": "2/60"}
    with time_machine.travel(START, tick=False):
        call(client, "GetAsset", {"Id": "asset-x"})
    with time_machine.travel(START + datetime.timedelta(seconds=30), tick=False):
        assert call(client, "GetAsset", {"Id": "asset-x"}).status_code == 404
        assert call(client, "GetAsset", {"Id": "asset-x"}).status_code == 429
    with time_machine.travel(START + datetime.timedelta(seconds=60), tick=False):
        assert call(client, "GetAsset", {"Id": "asset-x"}).status_code == 404


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

    # The call was still handled after the wait, as a gateway that held it open would.
    deadline = time.monotonic() + 5
    while not SandboxSession.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
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
