"""Admin of withdrawals: the evidence that a consent's end reached the upstream, item by item."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import F, OuterRef, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from assets.models import (
    Withdrawal,
    WithdrawalItem,
    WithdrawalQuerySet,
)
from assets.services import withdrawals
from portal.admin_filters import ScalableChangelist
from portal.admin_helpers import (
    KeepRows,
    StatusColumn,
    badge,
    count_of,
    local_time,
    local_time_to_the_second,
)

_SYSTEM_FIELDS = ("created_at", "updated_at")

# Opening an asset's original file (the person's face, body or voice as recorded) takes more than
# viewing its row: producers view rows and copy references, and never get this permission.
ASSET_FILE_PERMISSION = "assets.view_asset_file"


# --- Withdrawals: the evidence that a consent's end reached the upstream ------------------------


def withdrawal_progress(withdrawal: Withdrawal) -> str:
    """Confirmed, or how far the upstream's confirmations have come (and what needs staff).

    Reads the ``items_total``, ``items_confirmed`` and ``items_failed`` annotations of
    ``withdrawals_with_progress`` when present, else counts.
    """
    total = getattr(withdrawal, "items_total", None)
    if total is None:
        items = withdrawal.items.all()
        total = items.count()
        confirmed = items.filter(status=WithdrawalItem.Status.CONFIRMED).count()
        failed = items.filter(status=WithdrawalItem.Status.FAILED).count()
    else:
        confirmed = withdrawal.items_confirmed  # type: ignore[attr-defined]
        failed = withdrawal.items_failed  # type: ignore[attr-defined]
    if withdrawal.confirmed_at is not None:
        return format_html(
            "{} Confirmed upstream on {} ({} item{}).",
            badge("confirmed", "Confirmed"),
            local_time(withdrawal.confirmed_at),
            total,
            "" if total == 1 else "s",
        )
    text = format_html(
        "{} {} of {} confirmed upstream.", badge("pending", "Not yet confirmed"), confirmed, total
    )
    if failed:
        text = format_html("{} {} failed: staff must retry them.", text, failed)
    return text


def withdrawals_with_progress(withdrawals: QuerySet[Withdrawal]) -> QuerySet[Withdrawal]:
    """``withdrawals`` with the counts ``withdrawal_progress`` shows, in the same query."""
    # Counted per row by subqueries (on the item's withdrawal index), not by joining every item
    # and grouping: a page of 100 withdrawals then reads their items only.
    items = WithdrawalItem.objects.filter(withdrawal=OuterRef("pk"))
    return withdrawals.annotate(
        items_total=count_of(items),
        items_confirmed=count_of(items.filter(status=WithdrawalItem.Status.CONFIRMED)),
        items_failed=count_of(items.filter(status=WithdrawalItem.Status.FAILED)),
    )


def withdrawals_table(withdrawals: QuerySet[Withdrawal]) -> str:
    """The withdrawals as a small table (a consent's or a person's page), "—" when none."""
    rows = format_html_join(
        "",
        "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                reverse("admin:assets_withdrawal_change", args=[withdrawal.pk]),
                f"#{withdrawal.pk}",
                withdrawal.get_reason_display(),
                withdrawal.requested_by_label,
                local_time(withdrawal.created_at),
                withdrawal_progress(withdrawal),
            )
            for withdrawal in withdrawals_with_progress(withdrawals).order_by("-created_at")
        ),
    )
    if not rows:
        return "—"
    return format_html(
        '<table class="withdrawal-list"><thead><tr><th>withdrawal</th><th>why</th>'
        "<th>triggered by</th><th>started</th><th>upstream</th></tr></thead><tbody>{}</tbody>"
        "</table>",
        rows,
    )


class WithdrawalItemInline(StatusColumn, admin.TabularInline):
    """Every upstream deletion of the withdrawal with the upstream's confirmation time."""

    model = WithdrawalItem
    extra = 0
    can_delete = False
    fields = ("deleted", "upstream_id", "status_badge", "outcome", "confirmed_at", "proof",
              "attempts", "last_problem")  # fmt: skip
    readonly_fields = fields
    ordering = (F("asset").asc(nulls_last=True), "pk")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[WithdrawalItem]:
        return super().get_queryset(request).select_related("asset", "group")

    @admin.display(description="deleted upstream")
    def deleted(self, item: WithdrawalItem) -> str:
        if item.asset is None:
            return format_html("Asset group {} (DeleteAssetGroup)", item.group)
        return format_html(
            '<a href="{}">{}</a> (DeleteAsset)',
            reverse("admin:assets_asset_change", args=[item.asset.pk]),
            item.asset,
        )

    @admin.display(description="proven by")
    def proof(self, item: WithdrawalItem) -> str:
        """How the deletion was proven, when (to the second, with the time zone), and when the
        portal's first delete left."""
        sent = ""
        if item.delete_sent_at:
            sent = f"First delete sent {local_time_to_the_second(item.delete_sent_at)}."
        if item.status != WithdrawalItem.Status.CONFIRMED:
            return sent or "—"
        if item.proven_by:
            how = item.get_proven_by_display()
        elif item.outcome == WithdrawalItem.Outcome.NEVER_UPLOADED:
            how = "Nothing to prove: never sent upstream"
        else:
            how = "Not recorded (confirmed before proofs were recorded)"
        return format_html("{}, {}. {}", how, local_time_to_the_second(item.confirmed_at), sent)

    @admin.display(description="last problem")
    def last_problem(self, item: WithdrawalItem) -> str:
        if not item.last_error_code:
            return "—"
        text = format_html("{}: {}", item.last_error_code, item.last_error)
        if item.status == WithdrawalItem.Status.PENDING and item.next_attempt_at:
            text = format_html("{} Trying again at {}.", text, local_time(item.next_attempt_at))
        return text


