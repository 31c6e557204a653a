"""The probe and scrape paths, answered whatever Host header the request carries.

The kubelet's probes and Prometheus reach a web process at its own address, not through the
proxy: their Host is the pod's IP and port (Kubernetes service discovery, a probe without a Host
header) or the service's name (`web:8000` under compose), and none of these is a name the site is
served under. Django's Host check (ALLOWED_HOSTS, first applied by CommonMiddleware) refuses them
with a 400.

The check exists because of what is built from the Host: absolute links, redirects, password-reset
mails, cached pages. These three answers build nothing from it, so the Host does not matter to
them. Widening ALLOWED_HOSTS instead (the pod's IP from the downward API, a CIDR, "*") would count
for every path, and would still miss the compose service name or a scraper's own target address.

So `ProbeMiddleware`, placed just before CommonMiddleware, answers exactly `GET` of PROBE_PATHS by
calling their views itself (resolved through config/urls.py, which stays the one map of paths to
views), and hands every other request, any other path or method, to the stack unchanged, Host
check included. The views keep their own rules: /metrics still wants the bearer token.
What stands above it still applies to these requests: django-prometheus's totals and latency,
the request id, SecurityMiddleware (its SECURE_REDIRECT_EXEMPT answers them over plain HTTP) and
the outage 503. What stands below is skipped: sessions, CSRF, auth, messages, X-Frame-Options and
django-axes, which these views do not use, and django-prometheus's counts by view, which the
probes and scrapes no longer crowd.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import resolve

# Readiness, liveness (config/views.py) and Prometheus's scrape (config/metrics.py).
PROBE_PATHS = frozenset({"/api/health/", "/api/health/live/", "/metrics"})


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET" or request.path_info not in PROBE_PATHS:
            return self.get_response(request)
        match = resolve(request.path_info)
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        # A DRF Response is rendered by Django's handler after the view; here, by us.
        if callable(getattr(response, "render", None)):
            response = response.render()
        return response
