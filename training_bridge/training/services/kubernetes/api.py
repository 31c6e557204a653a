"""The few calls the training worker makes to the Kubernetes API, over HTTPS with urllib3
(already installed through botocore): create, read and delete Jobs, create their Secrets,
list and read pods, follow a pod's log.

Credentials: in a cluster, the pod's service account (its token file is read again for every
request: projected tokens are rotated while a run goes on) and the cluster's CA; elsewhere a
kubeconfig file (TRAINING_KUBERNETES_KUBECONFIG): its current context's server, CA, namespace,
and a bearer token or a client certificate. Exec and auth-provider credentials (cloud CLIs)
are not run: give the worker a service-account token instead.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
import yaml

from config.errors import DomainError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
REQUEST_TIMEOUT = urllib3.Timeout(connect=10, read=60)
# A followed log may stay quiet through a long evaluation; the follower reconnects after this.
LOG_READ_TIMEOUT = urllib3.Timeout(connect=10, read=300)


class KubernetesError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Connection:
    server: str
    namespace: str
    ssl_context: ssl.SSLContext
    token: str = ""
    token_file: str = ""


def _in_cluster() -> Connection:
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if not host or not port or not (SERVICE_ACCOUNT / "token").exists():
        raise DomainError(
            "the worker is not in a Kubernetes pod with a service account and "
            "TRAINING_KUBERNETES_KUBECONFIG is not set",
            field="TRAINING_KUBERNETES_KUBECONFIG",
        )
    host = f"[{host}]" if ":" in host else host
    namespace_file = SERVICE_ACCOUNT / "namespace"
    return Connection(
        server=f"https://{host}:{port}",
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else "default",
        ssl_context=ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt")),
        token_file=str(SERVICE_ACCOUNT / "token"),
    )


def _named(entries: Any, name: str, what: str, path: str) -> dict[str, Any]:
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(what) or {}
    raise DomainError(
        f"{path} has no {what} named {name!r}", field="TRAINING_KUBERNETES_KUBECONFIG"
    )


def _kubeconfig(path: str) -> Connection:
    field = "TRAINING_KUBERNETES_KUBECONFIG"
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DomainError(f"cannot read the kubeconfig {path}: {exc}", field=field) from None
    if not isinstance(data, dict) or not data.get("current-context"):
        raise DomainError(f"{path} names no current-context", field=field)
    context = _named(data.get("contexts"), data["current-context"], "context", path)
    cluster = _named(data.get("clusters"), context.get("cluster"), "cluster", path)
    user = _named(data.get("users"), context.get("user"), "user", path)
    base = Path(path).parent
    if "exec" in user or "auth-provider" in user:
        raise DomainError(
            f"{path}: exec and auth-provider credentials are not supported; use a "
            "service-account token (token or tokenFile) or a client certificate",
            field=field,
        )

    def file_of(entry: dict[str, Any], key: str) -> str | None:
        return str(base / entry[key]) if entry.get(key) else None  # relative to the file

    ssl_context = ssl.create_default_context(
        cafile=file_of(cluster, "certificate-authority"),
        cadata=(
            base64.b64decode(cluster["certificate-authority-data"]).decode()
            if cluster.get("certificate-authority-data")
            else None
        ),
    )
    cert, key = file_of(user, "client-certificate"), file_of(user, "client-key")
    if user.get("client-certificate-data") and user.get("client-key-data"):
        # ssl loads a client certificate from files only: a private folder, removed at once
        with tempfile.TemporaryDirectory() as folder:
            cert, key = f"{folder}/cert.pem", f"{folder}/key.pem"
            for target, value in ((cert, "client-certificate-data"), (key, "client-key-data")):
                Path(target).write_bytes(base64.b64decode(user[value]))
            ssl_context.load_cert_chain(cert, key)
    elif cert and key:
        ssl_context.load_cert_chain(cert, key)
    return Connection(
        server=str(cluster.get("server", "")).rstrip("/"),
        namespace=context.get("namespace") or "default",
        ssl_context=ssl_context,
        token=str(user.get("token") or ""),
        token_file=file_of(user, "tokenFile") or "",
    )


def connection_load(kubeconfig: str) -> Connection:
    return _kubeconfig(kubeconfig) if kubeconfig else _in_cluster()


class KubernetesApi:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.http = urllib3.PoolManager(ssl_context=connection.ssl_context, retries=False)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        token = self.connection.token
        if self.connection.token_file:
            token = Path(self.connection.token_file).read_text().strip()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _url(self, path: str, params: dict[str, Any] | None) -> str:
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.connection.server}{path}{query}"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        response = self.http.request(
            method,
            self._url(path, params),
            body=json.dumps(body).encode() if body is not None else None,
            headers=self._headers(),
            timeout=REQUEST_TIMEOUT,
        )
        data = _json(response.data)
        if response.status >= 400:
            raise KubernetesError(response.status, str(data.get("message") or response.reason))
        return data

    def log_stream(self, namespace: str, pod: str, params: dict[str, Any]) -> Iterator[bytes]:
        """A pod's log as it is written (follow=true), in chunks of bytes."""
        path = f"/api/v1/namespaces/{namespace}/pods/{quote(pod)}/log"
        response = self.http.request(
            "GET",
            self._url(path, {**params, "follow": "true"}),
            headers=self._headers(),
            timeout=LOG_READ_TIMEOUT,
            preload_content=False,
        )
        try:
            if response.status >= 400:
                data = _json(response.read())
                raise KubernetesError(response.status, str(data.get("message") or response.reason))
            yield from response.stream(64 * 1024, decode_content=True)
        finally:
            response.release_conn()

    # -- the calls the launcher makes ------------------------------------------------------

    def job_create(self, job: dict[str, Any]) -> dict[str, Any]:
        namespace = job["metadata"]["namespace"]
        return self.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body=job)

    def job_get(self, namespace: str, name: str) -> dict[str, Any]:
        return self.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")

    def jobs_list(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
        return self.request("GET", path, params={"labelSelector": selector}).get("items") or []

    def job_delete(self, namespace: str, name: str, *, grace_seconds: int | None = None) -> bool:
        """Delete a Job and, in the background, its pods and Secret; False if already gone."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        try:
            self.request("DELETE", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", body=body)
        except KubernetesError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def secret_create(self, secret: dict[str, Any]) -> dict[str, Any]:
        namespace = secret["metadata"]["namespace"]
        return self.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=secret)

    def pod_get(self, namespace: str, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{quote(name)}")

    def pods_list(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{namespace}/pods"
        return self.request("GET", path, params={"labelSelector": selector}).get("items") or []


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"message": data[:500].decode("utf-8", errors="replace")}
    return value if isinstance(value, dict) else {}
