"""Write-behind: a worker renders the next batch while the last one's images are stored.

Encoding, the upload and the record of a batch need the CPU and the network, not the GPU; done
inline, the GPU waits for them between batches (an S3 PUT per image at batch size 1 was most of
the platform's overhead per image). The worker's task hands them to this process' single writer
thread and returns; the next task renders meanwhile. At most one batch waits to be written (the
next hand-off waits for it), so memory stays bounded to about two batches of images.

Exactly once still holds: the batch's items stay leased (the heartbeat runs until they are
recorded) and only the lease's token can finish them. If the process dies before its writer
finished, the leases run out and the sweep queues the items again, as for a crash mid-render.
The worker flushes the writer before it exits (tasks.py: worker_process_shutdown).

The job runs in a copy of the submitting task's context, so its log lines and the retries it
publishes carry that task's request id, id and name (config/logs.py).
"""

import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout

from django.db import close_old_connections

log = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_pending: Future | None = None


def write_behind_submit(job: Callable[[], object]) -> None:
    """Run `job` on the writer thread once the previous batch's write finished."""
    global _executor, _pending
    write_behind_flush()
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-behind")
    _pending = _executor.submit(contextvars.copy_context().run, _run, job)


def _run(job: Callable[[], object]) -> None:
    # The writer thread has its own database connection: it gets the treatment a task's gets
    # (config/celery.py), so one that broke or aged out is replaced instead of kept.
    close_old_connections()
    try:
        job()
    except Exception:  # noqa: BLE001 - see below
        # A job handles the storage and database errors it expects; anything else (a bug, the
        # database gone while recording a failure) is logged here and stops with this batch:
        # its items are still leased, so the sweep queues them again, and the next batch,
        # which has nothing to do with it, goes on.
        log.exception("generation.write_behind.failed")
    finally:
        close_old_connections()


def write_behind_flush(timeout: float | None = None) -> None:
    """Wait until the batch being written (if any) is recorded (its failures are logged by
    the writer thread, never raised into the next batch)."""
    global _pending
    pending, _pending = _pending, None
    if pending is None:
        return
    try:
        pending.result(timeout=timeout)
    except FuturesTimeout:
        log.warning("generation.write_behind.flush_timeout seconds=%s", timeout)
