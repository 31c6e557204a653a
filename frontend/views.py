"""Pages: the home page routes each role to its work."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.selectors import queues_for_annotator
from config.roles import Role, user_has_role


@login_required
def home(request: HttpRequest) -> HttpResponse:
    context = {
        "queues": queues_for_annotator(user=request.user),
        "is_staff_role": user_has_role(request.user, Role.LEAD, Role.ML),
    }
    return render(request, "frontend/home.html", context)
