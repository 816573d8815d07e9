"""Giving memory back to the system after each chunk (Arrow's pool and glibc's heap)."""

from __future__ import annotations

import contextlib
from typing import Any

import pyarrow as pa


def release_arrow_memory() -> None:
    """Give freed memory back to the system after a chunk: Arrow's pool and the C heap.

    Without it the allocators keep what a chunk used (Arrow's mimalloc, and
    glibc's heap, whose mmap threshold grows after large frees), and the
    resident memory of a long run creeps up chunk by chunk.
    """
    with contextlib.suppress(Exception):
        pa.default_memory_pool().release_unused()
    lib = libc()
    if lib is not None:
        lib.malloc_trim(0)


_LIBC: list[Any] = []


def libc() -> Any:
    """glibc, with large allocations pinned to mmap (so that freeing them returns memory)."""
    if not _LIBC:
        lib = None
        with contextlib.suppress(Exception):
            import ctypes

            lib = ctypes.CDLL("libc.so.6")
            lib.mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD: fixed, not raised by large frees
        _LIBC.append(lib)
    return _LIBC[0]
