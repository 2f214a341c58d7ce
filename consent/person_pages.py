"""The person's own page, ``/me/<token>/``: their consent, verification, likeness and its uses.

No login: a personal link (``consent.models.PersonalLink``) opens it, from any email the person
received or asked for at ``/me/`` (which answers the same whether the address is known). The page
lists each consent version they signed (terms, uses, status, end date, the signed document), their
verification, their assets (small previews, never the files) and for which projects their likeness
was referenced (the copy ledger, without producers' names), and lets them withdraw a consent in
two steps (``consent.person_links.consent_withdraw_by_person``). Mobile first, in their language,
with the verification pages' base template and language handling. A link that is forged, expired
or revoked gets one neutral page.
"""

from __future__ import annotations

import contextlib
import posixpath
from dataclasses import dataclass
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.templatetags.static import static
from django.urls import reverse
from django.utils import translation
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from assets.models import Asset, AssetKind, ReferenceCopy, Withdrawal, WithdrawalItemStatus
from assets.references import KIND_ICONS
from assets.thumbnails import cached_thumbnail
from audit.services import audit_record
from consent import person_links
from consent.models import ConsentRecord, ConsentStatus, PersonalLink, django_language
from consent.services import ConsentTransitionError, consent_terms
from portal.client_ip import client_ip
from portal.private_files import content_type_of_stored_name, private_file_response
from portal.throttle import throttle_take
from verification.views import _page_language, _render

# The consent versions the person sees: every one they signed, not drafts or refused ones.
SHOWN_STATUSES = (
    ConsentStatus.PENDING_REVIEW,
    ConsentStatus.APPROVED,
    ConsentStatus.REVOKED,
    ConsentStatus.EXPIRED,
    ConsentStatus.SUPERSEDED,
)
# "Send me my link": so many requests per client address, and emails per address, an hour
# (``portal.throttle``: one count for every web process).
REQUESTS_PER_CLIENT = 10
EMAILS_PER_ADDRESS = 3
LIMIT_WINDOW_SECONDS = 3600
THUMBNAIL_SIZE = 240


class LinkRequestForm(forms.Form):
    email = forms.EmailField(label=_("Your email address"), max_length=254)


class WithdrawForm(forms.Form):
    understood = forms.BooleanField(
        label=_("I understand that this cannot be undone."), required=True
    )
    reason = forms.CharField(
        label=_("Why (optional)"), required=False, max_length=2000, widget=forms.Textarea
    )


@dataclass(frozen=True)
class Progress:
    """How far a consent's withdrawal upstream has come, for the person."""

    withdrawal: Withdrawal
    total: int
    confirmed: int
    failed: int

    @property
    def state(self) -> str:
        if self.withdrawal.confirmed_at is not None:
            return "done"
        return "attention" if self.failed else "in_progress"


def withdrawal_progress(withdrawal: Withdrawal) -> Progress:
    statuses = [item.status for item in withdrawal.items.all()]
    return Progress(
        withdrawal=withdrawal,
        total=len(statuses),
        confirmed=statuses.count(WithdrawalItemStatus.CONFIRMED),
        failed=statuses.count(WithdrawalItemStatus.FAILED),
    )


@never_cache
@require_http_methods(["GET", "POST"])
def link_request(request: HttpRequest) -> HttpResponse:
    """The "send me my link" form: the same answer whether or not the address is known."""
    language = _page_language(request, None)
    form = LinkRequestForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        client = client_ip(request)
        if not throttle_take(
            key=f"me-link:client:{client}",
            limit=REQUESTS_PER_CLIENT,
            window_seconds=LIMIT_WINDOW_SECONDS,
        ):
            with translation.override(language):
                form.add_error(None, _("Too many requests. Please wait an hour."))
            return _render(
                request, "consent/person/link_request.html", {"form": form},
                language=language, status=429,
            )  # fmt: skip
        address = form.cleaned_data["email"].strip().lower()
        # Keyed by SECRET_KEY: the count's row holds no address, nor a digest that a list of
        # addresses could be matched against.
        digest = salted_hmac("me-link", address, algorithm="sha256").hexdigest()
        # Past the address's limit nothing is sent, and the answer is still the same.
        if throttle_take(
            key=f"me-link:address:{digest}",
            limit=EMAILS_PER_ADDRESS,
            window_seconds=LIMIT_WINDOW_SECONDS,
        ):
            person_links.personal_link_send(email=address)
        return _render(request, "consent/person/link_sent.html", {}, language=language)
    return _render(request, "consent/person/link_request.html", {"form": form}, language=language)


def _refused(request: HttpRequest) -> HttpResponse:
    """One neutral page for a forged, expired or revoked link: which it was is never told."""
    return _render(
        request, "consent/person/link_invalid.html", {},
        language=_page_language(request, None), status=404,
    )  # fmt: skip


def _language(request: HttpRequest, link: PersonalLink) -> str:
    return _page_language(request, django_language(link.person.preferred_language))


