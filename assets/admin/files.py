"""Admin of asset groups and assets: uploads (one or several files), states, references, files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from assets.media import LIMITS
from assets.models import (
    Asset,
    AssetGroup,
    ReferenceCopy,
)
from assets.services import gate, pipeline, withdrawals
from consent.models import ConsentRecord, Person
from portal.admin_filters import ScalableChangelist
from portal.admin_helpers import (
    KeepRows,
    PrivateFileAdmin,
    ReadOnlyInline,
    StatusColumn,
    count_of,
    fieldsets_without,
    file_link,
    local_time,
)
from upstream import UpstreamError

_SYSTEM_FIELDS = ("created_at", "updated_at")

# Opening an asset's original file (the person's face, body or voice as recorded) takes more than
# viewing its row: producers view rows and copy references, and never get this permission.
ASSET_FILE_PERMISSION = "assets.view_asset_file"


def may_open_asset_files(request: HttpRequest) -> bool:
    """Whether the user may open assets' original files (and so be shown links to them)."""
    return request.user.has_perm(ASSET_FILE_PERMISSION)


@admin.display(description="reference")
def asset_reference(asset: Asset) -> str:
    """The ``asset://<Id>`` reference with a copy button, only while producers may use it
    (active, and its consent in force: a revoked consent's assets lose the button at once)."""
    if asset.status != Asset.Status.ACTIVE or not asset.asset_uri:
        return "—"
    if not asset.is_usable_by_producers():
        return format_html(
            "<s>{}</s> (not to be used: its consent is not in force, or its group is withdrawn)",
            asset.asset_uri,
        )
    return format_html(
        '<code class="asset-uri">{}</code> <button type="button" class="button copy-button" '
        'data-copy="{}" title="Copy to the clipboard">Copy</button>',
        asset.asset_uri,
        asset.asset_uri,
    )


@admin.display(description="measured")
def measured(asset: Asset) -> str:
    """Width x height, duration and frame rate, as far as the file has them."""
    parts = []
    if asset.width and asset.height:
        parts.append(f"{asset.width}x{asset.height}")
    if asset.duration_seconds is not None:
        parts.append(f"{asset.duration_seconds:.1f} s")
    if asset.fps is not None:
        parts.append(f"{asset.fps:g} fps")
    return ", ".join(parts) or "—"


@admin.display(description="state")
def asset_state(asset: Asset) -> str:
    """The asset's state in plain words: what happens now, why it waits, or what to do."""
    Status = Asset.Status
    status = asset.status
    if status == Status.QUEUED:
        if asset.error_code:
            return format_html(
                "Queued: the last attempt failed ({}: {}). Trying again at {}.",
                asset.error_code,
                asset.error_explanation or asset.error_message,
                local_time(asset.next_attempt_at),
            )
        return "Queued: waiting for a worker to send it upstream."
    if status == Status.UPLOADING:
        return format_html(
            "Uploading: the upstream is downloading the file (attempt {}).", asset.attempts
        )
    if status == Status.PROCESSING:
        checks = "the file" if asset.kind == Asset.Kind.AUDIO else "the file and the face"
        text = format_html(
            "Processing upstream: the upstream checks {} (usually seconds); next check at {}.",
            checks,
            local_time(asset.next_attempt_at),
        )
        if asset.error_code:
            text = format_html(
                "{} The last check failed: {}", text, asset.error_explanation or asset.error_code
            )
        return text
    if status == Status.ACTIVE:
        if not asset.is_usable_by_producers():
            return (
                "Active upstream, but not to be used: its consent is not in force (or its group "
                "is withdrawn); a withdrawal deletes it upstream."
            )
        return "Active: producers can use its reference."
    if status == Status.FAILED:
        return format_html(
            "Failed: {}{}. What to do: {}",
            asset.error_code or "unknown error",
            f" ({asset.error_message})" if asset.error_message else "",
            asset.error_explanation or "upload it again.",
        )
    if status == Status.WITHDRAWN:
        return format_html(
            "Withdrawn on {}: deleted upstream, its reference no longer works.",
            local_time(asset.withdrawn_at),
        )
    return "Rejected locally: it never left the portal."


@admin.display(description="file")
def asset_file(asset: Asset) -> str:
    # Stored under a random name (assets.models.asset_file_path); staff know it by its upload name.
    return file_link(asset, "file", asset.original_filename)


class AssetColumns:
    """Gives an admin or inline the asset columns above as read-only fields."""

    reference = staticmethod(asset_reference)
    measured = staticmethod(measured)
    file_link = staticmethod(asset_file)
    state = staticmethod(asset_state)


# --- Uploads -----------------------------------------------------------------------------------

