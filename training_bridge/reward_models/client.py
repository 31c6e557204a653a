"""A Python client of the scoring API for RL trainers, and Flow-GRPO's reward-function shape.

Needs no Django and nothing of the platform: the standard library (http.client, json, base64),
plus Pillow and numpy only to turn arrays or tensors into PNG bytes. Copy this one file next to a
trainer, or import it from a checkout (`training_bridge` imports nothing at package level).

- `RewardClient(url, token)`: `score`, `score_groups`, `score_pairs` (the forms of
  `POST /api/reward/score`), `submit` / `job` / `wait` (the enqueue/poll pair). It sends JSON
  with images as base64 (never pickle), retries 429, 502, 503 and 504 and lost connections
  with exponential backoff (or the server's Retry-After), up to `retries` times, and never
  retries any other 4xx: a bad payload or an unknown model raises `RewardServerError` at once.
- `flow_grpo_reward(url, token)`: a function with Flow-GRPO's reward signature,
  `fn(images, prompts, metadata) -> (scores, info)`, images as a float tensor NCHW in [0, 1],
  a uint8 array NHWC, Pillow images or encoded bytes; `scores` a numpy array of the means,
  `info` their stds and the model that gave them.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

RETRY_STATUSES = frozenset({429, 502, 503, 504})
CONNECTION_ERRORS = (OSError, http.client.HTTPException)  # refused, reset, timed out


class RewardServerError(RuntimeError):
    """The server's answer was not a success (or it could not be reached `attempts` times)."""

    def __init__(self, status: int | None, body: Any, attempts: int) -> None:
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail} (after {attempts} attempt(s))")
        self.status = status
        self.body = body
        self.attempts = attempts


def image_bytes(images: Any) -> list[bytes]:
    """PNG (or the given encoded) bytes of each image: a torch tensor (N, C, H, W) of floats in
    [0, 1] (Flow-GRPO's), a numpy array (N, H, W, C) of uint8 or of floats in [0, 1], a list
    of Pillow images, of arrays or of bytes."""
    if hasattr(images, "detach"):  # a torch tensor, as Flow-GRPO's samplers return it
        images = images.detach().float().mul(255).round().clamp(0, 255).byte().cpu().numpy()
        images = images.transpose(0, 2, 3, 1)  # NCHW -> NHWC
    return [_one_image(image) for image in images]


