"""Credentials never reach a log: invitation links and codes, bytedToken values, BytedTokens the
upstream quotes, signed file links (``portal.logredact``), whichever logger writes them."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from portal.logredact import mask_secrets
from tests.factories import VerificationSessionFactory

TOKEN = "20261203090000ABCDEF0123456789AB"
INVITATION = "q3Vx-Ew2bJ0yZ_Tn8f0aGQe1rXc4nU7oKpLs9dHmAiw"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f'"GET /verify/{INVITATION}/ HTTP/1.1" 200', '"GET /verify/***/ HTTP/1.1" 200'),
        (f"POST /verify/{INVITATION}/start/", "POST /verify/***/start/"),
        (f"next=%2Fverify%2F{INVITATION}%2F", "next=%2Fverify%2F***%2F"),
        ('"GET /verify/ HTTP/1.1"', '"GET /verify/ HTTP/1.1"'),
        (
            f"/verify/callback/5f0c7a51-7a0b-4b1e-9a55-000000000000/?bytedToken={TOKEN}&resultCode=1",
            "/verify/callback/5f0c7a51-7a0b-4b1e-9a55-000000000000/?bytedToken=***&resultCode=1",
        ),
        (f"https://h5.test/p?lng=en&bytedToken={TOKEN}", "https://h5.test/p?lng=en&bytedToken=***"),
        (
            f"URL=https%3A%2F%2Fh5%3FbytedToken%3D{TOKEN}%26lng%3Den",
            "URL=https%3A%2F%2Fh5%3FbytedToken%3D***%26lng%3Den",
        ),
        ("/verify/?code=6AM3-ATNV&lang=en", "/verify/?code=***&lang=en"),
        ("resultCode=10000", "resultCode=10000"),
        (
            f"[NotFound.BytedToken]: The specified BytedToken {TOKEN} is not found.",
            f"[NotFound.BytedToken]: The specified BytedToken …{TOKEN[-6:]} is not found.",
        ),
        ("InvalidParameter.BytedToken has expired", "InvalidParameter.BytedToken has expired"),
        ("/files/abc:def/portrait.jpg", "/files/***/portrait.jpg"),
    ],
)
def test_mask_secrets_masks_every_credential_and_nothing_else(text: str, masked: str):
    assert mask_secrets(text) == masked


@pytest.mark.django_db
def test_djangos_log_of_a_person_page_carries_no_invitation_token(client: Client, caplog):
    invitation = VerificationSessionFactory(status="cancelled")
    caplog.set_level(logging.INFO)

    assert client.get(f"/verify/{invitation.invitation_token}/").status_code == 410
    assert client.get(f"/verify/{INVITATION}/").status_code == 404

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/verify/***/" in logged
    assert invitation.invitation_token not in logged and INVITATION not in logged


def test_any_loggers_record_is_masked_as_it_is_made(caplog):
    caplog.set_level(logging.INFO)

    logging.getLogger("django.server").info(
        '"GET %s HTTP/1.1" 200', f"/verify/callback/x/?bytedToken={TOKEN}&resultCode=10000"
    )
    logging.getLogger("upstream.client").warning(
        "upstream %s failed: %s", "GetVisualValidateResult", f"BytedToken {TOKEN} is not found"
    )
    logging.getLogger("anything").info("code typed: %s", "/verify/?code=6AM3-ATNV")

    text = caplog.text
    assert TOKEN not in text and "6AM3-ATNV" not in text
    assert "bytedToken=***" in text and f"…{TOKEN[-6:]}" in text
