"""Evaluate autofaiss (criteo/autofaiss) as gmv's index selector, on one 200k × 512 case.

autofaiss pins numpy < 2 and pandas < 3 (gmv uses numpy 2 and pandas 3), so it runs in its own venv:

    python -m venv /tmp/afvenv && /tmp/afvenv/bin/pip install autofaiss faiss-cpu==1.15.1
    /tmp/afvenv/bin/python scripts/eval_autofaiss.py        # writes results/bench/autofaiss.json

Same data generator as scripts/bench_scale.py (scripts/synthetic_features.py); K = 50, an 8 GB
memory budget, recall@50 against exact search on 1,000 sampled queries.
"""

from __future__ import annotations

import json
import resource
import time
from importlib import metadata
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
from synthetic_features import pool_and_queries


def recall(a, e):
    return float(np.mean([len(np.intersect1d(x[x >= 0], y)) for x, y in zip(a, e)]) / e.shape[1])


def main(n=200_000, m=1000, d=512, k=50):
    from autofaiss import build_index

    pool, queries = pool_and_queries(n, m, d, seed=0)
    t = time.perf_counter()
    _, exact = faiss.knn(queries, pool, k)
    t_exact = time.perf_counter() - t
    t = time.perf_counter()
    index, infos = build_index(pool, save_on_disk=False, metric_type="l2", max_index_memory_usage="8G",
                               current_memory_available="16G", min_nearest_neighbors_to_retrieve=k, nb_cores=2)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    _, idx = index.search(queries, k)
    t_search = time.perf_counter() - t
    out = {"n": n, "m": m, "d": d, "k": k, "index_key": infos.get("index_key"), "index_param": infos.get("index_param"),
           "seconds_build": t_build, "seconds_search_1000": t_search, "seconds_exact_1000": t_exact,
           "recall_at_k": recall(idx, exact), "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           "infos": infos, "versions": {p: metadata.version(p) for p in
                                        ("autofaiss", "faiss-cpu", "numpy", "pandas", "pyarrow", "embedding-reader",
                                         "fire", "fsspec")}}
    Path(ROOT / "results" / "bench").mkdir(parents=True, exist_ok=True)
    (ROOT / "results" / "bench" / "autofaiss.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps({k_: v for k_, v in out.items() if k_ != "infos"}, indent=2, default=str))


if __name__ == "__main__":
    main()
