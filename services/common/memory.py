"""Freed memory goes back to the system (glibc malloc).

Two tools. ``keep_large_blocks_returnable`` (the edge, whose large blocks are clients' events):

glibc serves large allocations with mmap and returns them on free, but raises that threshold
each time such a block is freed, up to 32 MiB: after a client's multi-megabyte events have come
and gone, later ones come from the heap, which fragments and does not shrink. Measured on the
edge, four sessions piling up 2.9 MB audio items left it 44 MB larger after they closed; with a
fixed threshold, 13 MB. ``FreedMemoryTrimmer`` (any service): a moment after a session ends,
``malloc_trim`` gives the heap's free pages back, without changing how memory is allocated (the
LLM's KV caches come and go with sessions; a fixed threshold would put every large tensor of a
decode step through mmap).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter; setting it also stops its dynamic growth
MMAP_THRESHOLD_BYTES = 256 * 1024


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # noqa: B018 (glibc has both)
    except (OSError, AttributeError):
        return None  # not glibc (musl, macOS): nothing to tune
    return libc


def keep_large_blocks_returnable() -> None:
    """Serve allocations of 256 KiB and more by mmap for the process's life (no-op off glibc)."""
    libc = _glibc()
    if libc is not None and not libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        log.warning("mallopt(M_MMAP_THRESHOLD) failed; freed memory may stay with the process")


class FreedMemoryTrimmer:
    """``soon()`` after something large was freed: one malloc_trim ``delay`` seconds later,
    however many ask meanwhile (no-op off glibc)."""

    def __init__(self, delay: float = 2.0) -> None:
        self._delay = delay
        self._libc = _glibc()
        self._pending: asyncio.TimerHandle | None = None

    def soon(self) -> None:
        if self._libc is None or self._pending is not None:
            return
        self._pending = asyncio.get_running_loop().call_later(self._delay, self._trim)

    def _trim(self) -> None:
        self._pending = None
        assert self._libc is not None
        self._libc.malloc_trim(0)
