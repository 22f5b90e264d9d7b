"""train/cpu_threads.py: one thread per core that others leave free, from a /proc/stat made here."""

import pytest
import torch

from train import cpu_threads


class Clock:
    """perf_counter, process_time and sleep of a process whose time is set by the test."""

    def __init__(self):
        self.wall, self.cpu = 100.0, 5.0

    def perf_counter(self):
        return self.wall

    def process_time(self):
        return self.cpu

    def sleep(self, seconds):
        self.wall += seconds


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """Two usable cores (0 and 1) and a third outside the affinity mask; busy ticks per core, settable."""
    stat = tmp_path / "stat"
    busy = {0: 0, 1: 0, 2: 0}

    def write():
        ticks = 100    # USER_HZ: /proc/stat counts in ticks
        lines = ["cpu  0 0 0 0 0 0 0 0"] + [f"cpu{c} {b * ticks} 0 0 {10**6} 0 0 0 0" for c, b in busy.items()]
        stat.write_text("\n".join(lines) + "\nintr 0\n")

    clock = Clock()
    monkeypatch.setattr(cpu_threads, "PROC_STAT", stat)
    monkeypatch.setattr(cpu_threads, "usable_cores", lambda: {0, 1})
    monkeypatch.setattr(cpu_threads, "time", clock)
    monkeypatch.setattr(cpu_threads.os, "sysconf", lambda name: 100)
    write()
    found = torch.get_num_threads()
    torch.set_num_threads(2)
    yield busy, write, clock
    torch.set_num_threads(found)


def test_threads_follow_the_cores_others_leave_free(machine):
    busy, write, clock = machine
    governor = cpu_threads.ThreadGovernor(interval=5.0)
    assert governor.start() == 2 and "keep 0.0 of 2 cores busy" in governor.said      # a quiet machine: every core
    # 10 s: this process used 10 s of CPU, the two cores 20 s in all: another program kept one core busy.
    clock.wall, clock.cpu = clock.wall + 10, clock.cpu + 10
    busy[0] += 10; busy[1] += 10; busy[2] += 1000    # core 2 is outside the affinity mask: never counted
    write()
    assert governor.update() == 1 == torch.get_num_threads() and "keep 1.0 of 2 cores busy" in governor.said
    clock.wall += 1                                   # within the interval: not measured again
    assert governor.update() == 1
    clock.wall, clock.cpu = clock.wall + 9, clock.cpu + 9
    busy[0] += 9                                       # the other program ended: only this process ran
    write()
    assert governor.update() == 2
    clock.wall, clock.cpu = clock.wall + 10, clock.cpu + 15
    busy[0] += 10; busy[1] += 10                       # half a core's worth of others: still one thread per free core
    write()
    assert governor.update() == 1


def test_a_fixed_count_stays_and_the_found_count_comes_back(machine):
    busy, write, clock = machine
    governor = cpu_threads.ThreadGovernor(fixed=1)
    assert governor.start() == 1
    clock.wall += 10
    busy[0] += 10; busy[1] += 10
    write()
    assert governor.update() == 1 and not governor.said
    governor.restore()
    assert torch.get_num_threads() == 2


def test_without_proc_stat_the_count_is_left_alone(machine, tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_threads, "PROC_STAT", tmp_path / "missing")
    governor = cpu_threads.ThreadGovernor()
    assert governor.start() == 2 and governor.said is None
