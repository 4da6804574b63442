"""Keep freed memory in the process instead of handing it back to the OS after every step.

A training step allocates and frees the same large arrays (im2col matrices, activations and
their gradients: about 170 MB per FashionCNN step at batch 64) again and again. With glibc's
default policy, large blocks are returned to the kernel when freed (``munmap``, or trimming the
top of the heap), so the next step touches brand-new pages: measured on this project's 2-core
machine, that is about 5,000 page faults per step, which took a FashionCNN step from 50 ms to
70-85 ms. Buffers reused between steps fix this; glibc does exactly that when told to keep its
heap (``M_TRIM_THRESHOLD``) and to serve blocks up to 32 MB from the heap (``M_MMAP_THRESHOLD``).
Both settings apply to the whole process. ``TINYCONV_MALLOC_TUNING=0`` leaves malloc alone;
other C libraries (macOS, musl, Windows) are left alone too.
"""

from __future__ import annotations

import ctypes
import sys

from tinyconv._utils import env_choice

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest accepted value on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024  # give memory back only above 1 GiB free at the heap top


def tune_malloc() -> bool:
    """Apply the settings above when running on glibc; True when they were applied."""
    if env_choice("TINYCONV_MALLOC_TUNING") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc only: musl's mallopt is a stub
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


MALLOC_TUNED = tune_malloc()
