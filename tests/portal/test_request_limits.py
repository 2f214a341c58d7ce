"""Request bodies are capped before anything reads them (portal.middleware)."""

from __future__ import annotations

import pytest
from django.test import Client

MB = 1024 * 1024


class UnreadableBody:
    """A ``wsgi.input`` that fails the test when anything reads it."""

    def read(self, *args: object) -> bytes:
        raise AssertionError("the request body was read")

    readline = read


def _post_declaring(client: Client, path: str, length: int):
    """A POST that declares ``length`` bytes of body and sends none that may be read."""
    return client.post(
        path,
        CONTENT_TYPE="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(length),
        **{"wsgi.input": UnreadableBody()},
    )


@pytest.mark.django_db
def test_an_anonymous_200_mb_post_to_the_login_is_refused_unread(client: Client):
    response = _post_declaring(client, "/admin/login/", 200 * MB)

    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == (
        f"The request body is {200 * MB} bytes; at most {MB} are accepted here.\n"
    )


@pytest.mark.django_db
def test_anonymous_bodies_are_capped_at_one_megabyte(client: Client):
    just_over = client.post("/admin/login/", b"x" * MB + b"x", content_type="text/plain")
    login = client.post("/admin/login/", {"username": "nobody", "password": "wrong"})

    assert just_over.status_code == 413
    assert login.status_code == 200  # the form again, with its error


@pytest.mark.django_db
def test_a_session_nobody_signed_in_to_counts_as_anonymous(client: Client):
    client.cookies["sessionid"] = "made-up-session-key"

    response = _post_declaring(client, "/admin/consent/person/add/", 2 * MB)

    assert response.status_code == 413


def test_signed_in_staff_may_send_uploads_up_to_the_larger_limit(superuser_client: Client):
    response = superuser_client.post(
        "/admin/consent/person/add/",
        {"legal_name": "", "notes": "x" * (2 * MB)},
    )

    assert response.status_code == 200  # the form again (no name), not 413
    assert b"This field is required" in response.content


def test_signed_in_staff_are_refused_above_the_upload_limit(superuser_client: Client, settings):
    response = _post_declaring(superuser_client, "/admin/consent/person/add/", 64 * MB + 1)

    assert response.status_code == 413
    assert f"at most {settings.MAX_REQUEST_BODY_BYTES} are accepted" in response.content.decode()


def test_the_limits_are_settings(superuser_client: Client, settings):
    settings.MAX_REQUEST_BODY_BYTES = 10 * MB

    response = _post_declaring(superuser_client, "/admin/consent/person/add/", 10 * MB + 1)

    assert response.status_code == 413


@pytest.mark.django_db
def test_a_chunked_body_without_length_is_refused(client: Client):
    response = client.generic(
        "POST",
        "/admin/login/",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": UnreadableBody()},
    )

    assert response.status_code == 411
    assert b"Content-Length" in response.content
