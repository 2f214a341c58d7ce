"""The person's pages: no login, reached by the invitation link, the short code or the callback."""

from django.urls import path

from verification import views

app_name = "verify"

urlpatterns = [
    path("", views.code_entry, name="code"),
    path("callback/<uuid:public_id>/", views.callback, name="callback"),
    path("callback/<uuid:public_id>/status/", views.callback_status, name="callback_status"),
    path("<str:token>/", views.invitation, name="invitation"),
    path("<str:token>/start/", views.start, name="start"),
    path("<str:token>/sign/", views.sign, name="sign"),
]
