"""Shared fixtures: the real S3 (moto's standalone server over HTTP), accounts and API clients."""

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
from botocore.config import Config
from django.db import connection
from rest_framework.test import APIClient

from annotation.services.annotators import user_create
from config.remembered import remembered_forget_all
from config.roles import Role

VENV_BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_of_test() -> str:
    """The URL of the database this test runs on (pytest-django's test_<name>), for a process
    the test starts: over TCP, or through the embedded server's Unix socket folder."""
    db = connection.settings_dict
    auth = quote(db["USER"]) + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    if db["HOST"].startswith("/"):
        return f"postgres://{auth}@/{db['NAME']}?host={quote(db['HOST'])}"
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole test run."""
    binary = shutil.which("moto_server", path=str(VENV_BIN)) or shutil.which("moto_server")
    assert binary, "moto_server is not installed (pip install 'moto[server]')"
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto_server did not start")
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


@pytest.fixture
def s3_settings(moto_endpoint: str, settings) -> Iterator[dict[str, str]]:
    """The default storage on a fresh moto bucket; yields the env a worker process needs."""
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": moto_endpoint,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "us-east-1",
                "signature_version": "s3v4",
                "addressing_style": "path",
                "file_overwrite": False,
                "default_acl": None,
                "querystring_expire": 6 * 3600,
            },
        },
    }
    yield {
        "STORAGE_BACKEND": "s3",
        "S3_BUCKET": bucket,
        "S3_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    # the settings fixture puts STORAGES back afterwards, and Django's setting_changed handler
    # then drops the storages built from it: nothing to reset by hand


@pytest.fixture
def annotator(db):
    return user_create(username="ann", password="annotator-pass", role=Role.ANNOTATOR)


@pytest.fixture
def lead(db):
    return user_create(username="lead", password="lead-pass-123", role=Role.LEAD)


@pytest.fixture
def ml_engineer(db):
    return user_create(username="mle", password="mle-pass-123", role=Role.ML)


def _client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def annotator_client(annotator) -> APIClient:
    return _client_for(annotator)


@pytest.fixture
def lead_client(lead) -> APIClient:
    return _client_for(lead)


@pytest.fixture
def ml_client(ml_engineer) -> APIClient:
    return _client_for(ml_engineer)


@pytest.fixture(autouse=True)
def _nothing_remembered() -> Iterator[None]:
    """Each test starts with no remembered token checks (config/remembered.py)."""
    remembered_forget_all()
    yield
    remembered_forget_all()


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path) -> None:
    """Local-storage tests write into a temp folder, never the developer's var/."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    if settings.STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"):
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": settings.STORAGES["default"]["BACKEND"],
                "OPTIONS": {"location": str(tmp_path / "media"), "base_url": "/media/"},
            },
        }


os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
