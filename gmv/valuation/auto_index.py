"""`matcher=auto`: which FAISS index for N pool points, M queries, dimension D, K matches and a memory budget.

It measures rather than assumes. Exact search's pace on a CPU is not a fixed FLOP rate: it depends on the
BLAS, the thread count, the load of the machine and, at large K, on the per-query top-K selection as much as
on the GEMM (the old fixed-rate model of 2e11 FLOP/s was 9× off at 300k × 30k × 256, K = 50). So before
deciding, `auto` times three small searches of the job's own data (gmv/valuation/index_search.probe: 1,024
of the queries against 16,384 of the pool, after one untimed warm-up search): exact search at the job's K and
at K = 1 (seconds per (query, pool point) pair), and the IVF-SQ8 + re-rank scan it would otherwise run
(seconds per scanned code, on a 64-list index of those points). With the three measured rates it estimates:

* exact search: N·M pairs at the K rate;
* an inverted file of nlist lists trained on train_size = max(39·nlist, 10,000) points (FAISS's minimum of
  39 per list; nprobe is then tuned to the recall target, so coarser lists cost probes, not recall):
  k-means (IVF_KMEANS_ITERS passes of train_size × nlist), assigning the pool (N × nlist) and the coarse
  search (M × nlist) at the K = 1 rate; the scan of M × nprobe × N/nlist codes at the scan rate, with
  nprobe ≈ 0.055·nlist^0.735 (fitted to the tuned nprobe of results/bench/scale.md and the 300k cell of
  issue 21: 894 → 8, 1,788 → 12, 2,190 → 16, 4,000 → 24); and the recall checks against exact search
  ((500 + recall_queries) × N pairs, at most M × N) at the K rate. nlist is the cheapest of √N, 2√N, 4√N
  and 8√N by this estimate (an explicit nlist or train_size is kept).

Exact search is chosen only when its measured estimate is below the IVF estimate; the line auto prints says
what it measured and both estimates. Jobs so small that no choice matters (N ≤ 20,000, or N·M·D ≤ 1e11:
about a second of exact search) take exact search without a probe. Without the data (a study or gmv-value
checking its settings before embedding) a job that needs the probe stays `auto` until match time.

The IVF index, by the memory budget, in order:
1. `ivfsq8` with an exact re-rank of R = 2K candidates (FAISS IndexRefineFlat) when its N·(5D + 8)
   bytes fit the budget: the K distances kept are exact, recall is that of the inverted file, whose
   `nprobe` is tuned at match time until recall@K on sampled queries reaches the target.
2. `ivfsq8` without the re-rank when only N·(D + 8) bytes fit (distances carry SQ8's small error).
3. `ivfpq` with the largest PQ `m` that fits N·(m + 8) bytes — recall may then fall short of the
   target; the run measures it and says so.
Otherwise: an error, the budget holds no index for this pool.

`memory_gb` bounds what the matcher builds (index, training sample, quantiser); the pool array the
caller passes is the caller's. Settings given explicitly (nlist, nprobe, rerank, m, nbits) are kept when
the chosen index uses them. A user's explicit kind (flat, ivfsq8, …) always wins: no probe is run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from gmv.errors import GmvError
from gmv.valuation.index_search import CALIBRATION_QUERIES  # queries the nprobe tuning searches exactly

SMALL_POOL = 20_000  # exact search for any number of queries, no probe
TRIVIAL_WORK = 1e11  # N·M·D below which exact search takes about a second: no probe
IVF_KMEANS_ITERS = 10  # FAISS's k-means passes when an IVF quantiser trains (Level1Quantizer: cp.niter = 10)
MIN_POINTS_PER_LIST = 39  # FAISS's k-means minimum; auto trains on this many points per list
MIN_TRAIN = 10_000  # … and on at least this many
NLIST_FACTORS = (1, 2, 4, 8)  # auto's candidate nlist: these × √N
GIB = 2 ** 30


@dataclass(frozen=True)
class ExactRate:
    """What the probe measured on part of the job (`queries` × `points`, `threads` FAISS threads): seconds per
    (query, pool point) pair of exact search at the job's K and at K = 1, and seconds per code scanned by an
    IVF-SQ8 + exact re-rank search at the job's K."""

    seconds_per_pair: float  # exact search at the job's K
    seconds_per_pair_k1: float  # at K = 1 (what k-means assignment and the coarse search cost)
    seconds_per_code: float  # an inverted-file scan (SQ8 codes, re-rank of 2K) per code scanned
    queries: int
    points: int
    threads: int
    k: int

    def describe(self) -> str:
        at_k1 = f", {1.0 / self.seconds_per_pair_k1:.3g} at K = 1" if self.k != 1 else ""
        return (f"measured on {self.queries:,} queries × {self.points:,} pool points ({self.threads} "
                f"thread{'s' if self.threads != 1 else ''}): exact search {1.0 / self.seconds_per_pair:.3g} pairs/s "
                f"at K = {self.k}{at_k1}, IVF-SQ8 scan {1.0 / self.seconds_per_code:.3g} codes/s")


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


def exact_is_trivial(n: int, n_queries: int, d: int) -> bool:
    """N·M·D ≤ TRIVIAL_WORK: exact search of the job takes about a second, there is nothing to choose."""
    return float(n) * n_queries * d <= TRIVIAL_WORK


def expected_nprobe(nlist: int) -> float:
    """The nprobe the recall tuning is expected to reach (module docstring: fitted to the benchmarks)."""
    return max(4.0, 0.055 * nlist ** 0.735)


def auto_train_size(n: int, nlist: int) -> int:
    return int(min(n, max(MIN_POINTS_PER_LIST * nlist, MIN_TRAIN)))


