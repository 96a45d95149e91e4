"""Freed memory goes back to the system (glibc malloc).

glibc serves large allocations with mmap and returns them on free, but raises that threshold
each time such a block is freed, up to 32 MiB: after a client's multi-megabyte events have come
and gone, later ones come from the heap, which fragments and does not shrink. Measured on the
edge, four sessions piling up 2.9 MB audio items left it 44 MB larger after they closed; with a
fixed threshold, 13 MB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter; setting it also stops its dynamic growth
MMAP_THRESHOLD_BYTES = 256 * 1024


def keep_large_blocks_returnable() -> None:
    """Serve allocations of 256 KiB and more by mmap for the process's life (no-op off glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc (musl, macOS): nothing to tune
    if not mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        log.warning("mallopt(M_MMAP_THRESHOLD) failed; freed memory may stay with the process")
