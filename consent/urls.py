"""The person's own pages (``consent.person_pages``), mounted at ``/me/``: no login, a personal
link's token in the path (masked in logs by ``portal.logredact``)."""

from django.urls import path

from consent import person_pages

app_name = "me"

urlpatterns = [
    path("", person_pages.link_request, name="request"),
    path("<str:token>/", person_pages.page, name="page"),
    path(
        "<str:token>/consents/<int:consent_id>/document",
        person_pages.document,
        name="document",
    ),
    path(
        "<str:token>/consents/<int:consent_id>/withdraw/",
        person_pages.withdraw,
        name="withdraw",
    ),
    path("<str:token>/assets/<int:asset_id>.jpg", person_pages.thumbnail, name="thumbnail"),
]
