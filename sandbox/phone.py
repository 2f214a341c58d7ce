"""The phone page behind ``H5Link``: it stands in for BytePlus's liveness check.

``GET /sandbox/h5/<link-id>?bytedToken=...&lng=en`` shows the session and lets the tester pick
the face identity to verify as (or upload a selfie carrying a sandbox face marker), then Complete
or Fail. Either spends the link and redirects the browser to the session's CallbackURL with the
upstream's query parameters. A spent or expired link answers 410.
"""

from __future__ import annotations

import secrets

from django import forms
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone

from assets import media
from sandbox import faces, services
from sandbox.ids import UPSTREAM_ZONE
from sandbox.models import SandboxSession
from sandbox.strings import STRINGS


def language(value: str | None) -> str:
    """The page language for ``lng``: ``en``, ``zh`` or ``zh-Hant``; anything else is ``zh``."""
    normalised = (value or "").strip().lower()
    if normalised == "en" or normalised.startswith("en-"):
        return "en"
    if normalised in ("zh-hant", "zh-tw", "zh-hk"):
        return "zh-Hant"
    return "zh"


class VerifyForm(forms.Form):
    decision = forms.ChoiceField(choices=[("complete", "Complete"), ("fail", "Fail")])
    identity = forms.ChoiceField(
        required=False, choices=[(identity, identity) for identity in faces.IDENTITIES]
    )
    selfie = forms.FileField(required=False)


def h5(request: HttpRequest, link_id: str) -> HttpResponse:
    """The phone page of one session (GET), and its Complete/Fail form (POST)."""
    session = SandboxSession.objects.filter(link_id=link_id).first()
    if session is None or request.GET.get("bytedToken") != session.byted_token:
        raise Http404("No such verification link.")
    strings = STRINGS[language(request.GET.get("lng"))]
    now = timezone.now()
    if not session.link_is_usable(now):
        return _gone(request, strings)

    if request.method == "POST":
        form = VerifyForm(request.POST, request.FILES)
        if form.is_valid():
            return _decide(request, session, form, strings)
        status = 400
    else:
        form = VerifyForm(initial={"identity": next(iter(faces.IDENTITIES), "")})
        SandboxSession.objects.filter(pk=session.pk, link_opened_at__isnull=True).update(
            link_opened_at=now
        )
        status = 200
    return _page(request, session, form, strings, status=status)


def _decide(
    request: HttpRequest, session: SandboxSession, form: VerifyForm, strings: dict[str, str]
) -> HttpResponse:
    try:
        if form.cleaned_data["decision"] == "fail":
            session = services.session_fail(session=session)
        else:
            identity = _identity(form, strings)
            if identity is None:
                return _page(request, session, form, strings, status=400)
            session = services.session_complete(session=session, identity=identity)
    except services.LinkUnusable:
        return _gone(request, strings)
    return HttpResponseRedirect(services.callback_url(session))


def _identity(form: VerifyForm, strings: dict[str, str]) -> str | None:
    """The identity to verify as, or None after adding the form error that says why.

    A selfie wins over the picked identity. SANDBOX: a selfie without a marker becomes a new,
    unique identity (``selfie-<hex>``), so no demo portrait (each marked with a demo identity)
    matches it; unmarked files still do, as ``sandbox.faces`` treats them as the verified person.
    Several faces (``crowd``, picked or read from the selfie) cannot verify.
    """
    selfie = form.cleaned_data.get("selfie")
    if selfie:
        try:
            info = media.probe_media(selfie, filename=selfie.name)
        except media.MediaRejected as exc:
            form.add_error("selfie", str(exc))
            return None
        if info.kind != "image":
            form.add_error("selfie", strings["not_image"])
            return None
        identity = faces.face_identity_of(selfie, kind="image") or f"selfie-{secrets.token_hex(4)}"
        field = "selfie"
    else:
        identity = form.cleaned_data.get("identity") or ""
        field = "identity"
    if not identity:
        form.add_error("identity", strings["pick_one"])
        return None
    if identity == faces.MULTIPLE_FACES:
        form.add_error(field, strings["crowd"])
        return None
    return identity


def _page(
    request: HttpRequest,
    session: SandboxSession,
    form: VerifyForm,
    strings: dict[str, str],
    *,
    status: int,
) -> HttpResponse:
    seconds_left = max(0, int((session.link_expires_at - timezone.now()).total_seconds()))
    identities = [
        {
            "value": identity,
            "description": faces.IDENTITY_DESCRIPTIONS.get(identity, ""),
            "checked": form["identity"].value() == identity,
        }
        for identity in faces.IDENTITIES
    ]
    context = {
        "t": strings,
        "lang": language(request.GET.get("lng")),
        "session": session,
        "token_suffix": session.byted_token[-6:],
        "created": session.created_at.astimezone(UPSTREAM_ZONE).strftime("%Y-%m-%d %H:%M:%S"),
        "seconds_left": seconds_left,
        "identities": identities,
        "form": form,
    }
    return render(request, "sandbox/h5.html", context, status=status)


def _gone(request: HttpRequest, strings: dict[str, str]) -> HttpResponse:
    context = {"t": strings, "lang": language(request.GET.get("lng"))}
    return render(request, "sandbox/h5_gone.html", context, status=410)
