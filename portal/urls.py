from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from assets.urls import references_patterns
from portal.views import healthz

admin.site.site_header = "Talent Consent Portal"
admin.site.site_title = "Talent Consent Portal"
admin.site.index_title = "People, consent, verification and likeness assets"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("files/", include("assets.urls")),
    path("references/", include((references_patterns, "references"))),
    path("verify/", include("consent.urls")),
    path("healthz", healthz, name="healthz"),
]

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
