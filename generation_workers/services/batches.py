"""Worker-side writes: render a claimed batch, store its images, record each candidate.

Exactly once: candidate rows exist from the campaign's launch, one per generation key (a unique
constraint), so a task never creates one; it renders only the items it leased (leases.py) and
finishes an item only while its token still holds it. Terminal errors fail the item with a
readable message (the campaign goes on); transient database or storage errors release the
leases and raise TransientFailure for the task to retry.
"""

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from generation_workers import metrics
from generation_workers.backends.base import (
    BACKEND_ERRORS,
    ConfigUnusable,
    RenderedItem,
    RenderItem,
    backend_load,
    render_splitting_on_oom,
)
from generation_workers.backends.encoding import image_encode
from generation_workers.models import Candidate, GeneratorConfig
from generation_workers.services.config_rules import generator_config_params_hash
from generation_workers.services.configs import generator_config_backend_spec
from generation_workers.services.dispatch import campaign_finish_if_done
from generation_workers.services.images import candidate_image_store
from generation_workers.services.leases import (
    ERROR_MAX_CHARS,
    ClaimedItem,
    LeaseHeartbeat,
    candidate_leases_release,
    candidates_claim,
)
from generation_workers.services.write_behind import write_behind_submit

log = logging.getLogger(__name__)

PENDING = Candidate.Status.PENDING
STORE_THREADS = 4
_STORE_POOL: ThreadPoolExecutor | None = None
STORE_ERRORS = (OperationalError, InterfaceError, OSError, BotoCoreError, ClientError)
TRANSIENT_S3_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "500", "503"}
)


class TransientFailure(Exception):
    """The database or the storage did not answer; the batch's leases were released: retry."""


@dataclass
class BatchReport:
    claimed: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0


