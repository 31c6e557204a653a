"""Keep freed heap memory in the process between an exporter's chunks (glibc only).

An export frees tens of MB per chunk: the chunk's lines as Python strings, their bytes, numpy
temporaries. With glibc's default, self-adjusting thresholds the freed top of the heap goes back
to the OS whenever more than twice the largest recent block is free, so every chunk faulted its
pages in again: about a million page faults per million records, 2 to 4 CPU-s of system time
(most of it zeroing pages) in the Parquet and JSONL exports. Fixed thresholds (blocks up to
32 MB come from the heap; up to 64 MB of free heap stay in the process) stop that, at the price
of at most that much memory kept resident between chunks. The setting is process-wide and stays
for the life of the worker; elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
_set: bool | None = None  # the outcome, once tried


def heap_keep_freed() -> bool:
    """Set glibc's thresholds (once per process; later calls do nothing). True when set."""
    global _set
    if _set is not None:
        return _set
    _set = False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, ValueError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _set = bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not _set:
        log.warning("exporters.heap.mallopt_refused")
    return _set
