"""Changelist pieces that stay flat in the size of the tables (issue 16).

``TypedValueFilter``: a filter by one value typed in (a person's or an asset's number, a
project's name) instead of a list of every value, which at 50,000 people is megabytes of HTML
and a scan of the table to find them. Its URL parameter is the one Django's own filter of that
field uses (``asset__id__exact``), so links into a filtered list keep working.

``EstimatedCountPaginator``: an unfiltered changelist of a large table counts its rows from
PostgreSQL's statistics (``pg_class.reltuples``) instead of ``COUNT(*)`` over all of them; a
filtered one, or a small table, is counted exactly. One query either way.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

# Below this many rows (by the statistics) a table is counted exactly: it is quick, and exact.
ESTIMATE_FROM_ROWS = 20_000


class TypedValueFilter(admin.FieldListFilter):
    """One value typed in a box (a related row's number, or a field's exact value); shows the
    chosen row by name. Never lists the values there are."""

    template = "admin/portal/typed_value_filter.html"

    def __init__(
        self,
        field: Any,
        request: HttpRequest,
        params: dict[str, Any],
        model: type[Model],
        model_admin: Any,
        field_path: str,
    ) -> None:
        self.related_model = field.related_model if field.is_relation else None
        if field.is_relation:
            self.lookup_kwarg = f"{field_path}__{field.target_field.name}__exact"
        else:
            self.lookup_kwarg = field_path  # as the field's own filter names it
        super().__init__(field, request, params, model, model_admin, field_path)

    def expected_parameters(self) -> list[str | None]:
        return [self.lookup_kwarg]

    @property
    def value(self) -> str:
        values = self.used_parameters.get(self.lookup_kwarg) or [""]
        return str(values[-1] if isinstance(values, list) else values)

    def chosen_label(self) -> str:
        """The chosen row's name (one query), or the value typed."""
        value = self.value
        if not value or self.related_model is None:
            return value
        try:
            chosen = self.related_model._default_manager.filter(pk=value).first()
        except (ValueError, TypeError):
            chosen = None
        return str(chosen) if chosen is not None else f"#{value} (none)"

    def choices(self, changelist: ChangeList) -> Any:
        self.form = self.form_fields(changelist)  # the template's box (it has no changelist)
        yield {
            "selected": not self.value,
            "query_string": changelist.get_query_string(remove=[self.lookup_kwarg]),
            "display": "All",
        }
        if self.value:
            yield {
                "selected": True,
                "query_string": changelist.get_query_string({self.lookup_kwarg: self.value}),
                "display": self.chosen_label(),
            }

    def get_facet_counts(self, pk_attname: str, filtered_qs: QuerySet[Any]) -> dict[str, Any]:
        return {}  # no counts: they would take the scan this filter avoids

    def form_fields(self, changelist: ChangeList) -> dict[str, Any]:
        """What the template's little form needs: the parameter, the value, the others kept."""
        kept = {
            name: value for name, value in changelist.params.items() if name != self.lookup_kwarg
        }
        return {
            "name": self.lookup_kwarg,
            "value": self.value,
            "kept": sorted(kept.items()),
            "numeric": self.related_model is not None,
        }


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered queryset of a large table from PostgreSQL's statistics.

    One query whatever the size: ``reltuples`` when the table has at least
    ``ESTIMATE_FROM_ROWS`` rows by the statistics, else (in the same query) the exact count.
    Filtered querysets, and other databases, are counted exactly.
    """

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet) or queryset.query.where:
            return super().count
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return super().count
        exact = queryset.order_by().values("pk")
        sql, params = exact.query.sql_with_params()
        with connection.cursor() as cursor:
            # The subquery is an InitPlan: PostgreSQL runs it only when CASE reaches it. ``sql``
            # is Django's own, its values in ``params``.
            estimate = (
                "SELECT CASE WHEN c.reltuples >= %s THEN c.reltuples::bigint "  # noqa: S608
                f"ELSE (SELECT count(*) FROM ({sql}) AS counted) END "
                "FROM pg_class c WHERE c.oid = %s::regclass"
            )
            table = queryset.model._meta.db_table
            cursor.execute(estimate, [ESTIMATE_FROM_ROWS, *params, table])
            row = cursor.fetchone()
        return int(row[0]) if row else super().count


class ScalableChangelist:
    """A ModelAdmin mixin: the estimated count, and no second count of the whole table."""

    paginator: ClassVar[type] = EstimatedCountPaginator
    show_full_result_count = False