class WithdrawalConfirmedFilter(admin.SimpleListFilter):
    """Legal's queue: withdrawals the upstream has not yet confirmed."""

    title = "confirmed upstream"
    parameter_name = "confirmed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Not yet confirmed"), ("yes", "Confirmed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "no":
            return cast(WithdrawalQuerySet, queryset).unconfirmed()
        if self.value() == "yes":
            return queryset.filter(confirmed_at__isnull=False)
        return queryset


@admin.register(Withdrawal)
class WithdrawalAdmin(ScalableChangelist, KeepRows, admin.ModelAdmin):
    """Read-only evidence: which consent ended, why and by whom, every asset and group deleted
    upstream with the upstream's confirmation time. The only action retries failed items."""

    list_display = ("__str__", "consent_link", "reason", "requester", "created_at",
                    "upstream")  # fmt: skip
    list_select_related = ("person", "consent__person")
    list_filter = (WithdrawalConfirmedFilter, "reason", "created_at")
    search_fields = ("person__legal_name", "person__display_name", "items__upstream_id",
                     "items__group__group_id")  # fmt: skip
    date_hierarchy = "created_at"
    inlines = (WithdrawalItemInline,)
    actions = ("retry_failed_items",)
    fields = ("person", "consent_link", "reason", "requested_by", "requester",
              "revocation", "groups_decision", "created_at", "upstream", "confirmed_at",
              "producers_notified_at")  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Withdrawal]:
        return withdrawals_with_progress(super().get_queryset(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # evidence: shown, never edited

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("assets.change_withdrawal")

    @admin.display(description="consent", ordering="consent")
    def consent_link(self, withdrawal: Withdrawal) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:consent_consentrecord_change", args=[withdrawal.consent_id]),
            withdrawal.consent,
        )

    @admin.display(description="requested by (as recorded)", ordering="requested_by_label")
    def requester(self, withdrawal: Withdrawal) -> str:
        return withdrawal.requested_by_label

    @admin.display(description="revocation")
    def revocation(self, withdrawal: Withdrawal) -> str:
        """How the person withdrew consent, as recorded (for a revocation)."""
        consent = withdrawal.consent
        if withdrawal.reason != Withdrawal.Reason.REVOKED:
            return "—"
        return format_html(
            "{} by {}, asked {} ({}): {}",
            local_time(consent.revoked_at),
            withdrawal.requested_by_label,
            local_time(consent.revocation_requested_at),
            consent.get_revocation_channel_display(),
            consent.revocation_reason,
        )

    @admin.display(description="upstream")
    def upstream(self, withdrawal: Withdrawal) -> str:
        return withdrawal_progress(withdrawal)

    @admin.action(description="Retry the failed items of the selected withdrawals",
                  permissions=["retry"])  # fmt: skip
    def retry_failed_items(self, request: HttpRequest, queryset: QuerySet[Withdrawal]) -> None:
        retried = 0
        failed = WithdrawalItem.objects.filter(
            withdrawal__in=queryset, status=WithdrawalItem.Status.FAILED
        )
        for item in failed.select_related("withdrawal"):
            try:
                withdrawals.withdrawal_item_retry(item=item, actor=request.user)
            except ValidationError as refused:
                self.message_user(request, " ".join(refused.messages), messages.WARNING)
            else:
                retried += 1
        self.message_user(request, f"{retried} failed item(s) sent again.", messages.SUCCESS)
