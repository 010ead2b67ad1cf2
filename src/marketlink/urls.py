"""Include with ``path("api/", include("marketlink.urls"))`` (any prefix works)."""

from django.urls import path, re_path

from marketlink.api import build_api
from marketlink.envelope import unknown_path
from marketlink.payments.views import dummy_checkout

api = build_api()

urlpatterns = [
    path("payments/dummy/<str:session_id>/", dummy_checkout, name="marketlink-dummy-checkout"),
    path("", api.urls),
    re_path(r"^(?P<path>.*)$", unknown_path),
]
