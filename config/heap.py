"""Keep freed heap memory in the process instead of handing it back to the OS (glibc only).

Two callers free and allocate the same large amounts again and again, and with glibc's
defaults pay for it in page faults (the kernel zeroes every page handed out anew):

- an export frees tens of MB per chunk (the chunk's lines as Python strings, their bytes,
  numpy temporaries). With the default, self-adjusting thresholds the freed top of the heap
  went back to the OS whenever more than twice the largest recent block was free, so every
  chunk faulted its pages in again: about a million page faults per million records, 2 to 4
  CPU-s of system time in the Parquet and JSONL exports. `heap_keep_freed`: blocks up to 32 MB
  come from the heap, up to 64 MB of free heap stay in the process.
- a reward model on a CPU allocates its activations afresh in every forward pass, blocks of
  tens to hundreds of MB (the built-in network: ~130 MB per layer output for 256 images of
  64 px). Above 32 MB glibc always maps a block on its own and unmaps it when freed, so every
  pass faulted all of them in again: the built-in model's passes of 256 images cost ~45% more
  per image than passes of 64 (bench/scoring/RESULTS.md). `heap_keep_large_blocks`: no block
  is mapped on its own, and up to 1 GB of free heap stays in the process, so the next pass
  reuses the same pages; the process keeps its largest pass's memory.

The settings are process-wide and stay for the life of the process; elsewhere than glibc
these do nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
LARGE_TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024
_done: dict[str, bool] = {}  # the outcome of each setting, once tried


def _mallopt(name: str, options: list[tuple[int, int]]) -> bool:
    if name in _done:
        return _done[name]
    _done[name] = False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, ValueError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done[name] = all(mallopt(option, value) for option, value in options)
    if not _done[name]:
        log.warning("heap.mallopt_refused setting=%s", name)
    return _done[name]


def heap_keep_freed() -> bool:
    """Fixed thresholds for an exporter (once per process; later calls do nothing). True when
    set. After `heap_keep_large_blocks` it changes nothing that matters (nothing is mapped on
    its own any more) except lowering how much free heap stays."""
    if _done.get("large"):
        return True
    return _mallopt(
        "freed",
        [(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)],
    )


def heap_keep_large_blocks() -> bool:
    """No block mapped on its own, up to 1 GB of free heap kept (once per process). True when
    set."""
    return _mallopt("large", [(_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, LARGE_TRIM_THRESHOLD_BYTES)])
