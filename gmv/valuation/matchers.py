"""Matchers: for every generated embedding, its K nearest training embeddings, searched with FAISS.

Kinds (FAISS index_factory strings):
- `flat`   exact search (`Flat`).
- `pq`     product quantisation, `PQ{m}x{nbits}np` — the paper's choice.
- `ivfpq`  inverted file + PQ on residuals, `IVF{nlist},PQ{m}x{nbits}np`, searched with `nprobe` lists.
- `opq`    PQ after a learned rotation, `OPQ{m},PQ{m}x{nbits}np`.
Any kind but `flat` can re-rank exactly: `rerank = R ≥ K` fetches R candidates and orders them by
true distance (FAISS `IndexRefineFlat`), which restores most of the recall PQ loses.

Settings the user leaves unset (None) adapt to the data (N points, dimension D); settings given
explicitly are validated and never changed. Every run measures recall@K against exact search on a
sample of queries, because bare PQ can lose half the true neighbours — users must see that number.

Output: the paper's m×K distance table and m×K index table (row j = generated point j, sorted by
distance). FAISS L2 indexes return *squared* L2 distances; `distance="l2"` takes the square root.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from gmv.errors import GmvError

KINDS = ("flat", "pq", "ivfpq", "opq")
DISTANCES = ("l2", "sqeuclidean")


@dataclass(frozen=True)
class MatcherConfig:
    kind: str = "flat"
    m: int | None = None  # PQ sub-quantisers; must divide D
    nbits: int | None = None  # bits per sub-quantiser code
    nlist: int | None = None  # IVF lists (ivfpq)
    nprobe: int | None = None  # IVF lists visited per query (ivfpq)
    rerank: int = 0  # R: exact re-rank of R ≥ K candidates; 0 = off
    train_size: int | None = None  # points used to train quantisers (None: min(N, 100k))
    recall_queries: int = 1000  # queries checked against exact search (0 = skip)
    seed: int = 0


@dataclass
class MatchResult:
    distances: np.ndarray  # float32 m×K, ascending per row (distance kind as requested)
    indices: np.ndarray  # int64 m×K into the pool; −1 where the index returned fewer than K
    recall_at_k: float  # mean |approx top-K ∩ exact top-K| / K over sampled queries (1.0 for flat)
    settings: dict[str, Any]  # the resolved matcher settings actually used
    factory: str  # FAISS index_factory string
    seconds: dict[str, float] = field(default_factory=dict)  # train/add/search/recall wall times


@contextlib.contextmanager
def torch_threads_paused():
    """Run FAISS with torch's OpenMP pool shrunk to one thread.

    torch and faiss-cpu each ship their own OpenMP runtime; with torch's pool at full size, FAISS
    training ran 16× slower here (two spinning pools on 2 cores). torch is idle during matching.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _divisors(d: int) -> list[int]:
    return [i for i in range(1, d + 1) if d % i == 0]


