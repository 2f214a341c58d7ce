"""The sandbox upstream, mounted at ``/sandbox/`` when ``SANDBOX_ENABLED``."""

from django.urls import path

from sandbox import phone, views

app_name = "sandbox"
urlpatterns = [
    # The Anyfast wire protocol: ANYFAST_BASE_URL is {PORTAL_PUBLIC_URL}/sandbox in development.
    path("volc/asset/<str:action>", views.api, name="api"),
    # The phone page an H5Link points at.
    path("h5/<str:link_id>", phone.h5, name="h5"),
]
