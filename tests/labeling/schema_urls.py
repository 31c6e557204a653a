"""Only the labeling API, mounted as config/urls.py mounts it: its schema must be clean alone."""

from django.urls import include, path

urlpatterns = [path("api/", include(([path("", include("annotation.urls"))], "api")))]
