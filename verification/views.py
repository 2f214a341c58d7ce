"""The person's pages: mobile first, no login, in their language (en, zh-Hans, zh-Hant).

The invitation link (``/verify/<token>/``) or the short code (``/verify/``) leads to one page that
says who invites them and why, and one button, "Start verification" (a POST, so that link
scanners and reloads never burn an upstream session). The button mints the upstream session and
redirects to its H5 link. The H5 page sends the browser back to ``/verify/callback/<id>/``, which
records what it carried and queues a confirmation; only the upstream's result decides.

Nothing here depends on the upstream's phone page: any implementation of the protocol works.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from csp.decorators import csp_update
from django import forms
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from consent import esign
from consent.models import TemplateNotice, django_language, upstream_language
from portal.client_ip import client_ip
from portal.qr import qr_svg
from verification import throttle
from verification.models import (
    UpstreamSession,
    UpstreamStatus,
    VerificationSession,
    VerificationStatus,
    normalise_code,
)
from verification.services import invitations, sessions

PAGE_LANGUAGES = [code for code, _name in settings.LANGUAGES]

# User-Agent markers of in-app browsers, where the camera or the return to the portal often
# fails: the page asks the person to open it in their phone's own browser first.
IN_APP_BROWSERS = (
    ("MicroMessenger", "WeChat"),
    ("Instagram", "Instagram"),
    ("FBAN", "Facebook"),
    ("FBAV", "Facebook"),
    ("FB_IAB", "Facebook"),
    ("musical_ly", "TikTok"),
    ("BytedanceWebview", "TikTok"),
    ("TikTok", "TikTok"),
    (" Line/", "LINE"),
)
MOBILE_MARKERS = ("Mobi", "Android", "iPhone", "iPad", "iPod")


def in_app_browser(user_agent: str) -> str:
    """The in-app browser's name (``WeChat``…), or ``""``."""
    for marker, name in IN_APP_BROWSERS:
        if marker in user_agent:
            return name
    return ""


def looks_like_desktop(user_agent: str) -> bool:
    """No mobile marker in the User-Agent (iPads asking for desktop sites are told apart by the
    page's script, which hides the warning on touch screens)."""
    return bool(user_agent) and not any(marker in user_agent for marker in MOBILE_MARKERS)


def _page_language(request: HttpRequest, default: str | None) -> str:
    """``?lang=`` when it names a page language, else ``default`` (the person's), else the
    browser's (LocaleMiddleware)."""
    asked = (request.GET.get("lang") or request.POST.get("lang") or "").lower()
    if asked in PAGE_LANGUAGES:
        return asked
    return default or translation.get_language() or settings.LANGUAGE_CODE


def _render(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    language: str,
    status: int = 200,
) -> HttpResponse:
    with translation.override(language):
        response = render(
            request,
            template,
            {
                **context,
                "page_language": language,
                "page_languages": settings.LANGUAGES,
                "organisation": settings.PORTAL_ORGANISATION_NAME,
            },
            status=status,
        )
    response["Content-Language"] = language
    # The pages carry a personal link: never indexed (and never cached: every view is never_cache).
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _not_found(request: HttpRequest) -> HttpResponse:
    return _render(
        request, "verification/unknown.html", {}, language=_page_language(request, None), status=404
    )


class CodeForm(forms.Form):
    code = forms.CharField(label=_("Your code"), max_length=20)


@never_cache
@require_http_methods(["GET", "POST"])
def code_entry(request: HttpRequest) -> HttpResponse:
    """A person types the short code from their email or the studio's screen."""
    language = _page_language(request, None)
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        address = client_ip(request)
        allowed = throttle.code_try_take(address=address)
        invitation = None
        if allowed:
            invitation = invitations.invitation_find_by_code(
                code=normalise_code(form.cleaned_data["code"])
            )
        if invitation is not None:
            throttle.code_try_refund(address=address)
            url = reverse("verify:invitation", args=[invitation.invitation_token])
            return HttpResponseRedirect(f"{url}?lang={language}")
        with translation.override(language):
            form.add_error(
                "code",
                _("No open invitation has this code. Check it and try again.")
                if allowed
                else _("Too many tries. Please wait ten minutes."),
            )
        status = 404 if allowed else 429
    return _render(
        request, "verification/code.html", {"form": form}, language=language, status=status
    )