_LIMITS_HELP = " ".join(
    f"{kind.capitalize()}: {limits.describe()}." for kind, limits in LIMITS.items()
)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Every file of one ``<input type=file multiple>``, as a list (Django's documented way)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class AssetUploadForm(forms.Form):
    """The choices of an upload; the checks themselves are ``pipeline.asset_create``'s."""

    consent = forms.ModelChoiceField(
        queryset=ConsentRecord.objects.none(),
        required=False,
        empty_label="Automatic: the approved consent in force that covers each file's kind",
        help_text="Only consents in force today are offered.",
    )

    def __init__(self, *args: Any, person: Person | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        in_force = ConsentRecord.objects.in_force().select_related("person")
        if person is not None:
            in_force = in_force.filter(person=person)
        self.fields["consent"].queryset = in_force  # type: ignore[attr-defined]


class AssetAddForm(AssetUploadForm):
    """One file into a chosen group (the asset's add page)."""

    group = forms.ModelChoiceField(queryset=AssetGroup.objects.select_related("person"))
    file = forms.FileField(help_text=_LIMITS_HELP)
    field_order = ("group", "consent", "file")


class PersonUploadForm(AssetUploadForm):
    """Several files of one person, into their verified group (the person's page)."""

    uploads = MultipleFileField(
        help_text="Choose several files at once; each is checked on its own. " + _LIMITS_HELP
    )


@dataclass
class UploadResult:
    """One file's verdict: ``asset`` when it was queued, else every reason it was refused."""

    name: str
    asset: Asset | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return self.asset.precheck_warnings if self.asset is not None else []


def upload_view(
    request: HttpRequest, *, model_admin: admin.ModelAdmin, person: Person | None = None
) -> HttpResponse:
    """The upload page: on a person's page several files, else the single add form.

    Each file goes through ``pipeline.asset_create`` on its own: good ones are stored and
    queued, bad ones reported with every reason.
    """
    if not request.user.has_perm("assets.add_asset"):
        raise PermissionDenied
    form_class = AssetAddForm if person is None else PersonUploadForm
    form: AssetUploadForm = form_class(request.POST or None, request.FILES or None, person=person)
    results: list[UploadResult] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if person is None:
            owner, uploads = data["group"].person, [data["file"]]
        else:
            owner, uploads = person, data["uploads"]
        for upload in uploads:
            result = UploadResult(upload.name)
            try:
                result.asset = pipeline.asset_create(
                    person=owner,
                    group=data.get("group"),
                    consent=data["consent"],
                    uploaded_file=upload,
                    uploaded_by=request.user,
                )
            except ValidationError as refused:
                result.reasons = refused.messages
            results.append(result)
        queued = [result.asset for result in results if result.asset is not None]
        if person is None:
            if queued:
                model_admin.message_user(request, f"{queued[0]} is queued for upload.")
                url = reverse("admin:assets_asset_change", args=[quote(queued[0].pk)])
                return HttpResponseRedirect(url)
            form.add_error("file", results[0].reasons)
        else:
            refusals = len(results) - len(queued)
            model_admin.message_user(
                request,
                f"{len(queued)} file(s) queued for upload, {refusals} refused.",
                messages.WARNING if refusals else messages.SUCCESS,
            )
            form = PersonUploadForm(person=person)
    title = f"Upload assets of {person}" if person is not None else "Add asset"
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": Asset._meta,
        "person": person,
        "form": form,
        "results": results,
        # Said before any file is chosen, when no file of this person could go anywhere.
        "group_refusals": (
            gate.group_refusals(person=person, group=gate.upload_group_for(person))
            if person is not None
            else []
        ),
    }
    return TemplateResponse(request, "admin/assets/asset/upload.html", context)


class AssetInline(AssetColumns, ReadOnlyInline):
    model = Asset
    fields = ("kind", "status_badge", "state", "reference", "measured", "file_link", "created_at")
    readonly_fields = fields

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_fields(request, obj)
        return fields if may_open_asset_files(request) else [f for f in fields if f != "file_link"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Asset]:
        return super().get_queryset(request).select_related("group", "consent")


@admin.register(AssetGroup)
class AssetGroupAdmin(ScalableChangelist, KeepRows, StatusColumn, admin.ModelAdmin):
    list_display = (
        "group_id",
        "group_type",
        "person",
        "status_badge",
        "asset_count",
        "created_at",
    )
    list_select_related = ("person",)
    list_filter = ("group_type", "status", "created_at")
    search_fields = ("group_id", "person__legal_name", "person__display_name", "person__email")
    autocomplete_fields = ("person",)
    inlines = (AssetInline,)
    fieldsets = (
        (None, {"fields": ("group_id", "group_type", "person", "upstream_session")}),
        (
            "System",
            {
                "classes": ("collapse",),
                "fields": ("status_badge", "api_key_fingerprint", "created_at", "withdrawn_at"),
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[AssetGroup]:
        # A subquery per row shown, not a join of every asset grouped by group (all of them).
        assets = Asset.objects.filter(group=OuterRef("pk"))
        return super().get_queryset(request).annotate(asset_count=count_of(assets))

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A real person's group comes only from their completed verification; a GroupId typed
        # in here would pass for a verified person.
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[Any, ...]:
        # Only a confirmed verification links a group to its upstream session (consent.services).
        system = (
            "upstream_session",
            "status_badge",
            "api_key_fingerprint",
            "created_at",
            "withdrawn_at",
        )
        if obj is None:
            return system
        # The upstream made the group for this person: none of that changes afterwards.
        return ("group_id", "group_type", "person", *system)

    @admin.display(description="assets", ordering="asset_count")
    def asset_count(self, group: AssetGroup) -> int:
        return group.asset_count  # type: ignore[attr-defined]


class ReferenceCopyInline(ReadOnlyInline):
    """The asset page's "Reference copies": who copied it, when, for which project."""

    model = ReferenceCopy
    verbose_name_plural = "reference copies"
    fields = ("copied_at", "user", "project", "kind", "request_id")
    readonly_fields = fields
    ordering = ("-copied_at", "-pk")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReferenceCopy]:
        return super().get_queryset(request).select_related("user")


@admin.register(Asset)
class AssetAdmin(ScalableChangelist, KeepRows, AssetColumns, PrivateFileAdmin):
    private_file_field = "file"
    content_type_field = "content_type"
    private_file_permission = ASSET_FILE_PERMISSION
    list_display = (
        "__str__",
        "person",
        "kind",
        "status_badge",
        "state",
        "reference",
        "measured",
        "size",
        "created_at",
    )
    list_select_related = ("group", "group__person", "consent")
    list_filter = ("status", "kind", "group__group_type", "created_at")
    search_fields = (
        "upstream_id",
        "upstream_name",
        "original_filename",
        "sha256",
        "group__group_id",
        "group__person__legal_name",
        "group__person__display_name",
    )
    actions = ("retry_assets", "withdraw_assets", "refresh_assets")
    # Legal sees where a likeness went: every reference of it handed to a producer.
    inlines = (ReferenceCopyInline,)

    @admin.display(description="local pre-check")
    def precheck(self, asset: Asset) -> str:
        """What the face pre-check warned of at upload (a hint: the upstream decides)."""
        if not asset.precheck_warnings:
            return "—"
        return format_html_join(mark_safe("<br>"), "{}", ((w,) for w in asset.precheck_warnings))

    readonly_fields = (
        "group",
        "consent",
        "kind",
        "file_link",
        "status_badge",
        "state",
        "reference",
        "precheck",
        "original_filename",
        "content_type",
        "size_bytes",
        "sha256",
        "width",
        "height",
        "duration_seconds",
        "fps",
        "upstream_name",
        "upstream_id",
        "attempts",
        "next_attempt_at",
        "submitted_at",
        "error_code",
        "error_message",
        "error_explanation",
        "uploaded_by",
        "withdrawn_at",
        *_SYSTEM_FIELDS,
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "group",
                    "consent",
                    "kind",
                    "file_link",
                    "status_badge",
                    "state",
                    "reference",
                    "precheck",
                )
            },
        ),
        (
            "Measured",
            {
                "classes": ("collapse",),
                "fields": (
                    "original_filename",
                    "content_type",
                    "size_bytes",
                    "sha256",
                    ("width", "height"),
                    ("duration_seconds", "fps"),
                ),
            },
        ),
        (
            "Upstream",
            {
                "classes": ("collapse",),
                "fields": (
                    "upstream_name",
                    "upstream_id",
                    ("attempts", "next_attempt_at", "submitted_at"),
                    "error_code",
                    "error_message",
                    "error_explanation",
                ),
            },
        ),
        (
            "System",
            {"classes": ("collapse",), "fields": ("uploaded_by", "withdrawn_at", *_SYSTEM_FIELDS)},
        ),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_private_file_permission(request, obj):
            return fieldsets
        return fieldsets_without(fieldsets, {"file_link"})

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """The single add form: one file, through the same service as every upload."""
        return upload_view(request, model_admin=self)

    def download_name(self, obj: Asset) -> str:
        return obj.original_filename or super().download_name(obj)

    def audit_person_id(self, obj: Asset) -> int | None:
        return obj.group.person_id

    @admin.display(description="size", ordering="size_bytes")
    def size(self, asset: Asset) -> str:
        return filesizeformat(asset.size_bytes)

    @admin.display(description="person", ordering="group__person__legal_name")
    def person(self, asset: Asset) -> str:
        return str(asset.group.person)

    @admin.action(
        description="Retry the selected assets (failed ones, or queued ones now)",
        permissions=["change"],
    )
    def retry_assets(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        self._each(request, queryset, pipeline.asset_retry, "queued for upload")

    @admin.action(
        description="Withdraw the selected assets (delete them upstream)", permissions=["change"]
    )
    def withdraw_assets(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        self._each(request, queryset, withdrawals.asset_withdraw, "withdrawn")

    @admin.action(
        description="Refresh the selected assets' status from the upstream", permissions=["change"]
    )
    def refresh_assets(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        self._each(request, queryset, pipeline.asset_refresh, "refreshed")

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Asset],
        service: Callable[..., Any],
        done: str,
    ) -> None:
        """Run ``service`` for each asset; one message for those it did, one per refusal."""
        succeeded = 0
        for asset in queryset.select_related("group__person"):
            try:
                service(asset=asset, actor=request.user)
            except ValidationError as refused:
                self.message_user(request, " ".join(refused.messages), messages.WARNING)
            except UpstreamError as error:
                self.message_user(request, f"{asset}: {error} {error.explanation}", messages.ERROR)
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, f"{succeeded} asset(s) {done}.", messages.SUCCESS)
