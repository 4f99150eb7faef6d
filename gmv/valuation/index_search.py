"""The mechanics of one FAISS K-NN job at any size: train on a sample, add in chunks, search in query
chunks, tune an inverted file's `nprobe` to a recall target, measure recall against exact search.

Memory: the pool is never copied for exact search (`faiss.knn` reads the caller's array, which may be a
memory-mapped `.npy`); an index holds its codes (plus an exact copy of the pool only with `rerank`);
the m×K tables are filled chunk by chunk into arrays the caller provides (in RAM or memory-mapped).
Chunks are of equal size (`np.array_split`), so none is tiny: FAISS searches fewer than 20 queries
without BLAS, with other rounding, and equal chunks keep chunked tables identical to one-shot ones.
Progress bars show only when a job has more than one chunk.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np

from gmv.console import progress_bar

ADD_CHUNK = 65_536  # pool vectors per add
SEARCH_CHUNK = 16_384  # queries per search
#: nprobe values tried, in order, when tuning to the recall target (≈ ×1.5 steps)
NPROBE_LADDER = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
CALIBRATION_QUERIES = 500
#: tuning aims this much above the target, so that recall on other queries stays above it too
#: (tuned to exactly 0.95, the 200k × 512 benchmark measured 0.959 and 0.963 on two other samples)
CALIBRATION_MARGIN = 0.01


@contextlib.contextmanager
def torch_threads_paused():
    """Run FAISS with torch's OpenMP pool shrunk to one thread, and FAISS's pool as it was.

    torch and faiss-cpu each ship an OpenMP runtime; with torch's pool at full size, FAISS
    training ran 16× slower here (two spinning pools on 2 cores). torch is idle during matching.
    When torch was imported before FAISS the two share one runtime, and shrinking torch's pool
    would shrink FAISS's too (gmv-value searched on one of two cores that way): FAISS's thread
    count, read before, is set again after torch's is lowered, and both are restored after.
    """
    import faiss

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    n, n_faiss = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(n_faiss)
    try:
        yield
    finally:
        torch.set_num_threads(n)
        faiss.omp_set_num_threads(n_faiss)


@contextlib.contextmanager
def faiss_threads(n: int | None):
    """FAISS's OpenMP pool at `n` threads for the block (None: unchanged), e.g. one per Ray worker."""
    import faiss

    if not n:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(n))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def chunks(n: int, size: int) -> list[np.ndarray]:
    """Equal-size index chunks of at most `size` (one chunk when n ≤ size)."""
    return np.array_split(np.arange(n), max(1, math.ceil(n / max(1, size)))) if n else []


