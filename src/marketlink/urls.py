"""Include with ``path("api/", include("marketlink.urls"))`` (any prefix works)."""

from django.urls import path

from marketlink.api import build_api

api = build_api()

urlpatterns = [path("", api.urls)]
