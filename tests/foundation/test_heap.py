"""config.heap: freed large blocks stay in the process, so allocating them again costs no page
faults (what a CPU reward model does in every forward pass). Each case runs in a process of
its own: the settings are process-wide and permanent."""

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, resource, sys
from config import heap
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
if sys.argv[1] == "keep":
    assert heap.heap_keep_large_blocks()
    assert heap.heap_keep_freed()  # an exporter in the same process keeps that setting
BLOCK = 96 * 1024 * 1024  # above glibc's largest mmap threshold (32 MB)
def faults_of_one_pass():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(BLOCK)  # as torch's CPU allocator takes a tensor's memory
    libc.memset(block, 1, BLOCK)  # written: every page is touched
    libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_one_pass()
print(min(faults_of_one_pass() for _ in range(3)))
"""


def minor_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


@pytest.mark.skipif(
    not _glibc(),
    reason="config.heap sets glibc's malloc only; elsewhere it does nothing",
)
def test_large_blocks_freed_and_allocated_again_reuse_their_pages():
    pages = 96 * 1024 * 1024 // 4096
    # by default each new 96 MB block is mapped afresh: a fault per page
    assert minor_faults("default") >= pages // 2
    # kept: the second and later passes find their pages in the process
    assert minor_faults("keep") < pages // 20