def error_is_transient(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code")) in TRANSIENT_S3_CODES
    return False


def _failed(item_id: int, message: str) -> RenderedItem:
    return RenderedItem(candidate_id=item_id, image=None, error=message)


def _render(
    config: GeneratorConfig, claimed: list[ClaimedItem]
) -> tuple[dict[str, Any], dict[int, RenderedItem]]:
    """Every claimed item's image or error, and the metadata its backend shares with them."""
    expected = generator_config_params_hash(config=config)
    results: dict[int, RenderedItem] = {}
    items = []
    for item in claimed:
        if item.params_hash != expected:
            results[item.candidate_id] = _failed(
                item.candidate_id,
                "the config's generation settings changed after this item was planned; "
                "launch a new campaign",
            )
        else:
            items.append(
                RenderItem(
                    candidate_id=item.candidate_id,
                    text=item.text,
                    structure=item.structure,
                    seed=item.seed,
                )
            )
    described: dict[str, Any] = {}
    if not items:
        return described, results
    try:
        backend = backend_load(
            generator_config_backend_spec(config=config),
            extra_modules=settings.GENERATION_EXTRA_BACKENDS,
        )
        described = backend.describe()
        release: Callable[[], None] = getattr(backend, "release_memory", lambda: None)
        rendered = render_splitting_on_oom(items, backend.render, after_oom=release)
    except ConfigUnusable as exc:
        rendered = [_failed(item.candidate_id, str(exc)) for item in items]
    except SoftTimeLimitExceeded:
        rendered = [
            _failed(
                item.candidate_id,
                "the batch ran past its time limit; lower the config's batch size, image "
                "size or steps",
            )
            for item in items
        ]
    except BACKEND_ERRORS as exc:
        log.exception("generation.batch.render_error config=%s", config.pk)
        message = f"rendering failed: {type(exc).__name__}: {exc}"
        rendered = [_failed(item.candidate_id, message) for item in items]
    results.update({result.candidate_id: result for result in rendered})
    return described, results


def _stored_values(
    config: GeneratorConfig, described: dict[str, Any], result: RenderedItem, worker: str
) -> dict[str, Any]:
    """Encode and store one image; the columns that record it."""
    started = time.perf_counter()
    fmt = config.image_format
    data = image_encode(result.image, fmt=fmt)
    key, content_sha256 = candidate_image_store(data=data, fmt=fmt)
    metadata = {**described, **result.metadata}
    duration_ms = metadata.pop("duration_ms", None)
    metadata.update(
        image_format=fmt,
        bytes=len(data),
        store_ms=round((time.perf_counter() - started) * 1000, 2),
        worker=worker,
    )
    return {
        "status": Candidate.Status.DONE,
        "storage_key": key,
        "content_sha256": content_sha256,
        "width": result.image.width,
        "height": result.image.height,
        "duration_ms": duration_ms,
        "generation_params": metadata,
        "error": "",
    }


def _store_pool() -> ThreadPoolExecutor:
    """Threads that encode and upload a batch's images side by side (uploads wait on the
    network, PNG's zlib releases the GIL). Kept for the process: storage clients are per
    thread, so fresh threads would open fresh connections for every batch."""
    global _STORE_POOL
    if _STORE_POOL is None:
        _STORE_POOL = ThreadPoolExecutor(max_workers=STORE_THREADS, thread_name_prefix="store")
    return _STORE_POOL


def _store_all(
    config: GeneratorConfig, described: dict[str, Any], results: list[RenderedItem], worker: str
) -> list[tuple[int, dict[str, Any]]]:
    """The columns recording each result: stored images, failures with their message."""
    images = [r for r in results if r.image is not None]
    if len(images) > 1:
        futures = {
            r.candidate_id: _store_pool().submit(_stored_values, config, described, r, worker)
            for r in images
        }
        stored = {candidate_id: future.result() for candidate_id, future in futures.items()}
    else:
        stored = {r.candidate_id: _stored_values(config, described, r, worker) for r in images}
    return [
        (
            r.candidate_id,
            stored[r.candidate_id] if r.image is not None else _failure_values(r.error),
        )
        for r in results
    ]


def _record(token: str, rows: list[tuple[int, dict[str, Any]]]) -> tuple[int, int]:
    """Finish the items this token still holds (an expired, re-claimed item is not ours to
    finish), atomically. Returns (done, failed)."""
    now = timezone.now()
    finished = {}
    with transaction.atomic():
        for pk, values in rows:
            if Candidate.objects.filter(pk=pk, status=PENDING, lease_token=token).update(
                lease_token="", leased_until=None, finished_at=now, **values
            ):
                finished[pk] = values["status"]
    for pk, _ in rows:
        if pk not in finished:
            log.warning("generation.item.lease_lost candidate=%s", pk)
    done = sum(1 for status in finished.values() if status == Candidate.Status.DONE)
    return done, len(finished) - done


def _failure_values(message: str) -> dict[str, Any]:
    return {"status": Candidate.Status.FAILED, "error": message[:ERROR_MAX_CHARS] or "failed"}


def batch_render(
    *,
    config_id: int,
    candidate_ids: Sequence[int],
    worker: str = "",
    retry_later: Callable[[str], None] | None = None,
) -> BatchReport:
    """Render one batch of a config's items. See the module docstring.

    In process (retry_later=None) the images are stored and recorded before it returns, and it
    raises TransientFailure (leases released) when the database or storage did not answer.
    The worker's task passes `retry_later`: storing and recording then run on the process'
    write-behind thread while the next batch renders (write_behind.py), and a transient
    failure there releases the leases and calls retry_later(reason) to queue the batch again.
    The report's done/failed counts are then not known yet (0).
    """
    report = BatchReport()
    config = GeneratorConfig.objects.filter(pk=config_id).first()
    token = uuid.uuid4().hex
    claimed = candidates_claim(candidate_ids=candidate_ids, token=token) if config else []
    report.claimed = len(claimed)
    report.skipped = len(candidate_ids) - len(claimed)
    if not claimed:
        log.info("generation.batch.skipped config=%s items=%d", config_id, len(candidate_ids))
        return report
    started = time.perf_counter()
    heartbeat = LeaseHeartbeat(token=token).start()
    try:
        described, results = _render(config, claimed)
    except BaseException:
        heartbeat.stop()
        raise
    written = _Written(config, token, claimed, described, results, worker, heartbeat, started)
    if retry_later is None:
        report.done, report.failed = written.run(report)
        return report
    write_behind_submit(lambda: written.run(report, retry_later=retry_later))
    return report


@dataclass
class _Written:
    """A rendered batch on its way to storage and the database."""

    config: GeneratorConfig
    token: str
    claimed: list[ClaimedItem]
    described: dict[str, Any]
    results: dict[int, RenderedItem]
    worker: str
    heartbeat: LeaseHeartbeat
    started: float

    def run(
        self, report: BatchReport, *, retry_later: Callable[[str], None] | None = None
    ) -> tuple[int, int]:
        """Store, record and finish; (done, failed)."""
        claimed = self.claimed
        try:
            rows = _store_all(
                self.config,
                self.described,
                [self.results[c.candidate_id] for c in claimed],
                self.worker,
            )
            done, failed = _record(self.token, rows)
        except STORE_ERRORS as exc:
            if not error_is_transient(exc):
                message = f"could not store the image: {type(exc).__name__}: {exc}"
                done, failed = _record(
                    self.token, [(c.candidate_id, _failure_values(message)) for c in claimed]
                )
            else:
                _release_quietly(self.token)
                reason = f"{type(exc).__name__}: {exc}"
                if retry_later is None:
                    raise TransientFailure(reason) from exc
                log.warning("generation.batch.write_retry config=%s error=%s", self.config.pk, exc)
                retry_later(reason)
                return 0, 0
        finally:
            self.heartbeat.stop()
        metrics.images_recorded(config=self.config.name, done=done, failed=failed)
        for campaign_id in sorted({item.campaign_id for item in claimed}):
            campaign_finish_if_done(campaign_id=campaign_id)
        log.info(
            "generation.batch.done config=%s claimed=%d done=%d failed=%d skipped=%d seconds=%.3f",
            self.config.pk,
            report.claimed,
            done,
            failed,
            report.skipped,
            time.perf_counter() - self.started,
        )
        return done, failed


def _release_quietly(token: str) -> None:
    try:
        candidate_leases_release(token=token)
    except DatabaseError:
        # The database is what failed; the lease then simply runs out and the sweep requeues.
        log.warning("generation.lease.release_failed token=%s", token, exc_info=True)


def candidates_fail_unfinished(*, candidate_ids: Sequence[int], message: str) -> int:
    """Fail the batch's items nobody holds (after the last retry of a transient error)."""
    with transaction.atomic():
        unheld = dict(
            Candidate.objects.select_for_update(of=("self",))
            .filter(pk__in=candidate_ids, status=PENDING, leased_until__isnull=True)
            .values_list("pk", "config__name")
        )
        failed = Candidate.objects.filter(pk__in=list(unheld)).update(
            finished_at=timezone.now(), **_failure_values(message)
        )
    metrics.images_failed(configs=unheld.values())
    for campaign_id in set(
        Candidate.objects.filter(pk__in=candidate_ids).values_list("campaign_id", flat=True)
    ):
        campaign_finish_if_done(campaign_id=campaign_id)
    return failed
