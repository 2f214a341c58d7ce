"""What the phone page does to a verification session: complete it or fail it, once."""

from __future__ import annotations

import datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.db import transaction
from django.utils import timezone

from sandbox.ids import new_group_id
from sandbox.models import GroupType, SandboxGroup, SandboxSession

# resultCode values of the callback. 10000 is the documented success; failure codes are not
# enumerated anywhere (docs/upstream.md §12.8), so SANDBOX: every failure is 10001.
RESULT_SUCCESS = "10000"
RESULT_FAILURE = "10001"


class LinkUnusable(Exception):
    """The H5 link was already used, or it (or the token) has expired."""


def _claim_link(session: SandboxSession) -> tuple[SandboxSession, datetime.datetime]:
    """Mark the link used, exactly once even when two taps race; the locked row and the time."""
    now = timezone.now()
    locked = SandboxSession.objects.select_for_update().get(pk=session.pk)
    if not locked.link_is_usable(now):
        raise LinkUnusable
    # The conditional UPDATE is the guard on databases where select_for_update is a no-op.
    claimed = SandboxSession.objects.filter(pk=session.pk, link_used_at__isnull=True).update(
        link_used_at=now
    )
    if not claimed:
        raise LinkUnusable
    locked.link_used_at = now
    return locked, now


def session_complete(*, session: SandboxSession, identity: str) -> SandboxSession:
    """Complete the verification as ``identity``: the LivenessFace group is created now.

    Raises ``LinkUnusable`` when the link was used or has expired.
    """
    with transaction.atomic():
        locked, now = _claim_link(session)
        group = SandboxGroup.objects.create(
            group_id=new_group_id(now),
            group_type=GroupType.LIVENESS_FACE,
            name=f"liveness-{locked.byted_token[-8:].lower()}",
            owner_fingerprint=locked.owner_fingerprint,
            verified_identity=identity,
            created_at=now,
            updated_at=now,
        )
        locked.completed_at = now
        locked.result_code = RESULT_SUCCESS
        locked.identity = identity
        locked.group = group
        locked.save(update_fields=["completed_at", "result_code", "identity", "group"])
    return locked


def session_fail(*, session: SandboxSession) -> SandboxSession:
    """Fail the verification: the link is spent and no group is created.

    Raises ``LinkUnusable`` when the link was used or has expired.
    """
    with transaction.atomic():
        locked, now = _claim_link(session)
        locked.completed_at = now
        locked.result_code = RESULT_FAILURE
        locked.save(update_fields=["completed_at", "result_code"])
    return locked


def callback_url(session: SandboxSession) -> str:
    """Where the phone's browser goes after Complete or Fail (a GET, docs/upstream.md §6.1).

    The CallbackURL's own query is kept and the upstream's parameters are appended. SANDBOX:
    a failure carries ``resultCode=10001``, ``reqMeasureInfoValue=0`` (not billed) and still the
    ``bytedToken`` (whether the upstream sends it on failure is unverified, §12.8).
    """
    succeeded = session.result_code == RESULT_SUCCESS
    parts = urlsplit(session.callback_url)
    added = urlencode(
        [
            ("bytedToken", session.byted_token),
            ("resultCode", session.result_code),
            ("algorithmBaseRespCode", "0"),
            ("reqMeasureInfoValue", "1" if succeeded else "0"),
            ("verify_type", "real_time"),
        ]
    )
    # Appended to the query exactly as given: re-encoding it could alter what the caller signed.
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))
