"""A service worker ends with the process that started it.

BentoML's arbiter starts each worker in a process group of its own, so a supervisor that kills the arbiter
(SIGKILL, the OOM killer) would leave the worker behind, still serving on the inherited socket next to the
restarted service, unseen. On Linux the kernel can send the worker SIGTERM when its parent dies; a worker whose
arbiter died before it asked (it was still importing) ends at once. `driftloop serve` names the arbiter: it
becomes `bentoml serve` by exec, keeping its pid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)
ARBITER_ENV = "DRIFTLOOP_SERVICE_ARBITER_PID"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def exit_with_arbiter() -> bool:
    """Ask for SIGTERM when the parent process dies, and end now when the arbiter is already gone; False where
    the platform cannot ask (nothing changes there)."""
    library = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or library is None:
        return False
    libc = ctypes.CDLL(library, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM)) != 0:
        log.warning(
            "prctl(PR_SET_PDEATHSIG) failed (errno %d): this worker outlives a killed arbiter", ctypes.get_errno()
        )
        return False
    arbiter = os.environ.get(ARBITER_ENV)
    if arbiter is not None and os.getppid() != int(arbiter):
        log.error("the service's arbiter (pid %s) is gone; this worker ends", arbiter)
        logging.shutdown()
        os._exit(1)  # nothing is set up yet: no cleanup to run
    return True