def _consents(link: PersonalLink) -> list[dict[str, Any]]:
    records = (
        ConsentRecord.objects.filter(person=link.person, status__in=SHOWN_STATUSES)
        .select_related("withdrawal")
        .prefetch_related("uses", "withdrawal__items")
        .order_by("-created_at", "-pk")
    )
    rows = []
    for record in records:
        withdrawal = getattr(record, "withdrawal", None)
        rows.append(
            {
                "record": record,
                "terms": consent_terms(record),
                "uses": list(record.uses.all()),
                "progress": withdrawal_progress(withdrawal) if withdrawal else None,
                "withdrawable": person_links.withdrawable(record),
            }
        )
    return rows


@never_cache
@require_GET
def page(request: HttpRequest, token: str) -> HttpResponse:
    """The person's page."""
    link = person_links.personal_link_find(token=token)
    if link is None:
        return _refused(request)
    person = link.person
    assets = (
        Asset.objects.filter(group__person=person)
        .exclude(status=Asset.Status.REJECTED)
        .select_related("group", "consent")
        .order_by("-created_at", "-pk")
    )
    copies = (
        ReferenceCopy.objects.filter(asset__group__person=person)
        .select_related("asset")
        .order_by("project", "-copied_at", "-pk")
    )
    context = {
        "person": person,
        "token": token,
        "consents": _consents(link),
        "invitations": person.verification_sessions.order_by("-created_at", "-pk"),
        "assets": [
            {
                "asset": asset,
                "preview": asset.kind != AssetKind.AUDIO and _has_media(asset),
                "state": _asset_state(asset),
            }
            for asset in assets
        ],
        "copies": copies,
        "link": link,
    }
    return _render(request, "consent/person/page.html", context, language=_language(request, link))


def _asset_state(asset: Asset) -> str:
    """``in_use`` (producers may reference it), ``leaving`` (active upstream, its consent
    ended: its withdrawal deletes it), ``withdrawn``, ``failed`` or ``registering``."""
    if asset.status == Asset.Status.ACTIVE:
        return "in_use" if asset.is_usable_by_producers() else "leaving"
    if asset.status in (Asset.Status.WITHDRAWN, Asset.Status.FAILED):
        return str(asset.status)
    return "registering"


def _has_media(asset: Asset) -> bool:
    return asset.media_destroyed_at is None and bool(asset.file)


@require_GET  # private_file_response sets its own Cache-Control (no-store)
def document(request: HttpRequest, token: str, consent_id: int) -> HttpResponseBase:
    """The signed document of one of the person's consents, as private files are served."""
    link = person_links.personal_link_find(token=token)
    if link is None:
        return _refused(request)
    record = get_object_or_404(
        ConsentRecord, pk=consent_id, person=link.person, status__in=SHOWN_STATUSES
    )
    if not record.signed_document:
        return _refused(request)
    name = str(record.signed_document.name)
    audit_record(
        action="file.downloaded",
        obj=record,
        actor_label=person_links.THE_PERSON,
        person_id=record.person_id,
        detail={"via": "personal link", "link_id": link.pk, "file": name},
    )
    return private_file_response(
        record.signed_document.open("rb"),
        content_type=content_type_of_stored_name(name),
        filename=posixpath.basename(name),
        as_attachment=True,
    )


@require_GET  # no-store, set below
def thumbnail(request: HttpRequest, token: str, asset_id: int) -> HttpResponse:
    """A small JPEG preview of one of the person's own assets (``assets.thumbnails``)."""
    link = person_links.personal_link_find(token=token)
    if link is None:
        return _refused(request)
    asset = get_object_or_404(Asset, pk=asset_id, group__person=link.person)
    if not _has_media(asset):
        return HttpResponseRedirect(static(KIND_ICONS[AssetKind(asset.kind)]))
    data = cached_thumbnail(asset, size=THUMBNAIL_SIZE)
    if data is None:
        return HttpResponseRedirect(static(KIND_ICONS[AssetKind(asset.kind)]))
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def withdraw(request: HttpRequest, token: str, consent_id: int) -> HttpResponse:
    """Withdraw a consent: this page says what happens; its confirmed form does it."""
    link = person_links.personal_link_find(token=token)
    if link is None:
        return _refused(request)
    language = _language(request, link)
    record = get_object_or_404(
        ConsentRecord, pk=consent_id, person=link.person, status__in=SHOWN_STATUSES
    )
    back = reverse("me:page", args=[token]) + f"?lang={language}#consent-{record.pk}"
    if not person_links.withdrawable(record):
        return HttpResponseRedirect(back)
    form = WithdrawForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        # Ended meanwhile (legal, the scheduler): the page shows how.
        with contextlib.suppress(ConsentTransitionError):
            person_links.consent_withdraw_by_person(
                link=link, record=record, reason=form.cleaned_data["reason"]
            )
        return HttpResponseRedirect(back)
    context = {"person": link.person, "token": token, "record": record, "form": form}
    return _render(
        request, "consent/person/withdraw.html", context,
        language=language, status=400 if form.errors else 200,
    )  # fmt: skip
