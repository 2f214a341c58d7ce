from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from assets.urls import references_patterns
from portal.views import favicon, healthz

# Admin pages of models that moved app keep their former addresses (bookmarks, operators'
# scripts, links in emails already sent): each redirects to the page's new address.
MOVED_ADMIN_PAGES = {
    "consent/verificationsession": "verification/verificationsession",
    "consent/upstreamverification": "verification/upstreamsession",
    "consent/outboundemail": "mail/outboundemail",
    "assets/noticeemail": "mail/outboundemail",
}

urlpatterns = [
    *(
        re_path(
            rf"^admin/{old}/(?P<rest>.*)$",
            RedirectView.as_view(url=f"/admin/{new}/%(rest)s", permanent=True, query_string=True),
        )
        for old, new in MOVED_ADMIN_PAGES.items()
    ),
    path("admin/", admin.site.urls),
    path("files/", include("assets.urls")),
    path("references/", include((references_patterns, "references"))),
    path("verify/", include("verification.urls")),
    path("me/", include("consent.urls")),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    # Nothing lives at the root: staff and producers both start from the admin (producers are
    # sent on to their references page from there).
    path("", RedirectView.as_view(pattern_name="admin:index"), name="root"),
]

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
