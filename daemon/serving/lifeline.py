"""A service worker ends with the process that started it.

BentoML's arbiter starts each worker in a process group of its own, so a supervisor that kills the arbiter
(SIGKILL, the OOM killer) would leave the worker behind, still serving on the inherited socket next to the
restarted service, unseen. On Linux the kernel can send the worker SIGTERM when its parent dies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def exit_with_parent() -> bool:
    """Ask for SIGTERM when the parent process dies; False where the platform cannot (nothing changes there)."""
    parent = os.getppid()
    library = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or library is None:
        return False
    libc = ctypes.CDLL(library, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM)) != 0:
        log.warning(
            "prctl(PR_SET_PDEATHSIG) failed (errno %d): this worker outlives a killed arbiter", ctypes.get_errno()
        )
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return True
