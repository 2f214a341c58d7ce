from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from assets.urls import references_patterns
from portal.views import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("files/", include("assets.urls")),
    path("references/", include((references_patterns, "references"))),
    path("verify/", include("consent.urls")),
    path("healthz", healthz, name="healthz"),
]

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
