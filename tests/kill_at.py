"""Run the `gmv` app and SIGKILL it at a chosen point — for the kill-and-rerun tests (tests/test_healing.py).

    python tests/kill_at.py POINT N [gmv overrides …]

POINT (the process kills itself, as `kill -9` would, right after):
    checkpoint  the N-th training checkpoint is written
    part        the N-th part of the samples is written (parts of one batch each)
    chunk       the N-th chunk of embeddings is written
    match       the N-th call of the matcher begins
    report      values.csv is written (the report is half done)
"""

from __future__ import annotations

import os
import signal
import sys


def _after(owner, name: str, n: int, before: bool = False) -> None:
    original = getattr(owner, name)
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if before and calls["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        out = original(*args, **kwargs)
        if not before and calls["n"] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(owner, name, wrapped)


def install(point: str, n: int) -> None:
    if point == "checkpoint":
        from gmv.training.callbacks import IterationCheckpoint

        _after(IterationCheckpoint, "_save", n)
    elif point == "part":
        import gmv.pipeline.sample_stage as sampling

        sampling.PART_BATCHES = 1
        _after(sampling, "save_npz", n)
    elif point == "chunk":
        from gmv.valuation.store import EmbeddingStore

        _after(EmbeddingStore, "write_chunk", n)
    elif point == "match":
        import gmv.valuation.api as api

        _after(api, "match", n, before=True)
    elif point == "report":
        import gmv.analysis.report as report

        _after(report, "write_value_tables", n)
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    point, n, *overrides = sys.argv[1:]
    install(point, int(n))
    from gmv.cli.main import main

    sys.argv = ["gmv", *overrides]
    main()