def _one_image(image: Any) -> bytes:
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    from PIL import Image

    if not isinstance(image, Image.Image):
        import numpy as np

        array = np.asarray(image)
        if array.dtype != np.uint8:
            array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
        image = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class RewardClient:
    """One keep-alive connection to the platform (one client per thread)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        model: str | None = None,
        timeout: float = 120.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.secure = parsed.scheme == "https"
        self.host = parsed.netloc
        self.prefix = parsed.path.rstrip("/")
        self.token = token
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.last_attempts = 0
        self._conn: http.client.HTTPConnection | None = None

    # -- the forms of POST /api/reward/score ---------------------------------------------------

    def score(
        self, images: Any, prompts: str | Sequence[str], *, all_or_nothing: bool = False
    ) -> dict[str, Any]:
        """Mean, std and model version per image (`answer["scores"]`)."""
        data = image_bytes(images)
        texts = [prompts] * len(data) if isinstance(prompts, str) else list(prompts)
        if len(texts) != len(data):
            raise ValueError(f"{len(data)} images but {len(texts)} prompts")
        items = [{"prompt": p, "image": _b64(d)} for p, d in zip(texts, data, strict=True)]
        return self._score({"items": items, "all_or_nothing": all_or_nothing})

    def score_groups(
        self, groups: Sequence[tuple[str, Any]], *, top_k: int | None = None
    ) -> dict[str, Any]:
        """Each (prompt, images) group's scores, ranks, advantages, top-k and bottom-k."""
        body: dict[str, Any] = {"groups": [
            {"prompt": prompt, "items": [{"image": _b64(d)} for d in image_bytes(images)]}
            for prompt, images in groups
        ]}  # fmt: skip
        if top_k is not None:
            body["top_k"] = top_k
        return self._score(body)

    def score_pairs(self, pairs: Sequence[tuple[str, Any, Any]]) -> dict[str, Any]:
        """P(a preferred over b) of each (prompt, image a, image b)."""
        body = {"pairs": [
            {"prompt": prompt, "a": {"image": _b64(image_bytes([a])[0])},
             "b": {"image": _b64(image_bytes([b])[0])}}
            for prompt, a, b in pairs
        ]}  # fmt: skip
        return self._score(body)

    def _score(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.model:
            body["model"] = self.model
        return self.request("POST", "/api/reward/score", body)[1]

    # -- the enqueue/poll pair -----------------------------------------------------------------

    def submit(self, body: dict[str, Any]) -> str:
        """Hand a scoring request over (any form's body); its job id."""
        if self.model:
            body = {**body, "model": self.model}
        return self.request("POST", "/api/reward/score/jobs", body)[1]["id"]

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The job's answer, or None while it is queued or running."""
        status, answer = self.request("GET", f"/api/reward/score/jobs/{job_id}")
        return None if status == 202 else answer

    def wait(self, job_id: str, *, every: float = 0.5, timeout: float = 600.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.job(job_id)
            if answer is not None:
                return answer
            if time.monotonic() > deadline:
                raise TimeoutError(f"scoring job {job_id} not done after {timeout} s")
            self.sleep(every)

    # -- HTTP ----------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, JSON answer) of a 2xx; retryable failures retried; `RewardServerError`
        for anything else, or when the retries are spent."""
        payload = None if body is None else json.dumps(body).encode()
        status: int | None = None
        answer: Any = None
        for attempt in range(1, self.retries + 2):
            self.last_attempts = attempt
            retry_after = None
            try:
                status, headers, answer = self._send(method, path, payload)
            except CONNECTION_ERRORS as exc:
                self._close()
                status, answer = None, f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    return status, answer
                if status not in RETRY_STATUSES:
                    raise RewardServerError(status, answer, attempt)
                retry_after = headers.get("retry-after")
            if attempt > self.retries:
                break
            self.sleep(self._delay(attempt, retry_after))
        raise RewardServerError(status, answer, self.last_attempts)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1))

    def _send(self, method: str, path: str, payload: bytes | None):
        if self._conn is None:
            kind = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
            self._conn = kind(self.host, timeout=self.timeout)
        headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        self._conn.request(method, self.prefix + path, body=payload, headers=headers)
        response = self._conn.getresponse()
        raw = response.read()
        answer_headers = {k.lower(): v for k, v in response.getheaders()}
        if response.getheader("Connection", "").lower() == "close":
            self._close()
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = raw.decode("utf-8", "replace")[:500]
        return response.status, answer_headers, answer

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def flow_grpo_reward(
    url: str, token: str, *, batch_size: int = 64, **client_options: Any
) -> Callable[[Any, Sequence[str], Any], tuple[Any, dict[str, Any]]]:
    """Flow-GRPO's reward function shape over the scoring API: `fn(images, prompts, metadata)
    -> (scores, info)`, scores the means (a numpy array), info `{"std", "model",
    "duration_ms"}`. Images go `batch_size` per request, all-or-nothing (a trainer's own images
    always decode: one that does not is a bug to raise, not a reward to guess)."""
    client = RewardClient(url, token, **client_options)

    def _fn(images: Any, prompts: Sequence[str], metadata: Any) -> tuple[Any, dict[str, Any]]:
        import numpy as np

        del metadata  # the platform's reward reads the prompt and the image only
        data = image_bytes(images)
        texts = list(prompts)
        means: list[float] = []
        stds: list[float | None] = []
        model, duration = None, 0.0
        for start in range(0, len(data), batch_size):
            chunk = slice(start, start + batch_size)
            answer = client.score(data[chunk], texts[chunk], all_or_nothing=True)
            means.extend(s["mean"] for s in answer["scores"])
            stds.extend(s["std"] for s in answer["scores"])
            model, duration = answer["model"], duration + answer["duration_ms"]
        info = {"std": np.array([np.nan if s is None else s for s in stds]), "model": model,
                "duration_ms": duration}  # fmt: skip
        return np.array(means, dtype=np.float32), info

    _fn.client = client  # type: ignore[attr-defined]
    return _fn
