"""Give freed heap back to the OS after a large transient allocation (a big history answer).

Parsing a 24 h answer at 1 s builds some 1.4 million Python floats on the way to numpy
arrays; once they are freed, glibc keeps much of that heap mapped. ``malloc_trim(0)``
returns it (30+ MiB measured by bench/app_cpu_rss.py). Elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from functools import cache
from typing import Any


@cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        _ = libc.malloc_trim  # glibc only (musl has none)
    except (OSError, AttributeError):
        return None
    return libc


def release_free_memory() -> bool:
    """Collect garbage and trim the C heap; True where the platform could trim."""
    gc.collect()
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
