"""What a Dask worker needs to read pictures at full speed: glibc's malloc as it is outside Dask.

`digits read --dask` registers `KeepLargeBlocks` on the cluster (under
`PLUGIN_NAME`), so that every worker, those that join later included, runs
`keep_large_blocks` once. Imported only with Dask's distributed installed.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

from distributed import WorkerPlugin

PLUGIN_NAME = "digits-keep-large-blocks"
# glibc's mallopt parameters, and the highest mmap threshold glibc itself ever
# moves to (DEFAULT_MMAP_THRESHOLD_MAX: 32 MiB on 64-bit systems, 4 MiB on 32-bit).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 4 * 2**20 * ctypes.sizeof(ctypes.c_long)


def keep_large_blocks() -> bool:
    """Undo, in this process, the malloc setting Dask's workers start with; True when it was undone.

    Dask's nanny starts every worker with MALLOC_TRIM_THRESHOLD_=65536
    (`distributed.nanny.pre-spawn-environ`), to hand freed memory back to the
    kernel at once. Setting it also stops glibc from raising its mmap threshold
    as big blocks come and go, so every array over 128 KiB (a phone photo's are
    megabytes) is mapped and unmapped anew, and each of its pages faults when
    first touched: measured, a phone photo or a page then costs 80 ms instead
    of 42. This fixes both thresholds at the most glibc would raise them to
    (the trim threshold at twice the mmap threshold, as glibc sets it). A
    reading worker holds one picture at a time, so its memory stays flat; other
    work on the same worker gets the same malloc. Nothing happens when the
    variable is not set, or off glibc.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # no glibc (musl, say): the variable means nothing there
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX))


class KeepLargeBlocks(WorkerPlugin):
    """A Dask worker plugin: `keep_large_blocks` on every worker of the cluster, those that join later included."""

    def setup(self, worker: Any) -> None:
        keep_large_blocks()
