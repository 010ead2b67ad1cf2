from django.contrib import admin
from django.urls import include, path

from marketlink.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("marketlink.urls")),
    # Prometheus scrapes here (501 without marketlink[metrics]); keep it off the public internet.
    path("metrics", metrics_view),
]