def ivf_seconds(rate: ExactRate, n: int, n_queries: int, nlist: int, train_size: int,
                recall_queries: int = 1000, reduced: float = 1.0) -> float:
    """The estimated seconds of an IVF job of these shapes (module docstring): its nearest-centroid searches
    at the K = 1 rate, its list scans at the scan rate (both × `reduced`, the share of dimensions a PCA
    keeps), its recall checks at the K rate."""
    checked = min(n_queries, CALIBRATION_QUERIES + recall_queries)
    centroids = IVF_KMEANS_ITERS * float(train_size) * nlist + float(n) * nlist + float(n_queries) * nlist
    codes = float(n_queries) * min(nlist, expected_nprobe(nlist)) * n / nlist
    return (reduced * (rate.seconds_per_pair_k1 * centroids + rate.seconds_per_code * codes)
            + rate.seconds_per_pair * checked * float(n))


def choose(n: int, d: int, k: int, n_queries: int | None, memory_gb: float, *, nlist: int | None = None,
           nprobe: int | None = None, rerank: int = 0, m: int | None = None, nbits: int | None = None,
           train_size: int | None = None, probe: Callable[[], ExactRate] | None = None,
           recall_queries: int = 1000, pca: int | None = None) -> Choice:
    """The index `auto` uses for this job (see the module docstring). `n_queries` None: not known yet
    (assumed N, the conservative case). `probe`: times exact search on the job's data (called only when
    the choice needs it); without it a job that needs one is left as kind "auto" (decided at match time)."""
    if not (isinstance(memory_gb, (int, float)) and math.isfinite(memory_gb) and memory_gb > 0):
        raise GmvError(f"matcher.memory_gb must be a number > 0 (GB the index may use), got {memory_gb!r}")
    m_q = n if n_queries is None else n_queries
    work = float(n) * m_q * d
    if n <= SMALL_POOL or exact_is_trivial(n, m_q, d):
        why = f"pool of {n:,} ≤ {SMALL_POOL:,}" if n <= SMALL_POOL else f"N·M·D = {work:.1e} ≤ {TRIVIAL_WORK:.0e}"
        return Choice("flat", {}, f"exact search is cheap ({why}): recall 1, exact distances", 0)
    if probe is None:
        _ivf_choice(n, d, k, memory_gb, nlist=nlist, nprobe=nprobe, rerank=rerank, m=m, nbits=nbits,
                    train_size=train_size)  # the budget is checked now, the rest when the data are there
        return Choice("auto", {}, "", 0)  # decided at match time, when the data are there to time
    rate = probe()
    exact_s = rate.seconds_per_pair * float(n) * m_q
    options = []
    for nl in ([nlist] if nlist else sorted({max(1, min(int(f * math.sqrt(n)), n // MIN_POINTS_PER_LIST))
                                             for f in NLIST_FACTORS})):
        ts = train_size or auto_train_size(n, nl)
        options.append((ivf_seconds(rate, n, m_q, nl, ts, recall_queries), nl, ts))
    ivf_s, nl, ts = min(options)
    ivf = _ivf_choice(n, d, k, memory_gb, nlist=nl, nprobe=nprobe, rerank=rerank, m=m, nbits=nbits, train_size=ts,
                      pca=pca)
    if ivf.settings.get("pca"):
        ivf_s = ivf_seconds(rate, n, m_q, nl, ts, recall_queries, reduced=pca / d)
    measured = (f"{rate.describe()} → exact search of {n:,} × {m_q:,} ≈ {exact_s:.0f} s, {ivf.reason} on "
                f"{ts:,} training points ≈ {ivf_s:.0f} s")
    if exact_s <= ivf_s:
        return Choice("flat", {}, f"{measured} → exact search: recall 1, exact distances", 0)
    return Choice(ivf.kind, ivf.settings, f"{measured} → {ivf.kind}; nprobe tuned to the recall target",
                  ivf.index_bytes)


def _ivf_choice(n: int, d: int, k: int, memory_gb: float, *, nlist: int | None, nprobe: int | None, rerank: int,
                m: int | None, nbits: int | None, train_size: int | None, pca: int | None = None) -> Choice:
    """The inverted-file index that fits the memory budget (module docstring, 1–3); its reason names it. A
    given `pca` is kept where the index re-ranks (1: IVF-SQ8 + re-rank)."""
    budget = memory_gb * GIB
    nl = nlist or default_nlist(n)
    ts = train_size or default_train_size(n, nl)
    base = {"nlist": nl, "nprobe": nprobe, "train_size": ts}
    r = rerank or 2 * k
    with_rerank = index_bytes("ivfsq8", n, d, nlist=nl, rerank=r, train_size=ts)
    if with_rerank <= budget:
        reduced = {"pca": pca} if pca else {}
        return Choice("ivfsq8", {**base, "rerank": min(r, n), **reduced},
                      f"{f'PCA{pca},' if pca else ''}IVF{nl},SQ8 + exact re-rank of {r} (fits {memory_gb:g} GB: "
                      f"{_gb(with_rerank)})", with_rerank)
    bare = index_bytes("ivfsq8", n, d, nlist=nl, train_size=ts)
    dropped = f"; no re-rank: its exact copy of the pool needs {_gb(with_rerank)}"
    if bare <= budget:
        return Choice("ivfsq8", {**base, "rerank": 0},
                      f"IVF{nl},SQ8 (fits {memory_gb:g} GB: {_gb(bare)}{dropped}; distances carry SQ8 error)", bare)
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
                  f"IVF{nl},PQ{pq_m} (only it fits {memory_gb:g} GB: {_gb(used)}{dropped}; recall may fall "
                  "short of the target — raise matcher.memory_gb for IVF-SQ8)", used)