def knn_exact(pool: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact squared-L2 K-NN without copying the pool (identical to IndexFlatL2's search)."""
    import faiss

    return faiss.knn(queries, pool, k)


PROBE_QUERIES = 1_024  # queries and pool points of the searches that matcher=auto times
PROBE_POINTS = 16_384
PROBE_LISTS, PROBE_NPROBE = 64, 8  # the probe's inverted file: 8 of 64 lists (≈ 2,048 codes) per query


def probe(pool: np.ndarray, queries: np.ndarray, k: int):
    """What matcher=auto measures on this machine, now (gmv/valuation/auto_index.py): seconds per (query,
    pool point) pair of exact search at K = `k` and at K = 1 (`faiss.knn`), and seconds per code scanned by
    an IVF-SQ8 index with an exact re-rank of 2K (the index auto would build), on the first PROBE_QUERIES
    queries and PROBE_POINTS pool points, after one untimed search that starts FAISS's threads. ≈ 0.3 s
    on 2 cores."""
    import faiss

    from gmv.valuation.auto_index import ExactRate

    q = np.ascontiguousarray(queries[:PROBE_QUERIES], dtype=np.float32)
    p = np.ascontiguousarray(pool[:PROBE_POINTS], dtype=np.float32)
    kk = min(k, len(p))

    def timed(search) -> float:
        t = time.perf_counter()
        search()
        return max(time.perf_counter() - t, 1e-9)

    pairs = len(q) * len(p)
    faiss.knn(q[:64], p, kk)  # warm-up
    exact_k, exact_1 = timed(lambda: faiss.knn(q, p, kk)) / pairs, timed(lambda: faiss.knn(q, p, 1)) / pairs
    lists = max(1, min(PROBE_LISTS, len(p) // 39))
    index = faiss.IndexRefineFlat(faiss.index_factory(p.shape[1], f"IVF{lists},SQ8"))
    index.train(p)
    index.add(p)
    index.k_factor = 2.0
    nprobe = min(PROBE_NPROBE, lists)
    set_nprobe(index, nprobe)
    per_code = timed(lambda: index.search(q, kk)) / (len(q) * len(p) * nprobe / lists)
    return ExactRate(exact_k, exact_1, per_code, len(q), len(p), int(faiss.omp_get_max_threads()), int(k))


def recall_at_k(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Mean share of each query's exact top-K that the approximate top-K also found."""
    k = exact_idx.shape[1]
    hits = [len(np.intersect1d(a[a >= 0], e, assume_unique=True)) for a, e in zip(approx_idx, exact_idx)]
    return float(np.mean(hits) / k)


def _bar(total: int, n_chunks: int, desc: str, unit: str, progress: bool | None):
    return progress_bar(total=total, desc=desc, unit=unit, disable=(n_chunks <= 1) if progress is None else not progress,
                file=sys.stderr, leave=False)


def search_into(search, queries: np.ndarray, k: int, sq_out: np.ndarray, idx_out: np.ndarray, chunk: int,
                progress: bool | None = None, desc: str = "search") -> None:
    """Fill the m×K output tables with `search(queries[rows], k)`, chunk by chunk."""
    parts = chunks(len(queries), chunk)
    with _bar(len(queries), len(parts), desc, "query", progress) as bar:
        for rows in parts:
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            sq_out[lo:hi], idx_out[lo:hi] = search(queries[lo:hi], k)
            bar.update(hi - lo)


def build(pool: np.ndarray, factory: str, cfg, rng: np.random.Generator, progress: bool | None = None):
    """A trained FAISS index over `pool` (IndexRefineFlat around it with `cfg.rerank`), added in chunks."""
    import faiss

    n, d = pool.shape
    index = faiss.index_factory(d, factory, faiss.METRIC_L2)
    small_pool_note(index, n, cfg.nbits)
    if cfg.rerank:
        index = faiss.IndexRefineFlat(index)
    n_train = min(n, cfg.train_size or 100_000)
    train = pool if n_train == n else pool[np.sort(rng.choice(n, n_train, replace=False))]
    parts = chunks(n, cfg.chunk_size or ADD_CHUNK)
    if len(parts) > 1 and progress is not False:
        print(f"[gmv] training {factory} on {n_train:,} of {n:,} points", file=sys.stderr, flush=True)
    index.train(train)
    del train
    with _bar(n, len(parts), f"add {factory}", "vec", progress) as bar:
        for rows in parts:
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            index.add(pool[lo:hi])
            bar.update(hi - lo)
    return index


def set_nprobe(index, nprobe: int) -> None:
    import faiss

    faiss.extract_index_ivf(index).nprobe = int(nprobe)


def tune_nprobe(index, queries: np.ndarray, exact_idx: np.ndarray, k: int, nlist: int,
                target: float) -> tuple[int, float, list[tuple[int, float]]]:
    """The smallest nprobe on NPROBE_LADDER (then nlist) whose recall@K on `queries` reaches `target`."""
    tried: list[tuple[int, float]] = []
    for nprobe in [p for p in NPROBE_LADDER if p < nlist] + [nlist]:
        set_nprobe(index, nprobe)
        _, idx = index.search(queries, k)
        tried.append((nprobe, recall_at_k(idx, exact_idx)))
        if tried[-1][1] >= target:
            break
    return tried[-1][0], tried[-1][1], tried


def small_pool_note(index, n: int, nbits: int | None) -> None:
    """FAISS prints one warning per sub-quantiser (up to 64 lines) when the pool has fewer than 39
    points per PQ centroid; say it once instead. (The threshold only gates FAISS's message: the
    k-means result is the same.)"""
    import faiss

    if nbits is None:
        return
    wanted = 39 * 2 ** nbits
    if n >= wanted:
        return
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexPreTransform):  # OPQ
        inner = faiss.downcast_index(inner.index)
    pq = getattr(inner, "pq", None)
    if pq is not None:
        pq.cp.min_points_per_centroid = 1
        say_small_pool(n, 2 ** nbits, wanted)


@functools.cache
def say_small_pool(n: int, centroids: int, wanted: int) -> None:
    """The note of small_pool_note, once per process for each pool size and code width: a control that values
    21 planted sets of one study against the same pool says it once, not 21 times."""
    print(f"[gmv] PQ: {n} pool points for {centroids} centroids per sub-quantiser (FAISS suggests ≥ {wanted}); "
          "codes are coarse — recall@K against exact search is reported", file=sys.stderr)


PCA_CHECK_POINTS, PCA_CHECK_QUERIES = 50_000, 500


def pca_keeps_neighbours(pool: np.ndarray, queries: np.ndarray, k: int, cfg, rng: np.random.Generator) -> float:
    """How many of a query's exact top-k (full dimension) are among its top-`cfg.rerank` in `cfg.pca` PCA
    dimensions — the most a reduced scan re-ranked in full can find — on up to PCA_CHECK_QUERIES sampled
    queries against up to PCA_CHECK_POINTS sampled pool points. Embeddings with no low-dimensional structure
    (isotropic noise) score low: their scan is then made in full dimension."""
    import faiss

    rows = np.sort(rng.choice(len(pool), min(len(pool), PCA_CHECK_POINTS), replace=False))
    sub = np.ascontiguousarray(pool[rows], dtype=np.float32)
    q = np.ascontiguousarray(queries[np.sort(rng.choice(len(queries), min(len(queries), PCA_CHECK_QUERIES),
                                                        replace=False))], dtype=np.float32)
    pca = faiss.PCAMatrix(pool.shape[1], int(cfg.pca))
    pca.train(sub)
    kk = min(k, len(sub))
    _, exact = faiss.knn(q, sub, kk)
    _, found = faiss.knn(pca.apply(q), pca.apply(sub), min(max(cfg.rerank, kk), len(sub)))
    return recall_at_k(found, exact)


def run(pool: np.ndarray, queries: np.ndarray, k: int, cfg, factory: str, sq_out: np.ndarray,
        idx_out: np.ndarray, progress: bool | None = None) -> tuple[float, dict[str, float], dict[str, Any]]:
    """Search every query into (sq_out, idx_out); returns (recall@K, seconds, settings used at run time)."""
    seconds: dict[str, float] = {}
    used: dict[str, Any] = {}
    chunk = cfg.chunk_size or SEARCH_CHUNK
    t0 = time.perf_counter()
    if cfg.kind == "flat":
        search_into(lambda q, kk: knn_exact(pool, q, kk), queries, k, sq_out, idx_out, chunk, progress,
                    "exact search")
        seconds["search"] = time.perf_counter() - t0
        return 1.0, seconds, used
    rng = np.random.default_rng(cfg.seed)
    if getattr(cfg, "pca", None):
        ceiling = pca_keeps_neighbours(pool, queries, k, cfg, rng)
        if ceiling < min(1.0, cfg.target_recall + CALIBRATION_MARGIN):
            used.update(pca=None, pca_dropped=f"in {cfg.pca} PCA dimensions only {ceiling:.3f} of the top {k} are "
                                              f"among the top {cfg.rerank}: scanned in full dimension")
            factory = factory.split(",", 1)[1]
            cfg = replace(cfg, pca=None)
        else:
            used["pca_check"] = ceiling
        used["factory"] = factory
    index = build(pool, factory, cfg, rng, progress)
    if cfg.rerank:
        index.k_factor = cfg.rerank / k
    seconds["train_add"] = time.perf_counter() - t0
    m = len(queries)
    sample = rng.choice(m, min(cfg.recall_queries, m), replace=False) if cfg.recall_queries else None
    exact = None
    ivf = cfg.nlist is not None
    if ivf and cfg.nprobe is not None:
        set_nprobe(index, cfg.nprobe)
    elif ivf and sample is not None:  # tune on queries apart from the recall sample where there are enough
        t = time.perf_counter()
        rest = np.setdiff1d(np.arange(m), sample, assume_unique=True)
        calib = (rng.choice(rest, min(CALIBRATION_QUERIES, len(rest)), replace=False) if len(rest) >= 100
                 else sample)
        _, exact_calib = knn_exact(pool, queries[calib], k)
        aim = min(1.0, cfg.target_recall + CALIBRATION_MARGIN)
        nprobe, r, tried = tune_nprobe(index, queries[calib], exact_calib, k, cfg.nlist, aim)
        used.update(nprobe=nprobe, nprobe_rule=f"tuned: smallest nprobe with recall@{k} ≥ {aim:g} on "
                    f"{len(calib)} {'other ' if calib is not sample else ''}sampled queries",
                    nprobe_tried=[list(x) for x in tried])
        seconds["tune"] = time.perf_counter() - t
    t1 = time.perf_counter()
    search_into(index.search, queries, k, sq_out, idx_out, chunk, progress, f"search {factory}")
    seconds["search"] = time.perf_counter() - t1
    recall = float("nan")
    if sample is not None:
        t2 = time.perf_counter()
        _, exact = knn_exact(pool, queries[sample], k)
        recall = recall_at_k(idx_out[sample], exact)
        seconds["recall"] = time.perf_counter() - t2
        nprobe = used.get("nprobe")
        if recall < cfg.target_recall and cfg.auto_reason and nprobe is not None and nprobe < cfg.nlist:
            # auto promised the target: probe twice as many lists and search once more
            used["nprobe"] = min(cfg.nlist, 2 * nprobe)
            used["nprobe_rule"] += f"; raised to {used['nprobe']} after recall {recall:.3f} on the full search"
            set_nprobe(index, used["nprobe"])
            t3 = time.perf_counter()
            search_into(index.search, queries, k, sq_out, idx_out, chunk, progress, f"search {factory} (again)")
            seconds["search"] += time.perf_counter() - t3
            recall = recall_at_k(idx_out[sample], exact)
    return recall, seconds, used
