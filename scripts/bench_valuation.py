"""Benchmark: gmv's match + value against bare FAISS exact search, and recall@K of each matcher.

    python scripts/bench_valuation.py                    # N=50k, M=10k, D=512, K=50 (the issue's setting)
    python scripts/bench_valuation.py --n 5000 --m 1000  # quicker

Data: clustered Gaussian embeddings (100 centres, unit noise) — the structure real image features
have, and the hard case for PQ. Writes results/bench/valuation.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from gmv.io import write_json, write_text
from gmv.valuation.matchers import MatcherConfig, exact_search, match
from gmv.valuation.value import values_from_matches


def clustered(n, d, n_centres, rng):
    centres = rng.normal(0, 3.0, (n_centres, d))
    return (centres[rng.integers(0, n_centres, n)] + rng.normal(size=(n, d))).astype(np.float32)


def best_of(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--m", type=int, default=10_000)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--recall-queries", type=int, default=1000)
    p.add_argument("--out", default=str(ROOT / "results" / "bench"))
    a = p.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3.0, (100, a.d))
    pool = (centres[rng.integers(0, 100, a.n)] + rng.normal(size=(a.n, a.d))).astype(np.float32)
    queries = (centres[rng.integers(0, 100, a.m)] + rng.normal(size=(a.m, a.d))).astype(np.float32)

    # 1. Speed: gmv's exact match + value (Eq. 5–6) vs the bare FAISS exact search it wraps.
    t_bare, _ = best_of(lambda: exact_search(pool, queries, a.k), a.repeats)

    def gmv_flat():
        r = match(pool, queries, a.k, MatcherConfig("flat"))
        return values_from_matches(r.distances, r.indices, a.n)

    t_gmv, (values, _, _) = best_of(gmv_flat, a.repeats)
    assert abs(values.sum() - a.m) < 1e-6 * a.m

    # 2. Recall@K vs exact for the approximate matchers (one run each; training time included).
    rows = []
    for name, cfg in [
        ("pq (bare)", MatcherConfig("pq", recall_queries=a.recall_queries)),
        ("pq + re-rank 4K", MatcherConfig("pq", rerank=4 * a.k, recall_queries=a.recall_queries)),
        ("ivfpq (bare)", MatcherConfig("ivfpq", recall_queries=a.recall_queries)),
        ("ivfpq + re-rank 4K", MatcherConfig("ivfpq", rerank=4 * a.k, recall_queries=a.recall_queries)),
        # OPQ's rotation training (50 alternations of PQ training and SVD) is the slow part: train on 10k.
        ("opq (bare), trained on 10k", MatcherConfig("opq", train_size=10_000, recall_queries=a.recall_queries)),
        ("opq + re-rank 4K, trained on 10k",
         MatcherConfig("opq", train_size=10_000, rerank=4 * a.k, recall_queries=a.recall_queries)),
    ]:
        t = time.perf_counter()
        r = match(pool, queries, a.k, cfg)
        values_from_matches(r.distances, r.indices, a.n)
        total = time.perf_counter() - t
        rows.append({"matcher": name, "factory": r.factory, "rerank": cfg.rerank, "recall_at_k": r.recall_at_k,
                     "seconds_total": total, "seconds_train_add": r.seconds.get("train_add"),
                     "seconds_search": r.seconds["search"], "seconds_recall_check": r.seconds.get("recall"),
                     "nprobe": r.settings.get("nprobe"), "nlist": r.settings.get("nlist")})
        print(f"{name:20s} {r.factory:22s} recall@{a.k}={r.recall_at_k:.3f}  {total:.1f}s", flush=True)

    import faiss
    import torch

    result = {
        "command": "python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
        "n_pool": a.n, "m_generated": a.m, "dim": a.d, "k": a.k, "repeats": a.repeats,
        "seconds_bare_faiss_exact": t_bare, "seconds_gmv_match_value": t_gmv, "ratio": t_gmv / t_bare,
        "target_ratio": 1.15, "matchers": rows,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "faiss": faiss.__version__, "numpy": np.__version__, "torch": torch.__version__},
    }
    out = Path(a.out)
    write_json(out / "valuation.json", result)
    lines = [
        "# Valuation benchmark", "",
        f"`{result['command']}` — N = {a.n:,} training embeddings, M = {a.m:,} generated, D = {a.d}, K = {a.k}, "
        f"clustered Gaussian data (100 centres); {os.cpu_count()} CPU cores, faiss {faiss.__version__}.", "",
        "## gmv match + value vs bare FAISS exact search (best of %d)" % a.repeats, "",
        "| | seconds |", "|---|---:|",
        f"| bare FAISS `IndexFlatL2` add + search | {t_bare:.2f} |",
        f"| gmv `match(flat)` + Eq. 5–6 values | {t_gmv:.2f} |",
        f"| ratio (target ≤ 1.15) | **{t_gmv / t_bare:.3f}** |", "",
        "## Recall@K against exact search (%d sampled queries)" % a.recall_queries, "",
        "| matcher | FAISS index | recall@%d | total s | train+add s | search s |" % a.k,
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['matcher']} | `{r['factory']}`{' + IndexRefineFlat' if r['rerank'] else ''} | "
                     f"{r['recall_at_k']:.3f} | {r['seconds_total']:.1f} | {r['seconds_train_add']:.1f} | "
                     f"{r['seconds_search']:.1f} |")
    write_text(out / "valuation.md", "\n".join(lines) + "\n")
    print("\n".join(lines[:12]))


if __name__ == "__main__":
    main()
