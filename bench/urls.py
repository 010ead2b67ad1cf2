from django.urls import path

from bench import views
from example_project.urls import urlpatterns as site_urlpatterns

urlpatterns = [path("bench/insert/", views.insert), *site_urlpatterns]
