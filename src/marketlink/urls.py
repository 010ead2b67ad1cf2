"""Include with ``path("api/", include("marketlink.urls"))`` (any prefix works)."""

from django.urls import path, re_path

from marketlink.api import build_api
from marketlink.envelope import unknown_path
from marketlink.payments.gateways.dummy.connect_views import dummy_dashboard, dummy_onboarding
from marketlink.payments.gateways.dummy.views import dummy_checkout

api = build_api()

urlpatterns = [
    # A slug, not any string: session ids are ``cs_dummy_<hex>``, and anything else (a NUL, which
    # PostgreSQL cannot even compare) falls through to the envelope's 404 below.
    path("payments/dummy/<slug:session_id>/", dummy_checkout, name="marketlink-dummy-checkout"),
    # The dummy's Connect pages, behind signed tokens (``signing.dumps``: URL-safe characters).
    path(
        "payments/dummy/connect/onboarding/<str:token>/",
        dummy_onboarding,
        name="marketlink-dummy-onboarding",
    ),
    path(
        "payments/dummy/connect/dashboard/<str:token>/",
        dummy_dashboard,
        name="marketlink-dummy-dashboard",
    ),
    path("", api.urls),
    re_path(r"^(?P<path>.*)$", unknown_path),
]
