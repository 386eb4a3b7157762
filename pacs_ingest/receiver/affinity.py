"""Each receiver process, with all of its threads, on one CPU (--receiver-affinity spread).

A receiver's event loop hands each turn's stores to an fsync thread, which wakes the loop again
once they are durable: two wake-ups per store between threads of one process, one of which holds
the GIL. Where the kernel runs those threads on different CPUs, every wake-up is an
inter-processor interrupt, and on a virtual machine each costs an exit to the hypervisor.
Measured on a 2-vCPU VM (benchmarks/cpu_per_object.py, and the pipeline alternated with and
without): a receiver spent 0.23-0.29 ms of CPU per synchronous 8 KB store left to the kernel and
0.13-0.15 ms pinned, and `up` filed 4-18 % more small objects per second with its receivers
pinned. Only one thread of a process runs Python at a time, so one CPU costs a receiver no
parallelism; the workers and everything else still run wherever the kernel puts them. On a
machine shared with other busy work, `none` lets the kernel move receivers away from a busy CPU.
"""

import contextlib
import os
from collections.abc import Iterable

from pacs_ingest.shared import log

SPREAD = "spread"
NONE = "none"
AFFINITIES = (SPREAD, NONE)


def receiver_cpu(index: int, count: int, allowed: Iterable[int]) -> int:
    """The CPU of receiver `index` of `count`: spread evenly over the `allowed` CPUs, taken in
    order, and round again when there are more receivers than CPUs."""
    cpus = sorted(allowed)
    if count <= len(cpus):
        return cpus[index * len(cpus) // count]
    return cpus[index % len(cpus)]


def pin_receiver(index: int, count: int) -> None:
    """Run every thread of this process, and each it starts later, on receiver `index`'s CPU
    among those this process may use (taskset, a cgroup's cpuset). Where the kernel refuses,
    the receiver runs unpinned and says so."""
    try:
        cpu = receiver_cpu(index, count, os.sched_getaffinity(0))
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
                os.sched_setaffinity(int(task), {cpu})
    except (AttributeError, OSError) as exc:  # AttributeError: no sched_setaffinity here
        log.warning("receiver.not_pinned", error=str(exc))
        return
    log.event("receiver.pinned", cpu=cpu)
