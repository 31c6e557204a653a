from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts import apis as accounts_apis
from config import views
from config.metrics import metrics_view

admin.site.site_header = "SpatialPrefs admin"
admin.site.site_title = "SpatialPrefs"
admin.site.index_title = "Prompts, generation, labeling, datasets and training"

api_patterns = [
    path("health/", views.HealthApi.as_view(), name="health"),  # readiness
    path("health/live/", views.LivenessApi.as_view(), name="health-live"),
    path("me/", views.MeApi.as_view(), name="me"),
    # Tokens (accounts/apis.py; its views read the project's default parsers, config/parsers.py).
    path("auth/token/", accounts_apis.TokenObtainApi.as_view(), name="auth-token"),
    path("auth/token/revoke/", accounts_apis.TokenRevokeApi.as_view(), name="auth-token-revoke"),
    path(
        "auth/token/revoke-all/",
        accounts_apis.TokenRevokeAllApi.as_view(),
        name="auth-token-revoke-all",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("", include("generation_workers.urls")),
    path("", include("annotation.urls")),
    path("", include("training_bridge.urls")),
]

# An unknown URL under /api/ answers JSON like every API error (config/api.py).
handler404 = "config.api.not_found"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),  # Prometheus; METRICS_TOKEN (config/metrics.py)
    path("api/", include((api_patterns, "api"))),
    path("", include("frontend.urls")),
]
