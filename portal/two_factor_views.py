"""The admin's sign-in with a second factor (rules and writes: ``portal.two_factor``).

The password form stays at ``/admin/login/``. For a user who needs a second factor a right
password does not sign in: the session only remembers who typed it (for a few minutes) and the
browser goes on to ``/admin/login/code/``, or to ``/admin/login/enrol/`` at the first sign-in
(QR code, the secret for typing in, a code to confirm, then ten recovery codes shown once). Only
a right code signs in, so no page of the portal ever sees a half-signed-in user. Wrong codes are
failed logins for django-axes: with wrong passwords they share its limit and lockout.
"""

from __future__ import annotations

import time
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_lockout_response
from django import forms
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME, get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login
from django_otp.models import Device

from portal import two_factor
from portal.qr import qr_svg

# The session's note of a right password still waiting for its code.
PENDING_USER = "two_factor_user_id"
PENDING_BACKEND = "two_factor_backend"
PENDING_SINCE = "two_factor_since"
# A right password is remembered this long for the second step.
PENDING_SECONDS = 10 * 60


class CodeForm(forms.Form):
    otp_token = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "autocapitalize": "none"}
        ),
    )


class TwoFactorLoginView(LoginView):
    """Django's admin login, which hands users who need a second factor on to it."""

    def form_valid(self, form: Any) -> HttpResponse:
        user = form.get_user()
        if not two_factor.two_factor_required(user):
            return super().form_valid(form)
        self.request.session.cycle_key()
        self.request.session[PENDING_USER] = user.pk
        self.request.session[PENDING_BACKEND] = user.backend
        self.request.session[PENDING_SINCE] = time.time()
        return _step(self.request, "admin:two_factor", self.get_success_url())


def _step(request: HttpRequest, url_name: str, next_url: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(f"{reverse(url_name)}?{urlencode({REDIRECT_FIELD_NAME: next_url})}")


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME, "")
    if url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return str(candidate)
    return reverse("admin:index")


def _pending_user(request: HttpRequest) -> Any | None:
    """The user whose right password this session holds, while it is recent."""
    since, pk = request.session.get(PENDING_SINCE), request.session.get(PENDING_USER)
    if since is None or pk is None or time.time() - float(since) > PENDING_SECONDS:
        return None
    user = get_user_model().objects.filter(pk=pk).first()
    return user if user is not None and user.is_active else None


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {
        **admin.site.each_context(request),
        "title": title,
        "next": _next_url(request),
        **extra,
    }


def _locked_out(request: HttpRequest, user: Any) -> HttpResponse | None:
    """The lockout page when the throttle holds this user name and address, else ``None``."""
    request.two_factor_step = True  # type: ignore[attr-defined]  # the lockout page's wording
    credentials = {"username": user.get_username()}
    if AxesProxyHandler.is_locked(request, credentials):
        return get_lockout_response(request, None, credentials)
    return None


def _wrong_code(request: HttpRequest, user: Any, form: CodeForm) -> None:
    """Counts a failed login for the throttle (its middleware answers with the lockout page
    once the limit is reached) and says so on the form."""
    user_login_failed.send(
        sender=__name__, credentials={"username": user.get_username()}, request=request
    )
    form.add_error("otp_token", "That code is not right. Check the time on your phone.")


def _sign_in(request: HttpRequest, user: Any, device: Device) -> None:
    backend = request.session[PENDING_BACKEND]
    for key in (PENDING_USER, PENDING_BACKEND, PENDING_SINCE):
        request.session.pop(key, None)
    auth_login(request, user, backend=backend)
    otp_login(request, device)


@sensitive_post_parameters("otp_token")
@csrf_protect
@never_cache
def code_view(request: HttpRequest) -> HttpResponse:
    """The second step: a code from the authenticator app, or a recovery code."""
    user = _pending_user(request)
    if user is None:
        return redirect("admin:login")
    if not two_factor.two_factor_enrolled(user):
        return _step(request, "admin:two_factor_enrol", _next_url(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST":
        if locked := _locked_out(request, user):
            return locked
        if form.is_valid():
            device = two_factor.two_factor_verify(user=user, token=form.cleaned_data["otp_token"])
            if device is not None:
                _sign_in(request, user, device)
                return HttpResponseRedirect(_next_url(request))
            _wrong_code(request, user, form)
    context = _context(request, "Two-step sign-in", form=form, username=user.get_username())
    return render(request, "registration/two_factor_code.html", context)


@sensitive_post_parameters("otp_token")
@csrf_protect
@never_cache
def enrol_view(request: HttpRequest) -> HttpResponse:
    """The first sign-in of a user who needs a second factor: set up an authenticator app."""
    user = _pending_user(request)
    if user is None:
        return redirect("admin:login")
    if two_factor.two_factor_enrolled(user):
        return _step(request, "admin:two_factor", _next_url(request))
    device = two_factor.authenticator_pending(user=user)
    form = CodeForm(request.POST or None)
    if request.method == "POST":
        if locked := _locked_out(request, user):
            return locked
        if form.is_valid():
            codes = two_factor.two_factor_enrol(
                user=user, device=device, token=form.cleaned_data["otp_token"]
            )
            if codes is not None:
                device.refresh_from_db()
                _sign_in(request, user, device)
                context = _context(request, "Your recovery codes", codes=codes)
                return render(request, "registration/two_factor_recovery_codes.html", context)
            _wrong_code(request, user, form)
    context = _context(
        request,
        "Set up two-step sign-in",
        form=form,
        username=user.get_username(),
        qr=qr_svg(device.config_url, label="QR code for your authenticator app"),
        secret=two_factor.authenticator_secret(device),
    )
    return render(request, "registration/two_factor_enrol.html", context)
