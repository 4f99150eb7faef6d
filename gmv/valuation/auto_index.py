"""`matcher=auto`: which FAISS index for N pool points, M queries, dimension D, K matches and a memory budget.

What it rests on (2-core CPU, faiss-cpu 1.15, 512-d clustered features, K = 50; results/bench/scale.md):
exact search runs at about 200 GFLOP/s, t ≈ 2·N·M·D / 2e11 s (N = 1M × M = 100k: ≈ 9 min); bare PQ/OPQ
never reaches recall@50 0.95 at 512-d; IVF with SQ8 codes reaches it at a few percent of the lists
probed, at a fraction of exact search's cost. So, in order:

1. `flat` (exact) when the pool is small (N ≤ 20,000) or exact search is cheap (N·M·D ≤ 3e12, about
   30 s here): recall 1, exact distances, no index to build and no memory beyond the pool itself.
2. `ivfsq8` with an exact re-rank of R = 2K candidates (FAISS IndexRefineFlat) when its N·(5D + 8)
   bytes fit the budget: the K distances kept are exact, recall is that of the inverted file, whose
   `nprobe` is tuned at match time until recall@K on sampled queries reaches the target.
3. `ivfsq8` without the re-rank when only N·(D + 8) bytes fit (distances carry SQ8's small error).
4. `ivfpq` with the largest PQ `m` that fits N·(m + 8) bytes — recall may then fall short of the
   target; the run measures it and says so.
Otherwise: an error, the budget holds no index for this pool.

`memory_gb` bounds what the matcher builds (index, training sample, quantiser); the pool array the
caller passes is the caller's. Settings given explicitly (nlist, nprobe, rerank, m, nbits) are kept when
the chosen index uses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gmv.errors import GmvError

SMALL_POOL = 20_000  # exact search for any number of queries
EXACT_WORK = 3e12  # N·M·D below which exact search is cheap (≈ 30 s at ≈ 200 GFLOP/s)
EXACT_FLOPS = 2e11  # measured exact-search rate on the project's 2-core CPU (for the reason line)
GIB = 2 ** 30


@dataclass(frozen=True)
class Choice:
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)  # settings the chosen index gets
    reason: str = ""
    index_bytes: int = 0  # estimated memory the matcher builds


def default_nlist(n: int) -> int:
    """≈ 4√N inverted lists, with at least 39 points per list (FAISS's k-means rule of thumb)."""
    return int(max(1, min(int(4 * math.sqrt(n)), n // 39)))


def default_train_size(n: int, nlist: int | None = None) -> int:
    """Points the quantisers train on: up to 100k, more for IVF so that each list gets ~50."""
    return min(n, max(100_000, 50 * (nlist or 0)))


def index_bytes(kind: str, n: int, d: int, *, nlist: int = 0, m: int = 0, rerank: int = 0,
                train_size: int = 0) -> int:
    """Estimated peak bytes the matcher builds for `kind`: the quantiser plus the larger of the training
    sample (a copy, freed before the pool is added) and the codes, ids and re-rank copy."""
    if kind == "flat":
        return 0
    per_vector = {"ivfflat": 4 * d + 8, "ivfsq8": d + 8, "ivfpq": m + 8, "pq": m, "opq": m}[kind]
    stored = n * per_vector + (4 * d * n if rerank else 0)  # IndexRefineFlat keeps an exact copy of the pool
    return int(4 * d * nlist + max(4 * d * train_size, stored))


def _gb(b: float) -> str:
    return f"{b / GIB:.2f} GB"


def choose(n: int, d: int, k: int, n_queries: int | None, memory_gb: float, *, nlist: int | None = None,
           nprobe: int | None = None, rerank: int = 0, m: int | None = None, nbits: int | None = None,
           train_size: int | None = None) -> Choice:
    """The index `auto` uses for this job (see the module docstring). `n_queries` None: not known yet
    (assumed N, the conservative case)."""
    if not (isinstance(memory_gb, (int, float)) and math.isfinite(memory_gb) and memory_gb > 0):
        raise GmvError(f"matcher.memory_gb must be a number > 0 (GB the index may use), got {memory_gb!r}")
    budget = memory_gb * GIB
    m_q = n if n_queries is None else n_queries
    work = float(n) * m_q * d
    eta = 2 * work / EXACT_FLOPS
    if n <= SMALL_POOL or work <= EXACT_WORK:
        why = f"pool of {n:,} ≤ {SMALL_POOL:,}" if n <= SMALL_POOL else f"N·M·D = {work:.1e} ≤ {EXACT_WORK:.0e}"
        return Choice("flat", {}, f"exact search is cheap ({why}, ≈ {eta:.0f} s): recall 1, exact distances", 0)
    nl = nlist or default_nlist(n)
    ts = train_size or default_train_size(n, nl)
    slow = f"exact search would cost N·M·D = {work:.1e} (≈ {eta:.0f} s)"
    base = {"nlist": nl, "nprobe": nprobe, "train_size": ts}
    r = rerank or 2 * k
    with_rerank = index_bytes("ivfsq8", n, d, nlist=nl, rerank=r, train_size=ts)
    if with_rerank <= budget:
        return Choice("ivfsq8", {**base, "rerank": min(r, n)},
                      f"{slow}; IVF{nl},SQ8 + exact re-rank of {r} fits {memory_gb:g} GB ({_gb(with_rerank)}); "
                      "nprobe tuned to the recall target", with_rerank)
    bare = index_bytes("ivfsq8", n, d, nlist=nl, train_size=ts)
    dropped = f" (no re-rank: its exact copy of the pool needs {_gb(with_rerank)})"
    if bare <= budget:
        return Choice("ivfsq8", {**base, "rerank": 0},
                      f"{slow}; IVF{nl},SQ8 fits {memory_gb:g} GB ({_gb(bare)}){dropped}; distances carry SQ8 "
                      "error; nprobe tuned to the recall target", bare)
    divisors = [x for x in range(1, d + 1) if d % x == 0]
    if m is not None:
        divisors = [m]
    fitting = [x for x in divisors if index_bytes("ivfpq", n, d, nlist=nl, m=x, train_size=ts) <= budget]
    if not fitting:
        need = index_bytes("ivfpq", n, d, nlist=nl, m=min(divisors), train_size=ts)
        raise GmvError(f"matcher.memory_gb = {memory_gb:g} is too small for a pool of {n:,} × {d}: even the "
                       f"smallest index needs {_gb(need)}; raise matcher.memory_gb")
    pq_m = max([x for x in fitting if x <= max(1, d // 2)] or fitting)
    used = index_bytes("ivfpq", n, d, nlist=nl, m=pq_m, train_size=ts)
    return Choice("ivfpq", {**base, "m": pq_m, "nbits": nbits or 8, "rerank": 0},
                  f"{slow}; only IVF{nl},PQ{pq_m} fits {memory_gb:g} GB ({_gb(used)}){dropped}: recall may fall "
                  "short of the target — raise matcher.memory_gb for IVF-SQ8", used)