def resolve(cfg: MatcherConfig, n: int, d: int, k: int) -> MatcherConfig:
    """Validate explicit settings against (N, D, K) and fill the unset ones. Raises GmvError."""
    if cfg.kind not in KINDS:
        raise GmvError(f"unknown matcher {cfg.kind!r}; choose one of {', '.join(KINDS)}")
    if k < 1:
        raise GmvError(f"k must be ≥ 1, got {k}")
    if k > n:
        raise GmvError(f"k = {k} is larger than the training pool ({n} images); choose k ≤ {n}")
    if cfg.recall_queries < 0:
        raise GmvError(f"recall_queries must be ≥ 0, got {cfg.recall_queries}")
    if cfg.kind == "opq" and n < 256:
        raise GmvError(f"opq needs a pool of ≥ 256 points (FAISS learns its rotation with 256-centroid codebooks), "
                       f"this pool has {n}; use pq or flat")
    if cfg.kind == "flat":
        if cfg.rerank:
            raise GmvError("rerank only applies to approximate matchers (pq, ivfpq, opq); flat is already exact")
        return cfg
    out = {}
    # PQ sub-quantisers: explicit → must divide D; unset → the largest divisor of D ≤ min(64, D/2).
    if cfg.m is not None:
        if cfg.m < 1 or d % cfg.m:
            near = [x for x in _divisors(d) if x <= 4 * cfg.m][-4:]
            raise GmvError(f"PQ m = {cfg.m} does not divide the embedding dimension {d}; "
                           f"choose a divisor of {d} such as {', '.join(map(str, near))}")
    else:
        out["m"] = max(x for x in _divisors(d) if x <= max(1, min(64, d // 2)))
    # Bits per code: explicit → the training set must hold ≥ 2^nbits points; unset → 8 where there
    # are ≥ 39·256 points to train on (FAISS's rule of thumb), fewer for small pools.
    if cfg.nbits is not None:
        if not 1 <= cfg.nbits <= 16:
            raise GmvError(f"PQ nbits must be in 1..16, got {cfg.nbits}")
        if n < 2 ** cfg.nbits:
            raise GmvError(f"PQ nbits = {cfg.nbits} needs ≥ {2 ** cfg.nbits} training points, the pool has {n}; "
                           f"use nbits ≤ {int(math.log2(n))}")
    else:
        out["nbits"] = int(min(8, max(1, min(int(math.log2(n)), max(4, int(math.log2(max(n, 1) / 39)))))))
    if cfg.kind == "ivfpq":
        if cfg.nlist is not None:
            if not 1 <= cfg.nlist <= n:
                raise GmvError(f"nlist must be in 1..{n} (the pool size), got {cfg.nlist}")
            nlist = cfg.nlist
        else:
            nlist = out["nlist"] = int(max(1, min(int(4 * math.sqrt(n)), n // 39)))
        if cfg.nprobe is not None:
            if not 1 <= cfg.nprobe <= nlist:
                raise GmvError(f"nprobe must be in 1..nlist ({nlist}), got {cfg.nprobe}")
        else:
            out["nprobe"] = max(1, min(nlist, nlist // 8 if nlist >= 64 else nlist // 2 or 1))
    elif cfg.nlist is not None or cfg.nprobe is not None:
        raise GmvError(f"nlist/nprobe apply to the ivfpq matcher only, not {cfg.kind}")
    if cfg.rerank:
        if cfg.rerank < k:
            raise GmvError(f"rerank R = {cfg.rerank} must be ≥ k = {k} (it re-ranks R candidates to keep K)")
        if cfg.rerank > n:
            raise GmvError(f"rerank R = {cfg.rerank} exceeds the pool size {n}")
    return replace(cfg, **out)


def factory_string(cfg: MatcherConfig) -> str:
    if cfg.kind == "flat":
        return "Flat"
    # "np": no polysemous training — we never use polysemous search, and it made training 20× slower.
    pq = f"PQ{cfg.m}x{cfg.nbits}np"
    return {"pq": pq, "ivfpq": f"IVF{cfg.nlist},{pq}", "opq": f"OPQ{cfg.m},{pq}"}[cfg.kind]


def exact_search(pool: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Bare FAISS exact search: (squared L2 distances, indices), each m×k."""
    import faiss

    index = faiss.IndexFlatL2(pool.shape[1])
    with torch_threads_paused():
        index.add(pool)
        return index.search(queries, k)


def match(pool: np.ndarray, queries: np.ndarray, k: int, cfg: MatcherConfig = MatcherConfig(),
          distance: str = "l2") -> MatchResult:
    """Top-K neighbours in `pool` (N×D) of every row of `queries` (m×D). Validates first."""
    if distance not in DISTANCES:
        raise GmvError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if pool.ndim != 2 or queries.ndim != 2 or pool.shape[1] != queries.shape[1]:
        raise GmvError(f"pool {pool.shape} and queries {queries.shape} must be 2-D with the same dimension")
    n, d = pool.shape
    cfg = resolve(cfg, n, d, k)
    factory = factory_string(cfg)
    with torch_threads_paused():
        sq, idx, recall, seconds = _search(pool, queries, k, cfg, factory)
    idx = idx.astype(np.int64, copy=False)
    missing = idx < 0
    sq = np.where(missing, np.inf, np.maximum(sq, 0.0)).astype(np.float32)
    dist = sq if distance == "sqeuclidean" else np.sqrt(sq)
    settings = asdict(cfg)
    settings.update(distance=distance, k=k, n_pool=n, dim=d, n_missing=int(missing.sum()))
    return MatchResult(dist, idx, recall, settings, factory, seconds)


def _search(pool, queries, k, cfg: MatcherConfig, factory: str):
    import faiss

    seconds: dict[str, float] = {}
    n, d = pool.shape
    t0 = time.perf_counter()
    if cfg.kind == "flat":
        sq, idx = exact_search(pool, queries, k)
        seconds["search"] = time.perf_counter() - t0
        recall = 1.0
    else:
        index = faiss.index_factory(d, factory, faiss.METRIC_L2)
        _one_small_pool_warning(index, n, cfg.nbits)
        if cfg.rerank:
            index = faiss.IndexRefineFlat(index)
            index.k_factor = cfg.rerank / k
        rng = np.random.default_rng(cfg.seed)
        n_train = min(n, cfg.train_size or 100_000)
        train = pool if n_train == n else pool[np.sort(rng.choice(n, n_train, replace=False))]
        index.train(train)
        index.add(pool)
        seconds["train_add"] = time.perf_counter() - t0
        if cfg.kind == "ivfpq":
            faiss.extract_index_ivf(index).nprobe = cfg.nprobe
        t1 = time.perf_counter()
        sq, idx = index.search(queries, k)
        seconds["search"] = time.perf_counter() - t1
        recall = float("nan")
        if cfg.recall_queries:
            t2 = time.perf_counter()
            q = rng.choice(len(queries), min(cfg.recall_queries, len(queries)), replace=False)
            _, exact_idx = exact_search(pool, queries[q], k)
            recall = recall_at_k(idx[q], exact_idx)
            seconds["recall"] = time.perf_counter() - t2
    return sq, idx, recall, seconds


def _one_small_pool_warning(index, n: int, nbits: int) -> None:
    """FAISS prints one warning per sub-quantiser (up to 64 lines) when the pool has fewer than 39
    points per PQ centroid; say it once instead. (The threshold only gates FAISS's message: the
    k-means result is the same.)"""
    import faiss

    wanted = 39 * 2 ** nbits
    if n >= wanted:
        return
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexPreTransform):  # OPQ
        inner = faiss.downcast_index(inner.index)
    pq = getattr(inner, "pq", None)
    if pq is not None:
        pq.cp.min_points_per_centroid = 1
        print(f"[gmv] PQ: {n} pool points for {2 ** nbits} centroids per sub-quantiser (FAISS suggests ≥ {wanted}); "
              "codes are coarse — recall@K against exact search is reported", file=sys.stderr)


def recall_at_k(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Mean share of each query's exact top-K that the approximate top-K also found."""
    k = exact_idx.shape[1]
    hits = [len(np.intersect1d(a[a >= 0], e, assume_unique=True)) for a, e in zip(approx_idx, exact_idx)]
    return float(np.mean(hits) / k)
