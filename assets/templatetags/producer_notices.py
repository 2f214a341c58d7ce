"""The admin-wide reminder of unacknowledged producer notices (``admin/base_site.html``)."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import format_html

from assets.models import ProducerNotice

register = template.Library()


@register.simple_tag(takes_context=True)
def producer_notice_banner(context: dict[str, Any]) -> str:
    """A warning on every admin page while the signed-in user has unacknowledged notices.

    Not on the references page itself, which lists the notices in full.
    """
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    match = getattr(request, "resolver_match", None)
    if match is not None and match.namespace == "references":
        return ""
    count = ProducerNotice.objects.filter(user=user, acknowledged_at__isnull=True).count()
    if not count:
        return ""
    return format_html(
        '<ul class="messagelist producer-notice-banner"><li class="error">{} Read {} on the '
        '<a href="{}#notices">references page</a> and acknowledge {}.</li></ul>',
        "References you copied may no longer be used."
        if count == 1
        else f"{count} notices: references you copied may no longer be used.",
        "it" if count == 1 else "them",
        reverse("references:list"),
        "it" if count == 1 else "them",
    )
