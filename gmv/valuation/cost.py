"""What a valuation method costs: wall seconds and the peak memory it needs beyond what the process already held.

    with measured() as cost:
        result = method.value(evidence)
    cost.seconds, cost.peak_extra_mib

The memory is the process's resident set (psutil), sampled every `interval` seconds on a background thread
while the block runs: peak RSS during the block minus RSS when it began. It counts everything the method
allocates — numpy, FAISS, torch's CPU tensors — which Python-level tracing (tracemalloc) would miss, at the
price of sampling: an allocation that lives shorter than `interval` can be missed, so the number is a lower
bound on the true peak, and it is exact for the long-lived arrays that dominate. Pages freed but kept by the
allocator keep counting (RSS), so a method that runs after another can read lower than alone.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Cost:
    seconds: float = float("nan")
    peak_extra_mib: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return {"seconds": round(self.seconds, 3), "peak_extra_mib": round(self.peak_extra_mib, 1)}


@contextmanager
def measured(interval: float = 0.01):
    import psutil

    proc = psutil.Process()
    start_rss = proc.memory_info().rss
    peak = [start_rss]
    done = threading.Event()

    def sample():
        while not done.wait(interval):
            peak[0] = max(peak[0], proc.memory_info().rss)

    watcher = threading.Thread(target=sample, daemon=True)
    cost = Cost()
    t0 = time.perf_counter()
    watcher.start()
    try:
        yield cost
    finally:
        cost.seconds = time.perf_counter() - t0
        done.set()
        watcher.join()
        cost.peak_extra_mib = (max(peak[0], proc.memory_info().rss) - start_rss) / 2 ** 20
