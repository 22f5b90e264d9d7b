"""How many threads a CPU run computes with: one per core that other programs leave free,
checked again every few seconds.

PyTorch splits each CPU operator over its threads and waits for the slowest share. When another
busy process holds one of the cores, the thread that shares that core runs only in the
scheduler's time slices, every operator waits for it, and the waiting threads spin: a training
step of ~3,000 small operators then runs ~5x slower beside one busy process on two cores, and
more beside several, not 2x (bench/bench_busy_cpu.py). One thread per free core loses speed in
proportion to the cores lost instead.

Free cores are measured, not guessed from the load average: the busy time of the cores this
process may use (/proc/stat) minus this process's own CPU time, over the last interval. Where
/proc/stat does not exist, the thread count is left as it is.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import torch

PROC_STAT = Path("/proc/stat")
FREE_SHARE = 0.7      # a core counts as free when others leave it at least this idle


def usable_cores() -> set[int]:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return set(range(os.cpu_count() or 1))


def busy_s(cores: set[int]) -> Optional[float]:
    """Seconds of CPU time every process has spent on these cores so far, or None where
    /proc/stat cannot say. Only these cores: a busy host outside a cpuset does not count."""
    try:
        lines = PROC_STAT.read_text().splitlines()
    except OSError:
        return None
    busy, seen = 0, 0
    for line in lines:
        name, *values = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores):
            continue
        fields = [int(v) for v in values]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)     # idle + iowait
        busy += sum(fields[:8]) - idle                               # guest time is already counted in user
        seen += 1
    return busy / os.sysconf("SC_CLK_TCK") if seen else None


class ThreadGovernor:
    """Sets torch's intra-op threads to the cores that others leave free (never more than the count
    it found: OMP_NUM_THREADS or torch's default), at most every `interval` seconds; `fixed` > 0
    pins the count instead. restore() gives back the count it found."""

    def __init__(self, fixed: int = 0, interval: float = 5.0):
        self.found = torch.get_num_threads()
        self.core_ids = usable_cores()
        self.cores = len(self.core_ids)
        self.fixed, self.interval = fixed, interval
        self.said: Optional[str] = None              # the last decision that changed the count, for the log
        if fixed:
            torch.set_num_threads(fixed)
        self._mark()

    def start(self) -> int:
        """The first decision, before any work: others' load over a quarter of a second of this
        process idle."""
        if not self.fixed:
            self._mark()
            time.sleep(0.25)
            self.update(force=True)
        return torch.get_num_threads()

    def _mark(self) -> None:
        self.wall, self.own, self.busy = time.perf_counter(), time.process_time(), busy_s(self.core_ids)

    def others_load(self) -> Optional[float]:
        """Cores' worth of CPU time others used since the last mark (None: not measurable here)."""
        wall, own, busy = time.perf_counter(), time.process_time(), busy_s(self.core_ids)
        if busy is None or self.busy is None or wall - self.wall < 0.2:
            return None
        return max(0.0, (busy - self.busy) - (own - self.own)) / (wall - self.wall)

    def update(self, force: bool = False) -> int:
        """Re-decide when `interval` seconds have passed (or `force`); returns the thread count."""
        if self.fixed or (not force and time.perf_counter() - self.wall < self.interval):
            return torch.get_num_threads()
        others = self.others_load()
        if others is not None:
            threads = max(1, min(self.found, int(self.cores - others + (1 - FREE_SHARE))))
            if threads != torch.get_num_threads() or self.said is None:   # the first decision is always said
                torch.set_num_threads(threads)
                self.said = f"cpu threads {threads} (other programs keep {others:.1f} of {self.cores} cores busy)"
        self._mark()
        return torch.get_num_threads()

    def restore(self) -> None:
        torch.set_num_threads(self.found)
