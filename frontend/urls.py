from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import dashboard, views

app_name = "frontend"

urlpatterns = [
    path("", views.home, name="home"),
    path("label/", views.label_start, name="label-start"),
    path("label/<int:queue_id>/", views.label, name="label"),
    path("leads/queues/<int:queue_id>/", dashboard.queue_dashboard_page, name="queue-dashboard"),
    path(
        "leads/queues/<int:queue_id>/annotators/<int:user_id>/resume/",
        dashboard.annotator_resume,
        name="queue-annotator-resume",
    ),
    path("leads/pairs/<int:pair_id>/", dashboard.pair_page, name="lead-pair"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
