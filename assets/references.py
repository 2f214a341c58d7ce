"""The producers' references page, ``/references/``: usable assets and their copyable references.

Producers sign in with their staff account (the admin's login page) and need one permission,
``assets.view_references`` (the "Producers" group of ``setup_roles``). The page lists exactly
``Asset.objects.usable_by_producers()``: active assets in an active group whose consent is
approved, in force today and covers their kind, so an asset leaves it the moment its consent
ends or is revoked. It shows the person's display name, the kind, a small preview, the consent's
uses, territory and end date; never contact details, notes, documents or original files.

Copying goes through ``copy_view``: the browser posts which assets, for which project and as
what, and gets the text to put in the clipboard only once ``reference_copy_create`` (the
references workflow's service) has written the ledger row and its audit event (409 for an asset
no longer usable).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from assets import seedance
from assets.models import (
    Asset,
    AssetKind,
    ProducerNotice,
    ReferenceCopy,
    ReferenceCopyKind,
    producer_name,
)
from assets.services import notices
from assets.services import references as references_service
from assets.thumbnails import cached_thumbnail
from consent.models import ConsentUse

# The one permission the page and its endpoints need.
PERMISSION = "assets.view_references"
PAGE_SIZE = 24
THUMBNAIL_SIZE = 160
# Previews are cached per file (``cached_thumbnail``); the ETag lets a browser keep its own copy
# while it asks every time (an asset whose consent ended is refused at once).
KIND_ICONS = {
    AssetKind.IMAGE: "assets/icons/image.svg",
    AssetKind.VIDEO: "assets/icons/video.svg",
    AssetKind.AUDIO: "assets/icons/audio.svg",
}


def producer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed-in staff with ``PERMISSION`` only: anyone else is sent to the admin's login page,
    staff without the permission get 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not (user.is_active and user.is_staff):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not user.has_perm(PERMISSION):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def _producer(request: HttpRequest) -> User:
    """The signed-in producer (``producer_required`` let only them in)."""
    return cast(User, request.user)


class ReferenceFilterForm(forms.Form):
    """The page's filters: a person by name (a search box, not a list of everyone: issue 16),
    or by number (a link to one person's assets), a kind, and a project of the usable assets."""

    name = forms.CharField(required=False, max_length=100, strip=True)
    person = forms.IntegerField(required=False, widget=forms.HiddenInput)
    kind = forms.ChoiceField(required=False)
    project = forms.ChoiceField(required=False)

    def __init__(self, data: Any, *, usable: QuerySet[Asset]) -> None:
        super().__init__(data)
        self.usable = usable
        projects = projects_of(usable)
        self.fields["name"].widget.attrs.update(
            {"type": "search", "placeholder": "Display name", "aria-label": "Person"}
        )
        self.fields["kind"].choices = [("", "Any kind"), *AssetKind.choices]  # type: ignore[attr-defined]
        self.fields["project"].choices = [  # type: ignore[attr-defined]
            ("", "Any project"),
            *((project, project) for project in projects),
        ]

    def clean_person(self) -> int | None:
        person: int | None = self.cleaned_data.get("person")
        if person is not None and not self.usable.filter(group__person_id=person).exists():
            raise ValidationError("This person has no asset you may use.")
        return person

    def filter(self, assets: QuerySet[Asset]) -> QuerySet[Asset]:
        """``assets`` narrowed by the valid filters (an invalid one is ignored, and shown)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        if person := data.get("person"):
            assets = assets.filter(group__person_id=person)
        if name := data.get("name"):
            assets = assets.filter(group__person__display_name__icontains=name)
        if kind := data.get("kind"):
            assets = assets.filter(kind=kind)
        if project := data.get("project"):
            uses = ConsentUse.objects.filter(consent_id=OuterRef("consent_id"), project=project)
            assets = assets.filter(Exists(uses))
        return assets


def projects_of(usable: QuerySet[Asset]) -> list[str]:
    """The projects of the consents of ``usable`` assets, in order, in one query that reads a
    few index entries per project (not every use of every usable asset, as a DISTINCT did).

    A loose index scan over ``consent_use_by_project`` (PostgreSQL and SQLite both run the
    recursive CTE): each project once, kept when one of its uses is a usable asset's consent.
    ``OFFSET 0`` keeps each EXISTS a check per project and per use (stopping at the first
    match): turned into joins, they read every usable asset.
    """
    uses = ConsentUse._meta.db_table
    connection = connections[usable.db]
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""  # SQLite: LIMIT first
    assets_sql, params = usable.order_by().values("consent_id").query.sql_with_params()
    sql = f"""
        WITH RECURSIVE projects(project) AS (
            SELECT MIN(project) FROM {uses}
            UNION ALL
            SELECT (SELECT MIN(u.project) FROM {uses} u WHERE u.project > projects.project)
            FROM projects WHERE projects.project IS NOT NULL
        )
        SELECT project FROM projects WHERE project IS NOT NULL AND EXISTS (
            SELECT 1 FROM {uses} u WHERE u.project = projects.project AND EXISTS (
                SELECT 1 FROM ({assets_sql}) a WHERE a.consent_id = u.consent_id{fence}
            ){fence}
        )
        ORDER BY project
    """  # noqa: S608 (table names and Django's SQL; the values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class Position:
    """Where a page starts or ends in the newest-first order: an asset's creation time and id.

    In the URL as ``<microseconds since the epoch>-<id>`` (``?older=`` or ``?newer=``): a page
    is read from its position on the ``asset_newest_first`` index, so page 6,000 costs what
    page 1 costs (an OFFSET read and dropped every asset before it). A position names no asset
    the user may not see: the page still shows only usable assets.
    """

    created_at: datetime.datetime
    pk: int

    @classmethod
    def of(cls, asset: Asset) -> Position:
        return cls(asset.created_at, asset.pk)

    @classmethod
    def parse(cls, value: str | None) -> Position | None:
        """The position in ``value``, or None when it is missing or not one."""
        micros, _, pk = (value or "").partition("-")
        if not (micros.isdigit() and pk.isdigit() and len(micros) <= 17 and len(pk) <= 18):
            return None
        return cls(_EPOCH + datetime.timedelta(microseconds=int(micros)), int(pk))

    def __str__(self) -> str:
        return f"{(self.created_at - _EPOCH) // datetime.timedelta(microseconds=1)}-{self.pk}"

    def older(self) -> Q:
        """Assets after this position in the newest-first order. The first term bounds the
        index scan (it starts here), the second breaks ties of one instant by id."""
        return Q(created_at__lte=self.created_at) & (
            Q(created_at__lt=self.created_at) | Q(pk__lt=self.pk)
        )

    def newer(self) -> Q:
        return Q(created_at__gte=self.created_at) & (
            Q(created_at__gt=self.created_at) | Q(pk__gt=self.pk)
        )


@dataclass(frozen=True)
class PageOf:
    """One page of assets, newest first, from a position (``?older=``: the page after it;
    ``?newer=``: the page before it; neither: the first), and the positions of the pages
    around it. No count and no OFFSET: one query of ``PAGE_SIZE + 1`` rows at any depth."""

    object_list: list[Asset]
    newer: Position | None
    older: Position | None

    @classmethod
    def read(cls, assets: QuerySet[Asset], query: Any) -> PageOf:
        newest_first = assets.order_by("-created_at", "-pk")
        if after := Position.parse(query.get("older")):
            found = list(newest_first.filter(after.older())[: PAGE_SIZE + 1])
            rows, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
            # The page came after ``after``, so newer ones exist (unless they just ended).
            return cls.around(rows, newer=bool(rows), older=more)
        if before := Position.parse(query.get("newer")):
            oldest_first = assets.order_by("created_at", "pk").filter(before.newer())
            found = list(oldest_first[: PAGE_SIZE + 1])
            rows, more = found[:PAGE_SIZE][::-1], len(found) > PAGE_SIZE
            return cls.around(rows, newer=more, older=bool(rows))
        found = list(newest_first[: PAGE_SIZE + 1])
        return cls.around(found[:PAGE_SIZE], newer=False, older=len(found) > PAGE_SIZE)

    @classmethod
    def around(cls, rows: list[Asset], *, newer: bool, older: bool) -> PageOf:
        return cls(
            rows,
            newer=Position.of(rows[0]) if newer and rows else None,
            older=Position.of(rows[-1]) if older and rows else None,
        )


@dataclass(frozen=True)
class Row:
    """One asset as the page shows it."""

    asset: Asset
    person: str
    projects: list[str]
    uses: list[ConsentUse]
    preview_url: str
    has_thumbnail: bool
    # The project the row's menu starts on: the one the page is filtered by, or the consent's
    # only project.
    preselected: str


@require_GET
@producer_required
def references_view(request: HttpRequest) -> HttpResponse:
    """The list: usable assets, filtered and paginated, at a constant number of queries."""
    usable = Asset.objects.usable_by_producers()
    form = ReferenceFilterForm(request.GET or None, usable=usable)
    # Newest first, on the asset_newest_first index: the page reads 25 assets from its position,
    # never sorts all of them, and counts none (issue 16); a person is found by name.
    assets = (
        form.filter(usable)
        .select_related("group__person", "consent")
        .prefetch_related("consent__uses")
    )
    page = PageOf.read(assets, request.GET)
    chosen_project = form.cleaned_data.get("project", "") if form.is_bound else ""
    rows = [_row(asset, chosen_project) for asset in page.object_list]
    notices = (
        ProducerNotice.objects.filter(user=_producer(request), acknowledged_at__isnull=True)
        .prefetch_related(
            Prefetch("copies", ReferenceCopy.objects.select_related("asset__group__person"))
        )
        .order_by("-created_at", "-pk")
    )
    query = request.GET.copy()
    for position in ("older", "newer"):
        query.pop(position, None)
    context = {
        **admin.site.each_context(request),
        "is_nav_sidebar_enabled": False,
        "title": "References",
        "form": form,
        "page": page,
        "rows": rows,
        "chosen_project": chosen_project,
        "notices": notices,
        "filter_query": query.urlencode(),
        "max_references": seedance.MAX_REFERENCES,
        "copy_url": reverse("references:copy"),
    }
    return TemplateResponse(request, "assets/references.html", context)


def _row(asset: Asset, chosen_project: str) -> Row:
    has_thumbnail = asset.kind in (AssetKind.IMAGE, AssetKind.VIDEO)
    preview = (
        reverse("references:thumbnail", args=[asset.pk])
        if has_thumbnail
        else static(KIND_ICONS[AssetKind(asset.kind)])
    )
    uses = list(asset.consent.uses.all()) if asset.consent else []
    projects = references_service.consent_projects(asset.consent)
    if chosen_project in projects:
        preselected = chosen_project
    else:
        preselected = projects[0] if len(projects) == 1 else ""
    return Row(
        asset=asset,
        person=producer_name(asset.group.person),
        projects=projects,
        uses=uses,
        preview_url=preview,
        has_thumbnail=has_thumbnail,
        preselected=preselected,
    )


@require_POST
@producer_required
def copy_view(request: HttpRequest) -> JsonResponse:
    """Record a copy and answer the text for the clipboard.

    Body (JSON): ``{"assets": [id, ...], "project": "...", "kind": "reference" |
    "content_item" | "content_array"}``. Answers 200 ``{"text", "message"}``, 400
    ``{"error"}`` for a request that cannot be met (no project, a project the consent does not
    cover, beyond the documented counts), 409 ``{"error", "unusable": [id, ...]}`` for assets
    no longer usable. Never cached.
    """
    try:
        payload = json.loads(request.body)
        asset_ids = [int(asset_id) for asset_id in payload["assets"]]
        project = str(payload.get("project", ""))
        kind = str(payload["kind"])
    except (ValueError, KeyError, TypeError):
        return _json({"error": "The request could not be read: reload the page."}, status=400)
    try:
        copied = references_service.reference_copy_create(
            user=request.user, asset_ids=asset_ids, project=project, kind=kind
        )
    except references_service.ReferenceNotUsable as refused:
        return _json({"error": " ".join(refused.messages), "unusable": refused.asset_ids}, 409)
    except ValidationError as refused:
        return _json({"error": " ".join(refused.messages)}, status=400)
    what = ReferenceCopyKind(kind).label
    count = len(copied.copies)
    if kind == ReferenceCopyKind.CONTENT_ARRAY:
        what += f" ({count} reference{'s' if count != 1 else ''})"
    project = copied.copies[0].project
    return _json(
        {"text": copied.text, "message": f"Copied the {what} for {project}; the copy is recorded."}
    )


def _json(data: dict[str, Any], status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status)
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
@producer_required
def thumbnail_view(request: HttpRequest, asset_id: int) -> HttpResponse:
    """A small JPEG preview of a usable image or video (``assets.thumbnails``), never the file.

    404 for an asset producers may not use (any more). The browser may keep it but must ask
    again each time (``no-cache`` with an ETag), so a withdrawn likeness stops showing.
    """
    asset = get_object_or_404(Asset.objects.usable_by_producers(), pk=asset_id)
    etag = f'"{asset.sha256[:40]}-{THUMBNAIL_SIZE}"'
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponse = HttpResponseNotModified()
    else:
        data = cached_thumbnail(asset, size=THUMBNAIL_SIZE)
        if data is None:
            return HttpResponseRedirect(static(KIND_ICONS[AssetKind(asset.kind)]))
        response = HttpResponse(data, content_type="image/jpeg")
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_POST
@producer_required
def acknowledge_view(request: HttpRequest, notice_id: int) -> HttpResponse:
    """The producer read a notice: it leaves the top of their pages."""
    notice = get_object_or_404(ProducerNotice, pk=notice_id, user=_producer(request))
    notices.producer_notice_acknowledge(notice=notice, user=request.user)
    return HttpResponseRedirect(reverse("references:list"))
