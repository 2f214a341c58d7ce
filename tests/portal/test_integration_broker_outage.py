"""A broker outage fails nothing that was committed: with the test's own Redis stopped, a shoot
day's import, a person's callback and an invitation all complete (no 500, rows committed, the
import says what waits for the sweeper); once Redis is back, a worker's sweepers bring every
upload to Active, confirm the person and send the email. Real worker, real Redis, the sandbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from assets.models import Asset
from mail.models import OutboundEmail
from sandbox.demo import demo_group_create
from sandbox.samples import make_image
from sandbox.testing import complete_session
from tests.celery_helpers import (
    PrivateRedis,
    broker_at,
    celery_worker,
    require_worker_services,
)
from tests.factories import AssetGroupFactory, ConsentRecordFactory, VerificationSessionFactory
from tests.upstream_helpers import SANDBOX_KEY
from verification.models import UpstreamSession, VerificationSession
from verification.services import sessions

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FILES = 4


def wait_for(condition: Callable[[], bool], what: str, *logs: Any, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            output = "\n".join(log.log_path.read_text() for log in logs)
            pytest.fail(f"timed out waiting until {what}:\n{output}")
        time.sleep(0.3)


def test_a_broker_outage_fails_no_page_and_every_row_ends_final_once_it_is_back(
    upstream, settings, private_files, tmp_path, client, superuser
):
    require_worker_services()
    settings.SANDBOX_PROCESSING_SECONDS = 0
    redis = PrivateRedis(tmp_path)
    redis.start()
    group = AssetGroupFactory(
        verified=True, group_id=demo_group_create(api_key=SANDBOX_KEY, identity="ada").group_id
    )
    folder = tmp_path / "shoot"
    folder.mkdir()
    for n in range(FILES):
        picture = make_image(width=400, height=600, fmt="PNG", face="ada", label=str(n))
        (folder / f"face-{n}.png").write_bytes(picture)
    waiting = sessions.upstream_session_start(
        invitation=VerificationSessionFactory(), purpose=UpstreamSession.Purpose.PHONE
    )
    invitee = ConsentRecordFactory(approved=True, person__email="grace@talent.test").person

    try:
        with broker_at(redis.url):
            redis.stop()  # the broker is down from here on

            out = StringIO()
            call_command("import_assets", str(folder), "--person", str(group.person.pk), stdout=out)
            assert Asset.objects.filter(group=group, status=Asset.Status.QUEUED).count() == FILES
            assert f"{FILES} wait for the asset sweeper" in out.getvalue()

            complete_session(waiting.byted_token or "", identity="grace")
            callback = client.get(
                reverse("verify:callback", args=[waiting.public_id]),
                {"bytedToken": waiting.byted_token, "resultCode": "10000"},
            )
            assert callback.status_code == 200
            assert UpstreamSession.objects.get(pk=waiting.pk).callback_received_at is not None

            client.force_login(superuser)
            invite = client.post(reverse("admin:consent_person_invite", args=[invitee.pk]))
            assert invite.status_code == 302
            invitation = VerificationSession.objects.get(person=invitee)
            email = OutboundEmail.objects.about(invitation).get()
            assert (email.status, email.attempts) == ("queued", 0)

        redis.start()  # the broker is back: the sweepers send what was never sent
        worker_env = {
            "CELERY_BROKER_URL": redis.url,
            "ANYFAST_BASE_URL": f"{upstream.url}/sandbox",
            "PORTAL_PUBLIC_URL": upstream.url,
            "ANYFAST_API_KEY": SANDBOX_KEY,
            "ANYFAST_RATE_LIMIT_REDIS_URL": "",
            "ANYFAST_RATE_LIMIT_FILE": str(tmp_path / "rate-limit.sqlite3"),
            "PRIVATE_MEDIA_ROOT": str(private_files),
            "ASSET_RESEND_AFTER_SECONDS": "1",
            "ASSET_POLL_FIRST_SECONDS": "0",
            "EMAIL_SWEEP_INTERVAL_SECONDS": "2",
            "VERIFICATION_POLL_SWEEP_SECONDS": "2",
        }
        with celery_worker(tmp_path, env=worker_env, beat=True, name="after") as worker:
            wait_for(
                lambda: (
                    set(Asset.objects.filter(group=group).values_list("status", flat=True))
                    == {Asset.Status.ACTIVE}
                ),
                "every imported file went Active",
                worker,
            )
            wait_for(
                lambda: (
                    UpstreamSession.objects.get(pk=waiting.pk).status
                    == UpstreamSession.Status.CONFIRMED
                ),
                "the person who came back during the outage was confirmed",
                worker,
            )
            wait_for(
                lambda: OutboundEmail.objects.get(pk=email.pk).status == "sent",
                "the invitation email was sent",
                worker,
            )
    finally:
        redis.stop()
