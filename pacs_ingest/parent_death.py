"""Make a child we exec (the embedded Redis server) die with the process that started it.

Receivers and workers are Python children that watch their parent themselves
(shared.processes); a server binary cannot. Linux's PR_SET_PDEATHSIG, set in the child between
fork and exec, has the kernel signal it when its parent dies, even by SIGKILL. The signal is
sent when the parent *thread* that forked it exits, so start such children from the main thread.
"""

import ctypes
import os
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
# Resolved before any fork: the child only calls it, it looks nothing up.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` for subprocess.Popen: the child gets `signum` when we die.

    SIGTERM by default, so a server flushes what it holds before it exits. If we died between
    the fork and the prctl call, nobody would signal the child: it exits at once instead.
    """
    parent = os.getpid()

    def in_child() -> None:
        if _prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            os._exit(1)

    return in_child
