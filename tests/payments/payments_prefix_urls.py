"""A host that mounts marketlink under ``/shop-api/`` instead of ``/api/``."""

from django.urls import include, path

urlpatterns = [path("shop-api/", include("marketlink.urls"))]