def _invitation_context(request: HttpRequest, invitation: VerificationSession) -> dict[str, Any]:
    user_agent = request.headers.get("User-Agent", "")
    latest = invitation.upstream_sessions.exclude(byted_token=None).first()
    link = invitations.invitation_url(invitation)
    last_attempt = ""
    if latest is not None:
        last_attempt = {
            UpstreamStatus.CONFIRMED: "confirmed",
            UpstreamStatus.FAILED: "failed",
            UpstreamStatus.EXPIRED: "expired",
        }.get(UpstreamStatus(latest.status), "pending")
        # The page reported a failure: say so now (the upstream confirms it only at expiry).
        if last_attempt == "pending" and latest.callback_received_at is not None:
            failed = latest.callback_result_code != invitations.SUCCESS_RESULT_CODE
            last_attempt = "failed" if failed else "pending"
    return {
        "invitation": invitation,
        "person": invitation.person,
        "consent": invitation.consent,
        "inviter": invitation.created_by,
        "attempts_left": invitations.invitation_attempts_left(invitation),
        "last_attempt": last_attempt,
        "in_app_browser": in_app_browser(user_agent),
        "desktop": looks_like_desktop(user_agent),
        "link": link,
        "link_qr": qr_svg(link),
        "code_url": invitations.code_entry_url(),
    }


# "Start verification" posts here and is redirected to the provider's H5 page on its own origin;
# browsers apply form-action to that redirect, so the invitation page allows any HTTPS target.
_START_REDIRECTS_TO_THE_PROVIDER = {"form-action": ["https:"]}


@never_cache
@csp_update(_START_REDIRECTS_TO_THE_PROVIDER)  # type: ignore[arg-type]  # stubs: no URL args
@require_GET
def invitation(request: HttpRequest, token: str) -> HttpResponse:
    """The invitation page, or a plain page saying that it ended (and how)."""
    try:
        invitation = invitations.invitation_open(token=token)
    except invitations.InvitationUnavailable:
        return _not_found(request)
    language = _page_language(request, django_language(invitation.person.preferred_language))
    if not invitation.is_open:
        status = 200 if invitation.status == VerificationStatus.VERIFIED else 410
        return _render(
            request,
            "verification/ended.html",
            {"invitation": invitation},
            language=language,
            status=status,
        )
    if invitation.consent is not None and invitation.consent.awaiting_signature:
        return _render_signing(request, invitation, language=language)
    context = {**_invitation_context(request, invitation), "signed": "signed" in request.GET}
    return _render(request, "verification/invitation.html", context, language=language)


# What the signing page says when a signature is refused, by ``SigningRefused.code``.
_SIGNING_PROBLEMS = {
    "name": _("Type your full legal name exactly as it appears above."),
    "notices": _("Please confirm each notice before signing."),
    "drawing": _("Please draw your signature in the box."),
    "changed": _("The consent was changed since you opened this page: please read it again."),
    "unavailable": _("This consent cannot be signed right now. Please contact the studio."),
}


def _render_signing(
    request: HttpRequest,
    invitation: VerificationSession,
    *,
    language: str,
    problem: str = "",
    status: int = 200,
) -> HttpResponse:
    """The signing step: the consent text in full, the terms, each notice, name and signature."""
    consent = invitation.consent
    assert consent is not None and consent.template_version is not None
    version = consent.template_version
    with translation.override(language):
        terms = esign.signing_terms(consent)
    context = {
        "invitation": invitation,
        "person": invitation.person,
        "consent": consent,
        "version": version,
        "terms": terms,
        "digest": esign.terms_digest(consent),
        "notices": [(code, TemplateNotice(code).label) for code in version.notices],
        "needs_drawing": "drawn_signature" in version.required_fields,
        "problem": _SIGNING_PROBLEMS.get(problem, "") if problem else "",
        "posted": request.POST if request.method == "POST" else {},
        "confirmed": request.POST.getlist("notices") if request.method == "POST" else [],
    }
    return _render(request, "verification/sign.html", context, language=language, status=status)


def _client_address(request: HttpRequest) -> str | None:
    """The address the request came from (the proxy's ``X-Forwarded-For`` is trusted only as
    far as Django's ``REMOTE_ADDR`` is set by the deployment)."""
    return request.META.get("REMOTE_ADDR") or None


