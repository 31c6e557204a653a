"""An RL trainer's side of the reward API: score images from outside the platform.

Only the Python standard library: copy this file next to a trainer. It takes an API token (or
a username and password of an account with the `ml` role, exchanged for a token), sends the
images as base64 JSON (or multipart with --multipart), in batches, and prints mean, std and the
model version per image; with --group-size it sends groups and prints each group's ranking and
its top-k / bottom-k, as GRPO-style trainers filter a group.

    # the promoted model of the platform's default name scores three demo images
    python bench/scoring/score_client.py --url http://127.0.0.1:8000 --token $TOKEN \\
        --prompt "a photo of a cat to the left of a dog" var/media/candidates/ab/*.png

    # groups of 4 images, top-2 / bottom-2 of each group
    python bench/scoring/score_client.py --username rl --password ... --group-size 4 --top-k 2 \\
        --prompt "a red cup above a lamp" images/

    # finished candidates of the platform, by id, against their own prompts
    python bench/scoring/score_client.py --token $TOKEN --candidates 101,102,103

`ScoreClient` is importable (bench/scoring/run.py drives its load with it).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


class ScoreError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.body = body


class ScoreClient:
    """One keep-alive HTTP connection to the platform (use one client per thread)."""

    def __init__(self, url: str, token: str, *, timeout: float = 120.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.secure = parsed.scheme == "https"
        self.host = parsed.netloc
        self.prefix = parsed.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    @classmethod
    def login(cls, url: str, username: str, password: str) -> ScoreClient:
        client = cls(url, token="")
        body = json.dumps({"username": username, "password": password}).encode()
        status, answer = client._request("POST", "/api/auth/token/", body, "application/json",
                                         auth=False)  # fmt: skip
        if status != 200:
            raise ScoreError(status, answer)
        client.token = answer["token"]
        return client

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            kind = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
            self._conn = kind(self.host, timeout=self.timeout)
        return self._conn

    def _request(self, method: str, path: str, body: bytes, content_type: str, *,
                 auth: bool = True) -> tuple[int, Any]:  # fmt: skip
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Token {self.token}"
        for attempt in (1, 2):  # a keep-alive connection the server closed: reconnect once
            conn = self._connection()
            try:
                conn.request(method, self.prefix + path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._conn = None
                if attempt == 2:
                    raise
        try:
            return response.status, json.loads(data)
        except json.JSONDecodeError:
            return response.status, data.decode(errors="replace")

    def post_json(self, payload: dict[str, Any] | bytes) -> dict[str, Any]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        status, answer = self._request("POST", "/api/reward/score", body, "application/json")
        if status != 200:
            raise ScoreError(status, answer)
        return answer

    def score(self, prompts: list[str], images: list[bytes], *, model: str | None = None,
              version: int | None = None) -> dict[str, Any]:  # fmt: skip
        return self.post_json(json_payload(prompts, images, model=model, version=version))

    def score_groups(self, groups: list[tuple[str, list[bytes]]], *, top_k: int | None = None,
                     model: str | None = None) -> dict[str, Any]:  # fmt: skip
        payload: dict[str, Any] = {
            "groups": [
                {"prompt": prompt, "items": [{"image": _b64(image)} for image in images]}
                for prompt, images in groups
            ]
        }
        if top_k:
            payload["top_k"] = top_k
        if model:
            payload["model"] = model
        return self.post_json(payload)

    def score_candidates(self, ids: list[int], *, model: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"items": [{"candidate": i} for i in ids]}
        if model:
            payload["model"] = model
        return self.post_json(payload)

    def score_multipart(self, prompts: list[str], images: list[bytes], *,
                        model: str | None = None, groups: list[str] | None = None,
                        top_k: int | None = None) -> dict[str, Any]:  # fmt: skip
        body, content_type = multipart_payload(prompts, images, model=model, groups=groups,
                                               top_k=top_k)  # fmt: skip
        status, answer = self._request("POST", "/api/reward/score", body, content_type)
        if status != 200:
            raise ScoreError(status, answer)
        return answer

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def json_payload(prompts: list[str], images: list[bytes], *, model: str | None = None,
                 version: int | None = None) -> dict[str, Any]:  # fmt: skip
    payload: dict[str, Any] = {
        "items": [{"prompt": p, "image": _b64(i)} for p, i in zip(prompts, images, strict=True)]
    }
    if model:
        payload["model"] = model
    if version:
        payload["version"] = version
    return payload


def multipart_payload(prompts: list[str], images: list[bytes], *, model: str | None = None,
                      groups: list[str] | None = None,
                      top_k: int | None = None) -> tuple[bytes, str]:  # fmt: skip
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []

    def field(name: str, value: str) -> None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f"{value}\r\n".encode())  # fmt: skip

    for prompt in prompts:
        field("prompt", prompt)
    if model:
        field("model", model)
    for label in groups or ():
        field("group", label)
    if top_k:
        field("top_k", str(top_k))
    for index, image in enumerate(images):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="{index}.png"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + image
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def image_files(paths: list[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            yield path
        else:
            raise SystemExit(f"no such image or folder: {raw}")


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help="image files or folders (PNG, JPEG, WebP)")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", help="API token (Authorization: Token ...)")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--prompt", help="the prompt of every image")
    parser.add_argument("--model", help="model name (default: the platform's)")
    parser.add_argument("--version", type=int, help="pin a version instead of the promoted one")
    parser.add_argument("--candidates", help="comma-separated candidate ids to score")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--group-size", type=int, help="send groups of this many images")
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--multipart", action="store_true", help="files instead of base64 JSON")
    args = parser.parse_args(argv)

    if args.token:
        client = ScoreClient(args.url, args.token)
    elif args.username and args.password:
        client = ScoreClient.login(args.url, args.username, args.password)
    else:
        parser.error("give --token, or --username and --password")
    try:
        if args.candidates:
            ids = [int(i) for i in args.candidates.split(",") if i.strip()]
            for chunk in _chunks(ids, args.batch_size):
                answer = client.score_candidates(chunk, model=args.model)
                for candidate, score in zip(chunk, answer["scores"], strict=True):
                    _print_row(f"candidate {candidate}", score, answer["model"])
            return 0
        files = list(image_files(args.images))
        if not files or not args.prompt:
            parser.error("give images and --prompt (or --candidates)")
        if args.group_size:
            for chunk in _chunks(
                files, args.group_size * max(1, args.batch_size // args.group_size)
            ):
                groups = [(args.prompt, [p.read_bytes() for p in g])
                          for g in _chunks(chunk, args.group_size)]  # fmt: skip
                if args.multipart:
                    images = [image for _, group in groups for image in group]
                    labels = [str(i // args.group_size) for i in range(len(images))]
                    answer = client.score_multipart([args.prompt], images, model=args.model,
                                                    groups=labels, top_k=args.top_k)  # fmt: skip
                else:
                    answer = client.score_groups(groups, top_k=args.top_k, model=args.model)
                for names, group in zip(_chunks(chunk, args.group_size), answer["groups"],
                                        strict=True):  # fmt: skip
                    for path, score in zip(names, group["scores"], strict=True):
                        _print_row(path.name, score, answer["model"])
                    print(f"  ranking {group['ranking']} top {group['top']} "
                          f"bottom {group['bottom']}")  # fmt: skip
            return 0
        for chunk in _chunks(files, args.batch_size):
            images = [p.read_bytes() for p in chunk]
            prompts = [args.prompt] * len(images)
            answer = (
                client.score_multipart(prompts, images, model=args.model)
                if args.multipart
                else client.score(prompts, images, model=args.model, version=args.version)
            )
            for path, score in zip(chunk, answer["scores"], strict=True):
                _print_row(path.name, score, answer["model"])
        return 0
    except ScoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()


def _print_row(name: str, score: dict[str, Any], model: dict[str, Any]) -> None:
    std = "-" if score["std"] is None else f"{score['std']:.4f}"
    rank = f"  rank {score['rank']}" if "rank" in score else ""
    print(f"{name:40s} mean {score['mean']:+.4f}  std {std}  "
          f"{model['name']} v{score['model_version']}{rank}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