@never_cache
@require_POST
def sign(request: HttpRequest, token: str) -> HttpResponse:
    """The person signs their consent (``consent.esign.consent_esign``), then goes on to verify."""
    try:
        invitation = invitations.invitation_open(token=token)
    except invitations.InvitationUnavailable:
        return _not_found(request)
    language = _page_language(request, django_language(invitation.person.preferred_language))
    page = reverse("verify:invitation", args=[token]) + f"?lang={language}"
    consent = invitation.consent
    if not invitation.is_open or consent is None or not consent.awaiting_signature:
        return redirect(page)
    try:
        esign.consent_esign(
            invitation=invitation,
            typed_name=request.POST.get("typed_name", "")[:200],
            notices_confirmed=request.POST.getlist("notices"),
            digest=request.POST.get("digest", ""),
            drawing=request.POST.get("drawing", "")[: 2 * 300_000],
            ip_address=_client_address(request),
            user_agent=request.headers.get("User-Agent", ""),
        )
    except esign.SigningRefused as refused:
        invitation.refresh_from_db()
        if refused.code == "changed" and invitation.consent is not None:
            invitation.consent.refresh_from_db()
        if invitation.consent is None or not invitation.consent.awaiting_signature:
            return redirect(page)
        return _render_signing(
            request, invitation, language=language, problem=refused.code, status=400
        )
    return redirect(page + "&signed=1")


@never_cache
@csp_update(_START_REDIRECTS_TO_THE_PROVIDER)  # type: ignore[arg-type]  # stubs: no URL args
@require_POST
def start(request: HttpRequest, token: str) -> HttpResponse:
    """ "Start verification": mint an upstream session now and send the phone to its H5 link."""
    try:
        invitation = invitations.invitation_open(token=token)
    except invitations.InvitationUnavailable:
        return _not_found(request)
    language = _page_language(request, django_language(invitation.person.preferred_language))
    page = reverse("verify:invitation", args=[token]) + f"?lang={language}"
    if not invitation.is_open:
        return redirect(page)
    try:
        verification = sessions.upstream_session_start(
            invitation=invitation,
            purpose=UpstreamSession.Purpose.PHONE,
            language=upstream_language(language),
        )
    except invitations.AttemptsExhausted:
        problem, status = "attempts", 409
    except invitations.InvitationUnavailable:
        return redirect(page)
    except invitations.UpstreamStartFailed:
        problem, status = "upstream", 503
    else:
        return HttpResponseRedirect(verification.h5_link)
    invitation.refresh_from_db()
    if not invitation.is_open:  # the last attempt ended it
        return redirect(page)
    context = {**_invitation_context(request, invitation), "problem": problem}
    return _render(
        request, "verification/invitation.html", context, language=language, status=status
    )


@never_cache
@require_GET
def callback(request: HttpRequest, public_id: UUID) -> HttpResponse:
    """Where the H5 page sends the browser back (GET with ``bytedToken``, ``resultCode``, …)."""
    outcome = sessions.upstream_session_record_callback(
        public_id=public_id, params=request.GET.dict()
    )
    verification = outcome.verification
    if outcome.kind != "recorded" or verification is None:
        # Unknown or replayed: nothing happened, and the page says nothing about any session.
        language = _page_language(request, None)
        return _render(request, "verification/neutral.html", {}, language=language)
    invitation = verification.invitation
    language = _page_language(request, django_language(verification.language))
    claimed_success = verification.callback_result_code == invitations.SUCCESS_RESULT_CODE
    context = {
        "verification": verification,
        "person": invitation.person,
        "claimed_success": claimed_success,
        "status_url": reverse("verify:callback_status", args=[verification.public_id]),
        "retry_url": reverse("verify:invitation", args=[invitation.invitation_token])
        + f"?lang={language}",
        "can_retry": invitation.is_open and invitations.invitation_attempts_left(invitation) > 0,
    }
    return _render(request, "verification/callback.html", context, language=language)


@never_cache
@require_GET
def callback_status(request: HttpRequest, public_id: UUID) -> JsonResponse:
    """``{"status": "pending" | "verified" | "failed" | "expired"}`` for the callback page."""
    verification = UpstreamSession.objects.filter(public_id=public_id).first()
    if verification is None:
        return JsonResponse({"status": "unknown"}, status=404)
    status = {
        UpstreamStatus.CONFIRMED: "verified",
        UpstreamStatus.FAILED: "failed",
        UpstreamStatus.EXPIRED: "expired",
    }.get(UpstreamStatus(verification.status), "pending")
    return JsonResponse({"status": status})
