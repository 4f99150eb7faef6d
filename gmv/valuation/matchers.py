"""Matchers: for every generated embedding, its K nearest training embeddings, searched with FAISS.

Kinds (FAISS index_factory strings):
- `auto`    picks one of the below from N, D, K, the number of queries and `memory_gb` so that
            recall@K reaches `target_recall`, timing a small probe of the data first (exact search is
            chosen only where its measured cost is below the IVF's; gmv/valuation/auto_index.py says how);
            small jobs get `flat` without a probe.
- `flat`    exact search (`faiss.knn` on the pool array: no copy of it).
- `pq`      product quantisation, `PQ{m}x{nbits}np` — the paper's choice.
- `ivfpq`   inverted file + PQ on residuals, `IVF{nlist},PQ{m}x{nbits}np`, searched with `nprobe` lists.
- `opq`     PQ after a learned rotation, `OPQ{m},PQ{m}x{nbits}np`.
- `ivfflat` inverted file over the raw vectors, `IVF{nlist},Flat`: exact distances, recall set by `nprobe`.
- `ivfsq8`  inverted file + 8-bit scalar quantiser, `IVF{nlist},SQ8`: D bytes per vector.
Any kind but `flat`/`ivfflat` can re-rank exactly: `rerank = R ≥ K` fetches R candidates and orders them
by true distance (FAISS `IndexRefineFlat`, which keeps an exact copy of the pool).

Settings the user leaves unset (None) adapt to the data (N points, dimension D); settings given
explicitly are validated and never changed. An unset `nprobe` of `ivfflat`/`ivfsq8` (and of auto's
IVF choices) is tuned at match time: the smallest nprobe whose recall@K on sampled queries reaches
`target_recall` + 0.01. Every run measures recall@K against exact search on a sample of queries, because
bare PQ can lose half the true neighbours — users must see that number, and a warning line when it
falls below `target_recall`.

Large pools: quantisers train on a sample (`train_size`), the pool is added and the queries searched in
chunks (`chunk_size`) with progress bars, and `match(..., out_dir=DIR)` writes the tables as
memory-mappable `.npy` files (`MatchResult.save` / `MatchResult.load(DIR)` likewise).

Output: the paper's m×K distance table and m×K index table (row j = generated point j, sorted by
distance). FAISS L2 indexes return *squared* L2 distances; `distance="l2"` takes the square root.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, make_dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gmv.errors import GmvError
from gmv.valuation import index_search
from gmv.valuation.auto_index import ExactRate, choose, default_nlist, default_train_size
from gmv.valuation.index_search import faiss_threads, recall_at_k, torch_threads_paused  # noqa: F401  (public here)

KINDS = ("auto", "flat", "pq", "ivfpq", "opq", "ivfflat", "ivfsq8")
IVF_KINDS = ("ivfpq", "ivfflat", "ivfsq8")
PQ_KINDS = ("pq", "ivfpq", "opq")
DISTANCES = ("l2", "sqeuclidean")


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class MatcherConfig:
    """The matcher's settings — declared here once: Hydra's `matcher=<kind>` options (`register_configs`)
    and gmv-value's matching options (gmv/cli/value.py) are made from these fields and their help."""

    kind: str = _setting("auto", "FAISS matcher: auto (exact search for small or cheap jobs, IVF for large "
                                 "pools), flat, pq, ivfpq, opq, ivfflat, ivfsq8")
    m: int | None = _setting(None, "PQ sub-quantisers; must divide the dimension (default: adapts to it)")
    nbits: int | None = _setting(None, "bits per PQ code (default: 8, fewer for small pools)")
    nlist: int | None = _setting(None, "IVF lists (ivfpq, ivfflat, ivfsq8)")
    nprobe: int | None = _setting(None, "IVF lists visited per query (default: ivfpq a fixed rule; ivfflat, "
                                        "ivfsq8, auto: tuned to target_recall)")
    rerank: int = _setting(0, "exact re-rank of R ≥ K candidates (0 = off; with auto, 0 lets it decide)")
    pca: int | None = _setting(None, "ivfsq8 with rerank: inverted file and codes on this many PCA dimensions")
    train_size: int | None = _setting(None, "points that train the quantisers (default: min(N, 100k), "
                                             "≥ 50 per IVF list)")
    recall_queries: int = _setting(1000, "queries checked against exact search (0 = skip)")
    seed: int = _setting(0, "seed of the quantisers' training and of the recall sample")
    memory_gb: float = _setting(8.0, "memory the index may use in GB (auto chooses within it)")
    target_recall: float = _setting(0.95, "recall@K wanted (auto, nprobe tuning; a warning below it)")
    chunk_size: int | None = _setting(None, "vectors per add / queries per search chunk (default 65,536 / 16,384)")
    threads: int | None = _setting(None, "FAISS threads (default: FAISS's own, all cores)")
    auto_reason: str = ""  # filled by resolve() when kind = auto: what it picked and why (not a setting)


SETTINGS = tuple(f.name for f in fields(MatcherConfig) if "help" in f.metadata)  # every user setting


def register_configs() -> None:
    """Hydra's `matcher=<kind>` options, one per kind, typed from MatcherConfig (seed: the study's)."""
    import typing

    from hydra.core.config_store import ConfigStore

    hints = typing.get_type_hints(MatcherConfig)
    for kind in KINDS:
        spec = [(name, hints[name], field(default={"kind": kind, "seed": "${seed}"}.get(
            name, MatcherConfig.__dataclass_fields__[name].default))) for name in SETTINGS]
        ConfigStore.instance().store(group="matcher", name=kind, node=make_dataclass(f"Matcher_{kind}", spec))


@dataclass
class MatchResult:
    distances: np.ndarray  # float32 m×K, ascending per row (distance kind as requested)
    indices: np.ndarray  # int64 m×K into the pool; −1 where the index returned fewer than K
    recall_at_k: float  # mean |approx top-K ∩ exact top-K| / K over sampled queries (1.0 for flat)
    settings: dict[str, Any]  # the resolved matcher settings actually used
    factory: str  # FAISS index_factory string
    seconds: dict[str, float] = field(default_factory=dict)  # train/add/search/recall wall times

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write distances.npy, indices.npy (memory-mappable) and match.json into `out_dir`, atomically."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("distances", "indices"):
            arr = getattr(self, name)
            if _is_file_of(arr, out / f"{name}.npy"):
                continue  # match(..., out_dir=) wrote it there already
            tmp = out / f".{name}.tmp.npy"
            np.save(tmp, arr)
            os.replace(tmp, out / f"{name}.npy")
        meta = {"recall_at_k": self.recall_at_k, "settings": self.settings, "factory": self.factory,
                "seconds": self.seconds}
        tmp = out / ".match.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
        os.replace(tmp, out / "match.json")
        return out

    @classmethod
    def load(cls, out_dir: str | os.PathLike, mmap_mode: str | None = "r") -> "MatchResult":
        """The tables written by `save` (memory-mapped read-only by default)."""
        out = Path(out_dir)
        missing = [f for f in ("distances.npy", "indices.npy", "match.json") if not (out / f).is_file()]
        if missing:
            raise GmvError(f"{out} holds no match tables (missing {', '.join(missing)}); write them with "
                           "MatchResult.save or match(..., out_dir=...)")
        meta = json.loads((out / "match.json").read_text())
        return cls(np.load(out / "distances.npy", mmap_mode=mmap_mode), np.load(out / "indices.npy", mmap_mode=mmap_mode),
                   float(meta["recall_at_k"]), meta["settings"], meta["factory"], meta.get("seconds", {}))


def _is_file_of(arr, path: Path) -> bool:
    name = getattr(arr, "filename", None)
    return name is not None and path.exists() and os.path.samefile(name, path)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _divisors(d: int) -> list[int]:
    return [i for i in range(1, d + 1) if d % i == 0]


def _check_common(cfg: MatcherConfig, n: int, d: int, k: int) -> None:
    """Checks that hold whatever the kind (explicit settings are validated even where auto drops them)."""
    if cfg.kind not in KINDS:
        raise GmvError(f"unknown matcher {cfg.kind!r}; choose one of {', '.join(KINDS)}")
    if k < 1:
        raise GmvError(f"k must be ≥ 1, got {k}")
    if k > n:
        raise GmvError(f"k = {k} is larger than the training pool ({n} images); choose k ≤ {n}")
    if cfg.recall_queries < 0:
        raise GmvError(f"recall_queries must be ≥ 0, got {cfg.recall_queries}")
    if not (isinstance(cfg.memory_gb, (int, float)) and math.isfinite(cfg.memory_gb) and cfg.memory_gb > 0):
        raise GmvError(f"memory_gb must be a number > 0 (GB the index may use), got {cfg.memory_gb!r}")
    if not (isinstance(cfg.target_recall, (int, float)) and 0 < cfg.target_recall <= 1):
        raise GmvError(f"target_recall must lie in (0, 1], got {cfg.target_recall!r}")
    for name in ("chunk_size", "threads", "train_size"):
        value = getattr(cfg, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise GmvError(f"{name} must be an integer ≥ 1 (or null), got {value!r}")
    if cfg.m is not None and (cfg.m < 1 or d % cfg.m):
        near = [x for x in _divisors(d) if x <= 4 * cfg.m][-4:]
        raise GmvError(f"PQ m = {cfg.m} does not divide the embedding dimension {d}; "
                       f"choose a divisor of {d} such as {', '.join(map(str, near))}")
    if cfg.nbits is not None:
        if not 1 <= cfg.nbits <= 16:
            raise GmvError(f"PQ nbits must be in 1..16, got {cfg.nbits}")
        if n < 2 ** cfg.nbits:
            raise GmvError(f"PQ nbits = {cfg.nbits} needs ≥ {2 ** cfg.nbits} training points, the pool has {n}; "
                           f"use nbits ≤ {int(math.log2(n))}")
    if cfg.nlist is not None and not 1 <= cfg.nlist <= n:
        raise GmvError(f"nlist must be in 1..{n} (the pool size), got {cfg.nlist}")
    if cfg.nprobe is not None and cfg.nlist is not None and not 1 <= cfg.nprobe <= cfg.nlist:
        raise GmvError(f"nprobe must be in 1..nlist ({cfg.nlist}), got {cfg.nprobe}")
    if cfg.nprobe is not None and cfg.nprobe < 1:
        raise GmvError(f"nprobe must be ≥ 1, got {cfg.nprobe}")
    if cfg.pca is not None:
        if isinstance(cfg.pca, bool) or not isinstance(cfg.pca, int) or not 1 <= cfg.pca < d:
            raise GmvError(f"pca must be an integer in 1..{d - 1} (fewer dimensions than the embedding's {d}), "
                           f"got {cfg.pca!r}")
        if cfg.kind not in ("auto", "ivfsq8") or (cfg.kind == "ivfsq8" and not cfg.rerank):
            raise GmvError("pca applies to ivfsq8 with rerank > 0 (the candidates found in the reduced space are "
                           f"re-ranked by their full distances), not to {cfg.kind}"
                           f"{' without rerank' if cfg.kind == 'ivfsq8' else ''}")
    if cfg.rerank:
        if cfg.rerank < k:
            raise GmvError(f"rerank R = {cfg.rerank} must be ≥ k = {k} (it re-ranks R candidates to keep K)")
        if cfg.rerank > n:
            raise GmvError(f"rerank R = {cfg.rerank} exceeds the pool size {n}")


def resolve(cfg: MatcherConfig, n: int, d: int, k: int, n_queries: int | None = None,
            probe: Callable[[], ExactRate] | None = None) -> MatcherConfig:
    """Validate explicit settings against (N, D, K) and fill the unset ones; `kind="auto"` becomes the
    kind it picks (with `auto_reason` saying why; `n_queries` = M, when known, enters that choice). A job
    whose choice needs a timed probe of the data (`probe`, gmv/valuation/auto_index.py) stays "auto" when
    none is given: `match` decides it. Raises GmvError."""
    _check_common(cfg, n, d, k)
    if cfg.kind == "auto":
        c = choose(n, d, k, n_queries, cfg.memory_gb, nlist=cfg.nlist, nprobe=cfg.nprobe, rerank=cfg.rerank, pca=cfg.pca,
                   m=cfg.m, nbits=cfg.nbits, train_size=cfg.train_size, probe=probe,
                   recall_queries=cfg.recall_queries)
        if c.kind == "auto":
            return cfg  # settings checked; the kind is chosen at match time by timing the data
        reset = {"m": None, "nbits": None, "nlist": None, "nprobe": None, "rerank": 0, "pca": None}
        dropped = [f"{name}={getattr(cfg, name)}" for name in reset
                   if getattr(cfg, name) not in (None, 0) and name not in c.settings]
        reason = c.reason + (f" ({', '.join(dropped)} not used by {c.kind})" if dropped else "")
        cfg = replace(cfg, **{**reset, **c.settings}, kind=c.kind, auto_reason=reason)
    if cfg.kind == "opq" and n < 256:
        raise GmvError(f"opq needs a pool of ≥ 256 points (FAISS learns its rotation with 256-centroid codebooks), "
                       f"this pool has {n}; use pq or flat")
    if cfg.kind in ("flat", "ivfflat"):
        if cfg.rerank:
            raise GmvError(f"rerank only applies to matchers with approximate distances (pq, ivfpq, opq, ivfsq8); "
                           f"{cfg.kind} is already exact")
        if cfg.kind == "flat":
            return cfg
    out: dict[str, Any] = {}
    if cfg.kind in PQ_KINDS:
        # PQ sub-quantisers: unset → the largest divisor of D ≤ min(64, D/2).
        if cfg.m is None:
            out["m"] = max(x for x in _divisors(d) if x <= max(1, min(64, d // 2)))
        # Bits per code: unset → 8 where there are ≥ 39·256 points to train on (FAISS's rule of thumb),
        # fewer for small pools.
        if cfg.nbits is None:
            out["nbits"] = int(min(8, max(1, min(int(math.log2(n)), max(4, int(math.log2(max(n, 1) / 39)))))))
    elif cfg.m is not None or cfg.nbits is not None:
        raise GmvError(f"m/nbits apply to the PQ matchers ({', '.join(PQ_KINDS)}), not {cfg.kind}")
    if cfg.kind in IVF_KINDS:
        nlist = cfg.nlist if cfg.nlist is not None else default_nlist(n)
        if cfg.nlist is None:
            out["nlist"] = nlist
        if cfg.nprobe is not None and cfg.nprobe > nlist:
            raise GmvError(f"nprobe must be in 1..nlist ({nlist}), got {cfg.nprobe}")
        tuned = cfg.kind != "ivfpq" or cfg.auto_reason  # explicit ivfpq keeps its fixed rule
        if cfg.nprobe is None and not (tuned and cfg.recall_queries):
            out["nprobe"] = max(1, min(nlist, nlist // 8 if nlist >= 64 else nlist // 2 or 1))
        if cfg.train_size is None and n > 100_000:
            out["train_size"] = default_train_size(n, nlist)
        elif cfg.train_size is not None and min(cfg.train_size, n) < nlist:
            raise GmvError(f"train_size = {cfg.train_size} is below nlist = {nlist}: k-means needs at least one "
                           f"training point per list (≥ 39 recommended); raise train_size or lower nlist")
    elif cfg.nlist is not None or cfg.nprobe is not None:
        raise GmvError(f"nlist/nprobe apply to the IVF matchers ({', '.join(IVF_KINDS)}) only, not {cfg.kind}")
    return replace(cfg, **out)


def factory_string(cfg: MatcherConfig) -> str:
    if cfg.kind == "flat":
        return "Flat"
    if cfg.kind == "ivfflat":
        return f"IVF{cfg.nlist},Flat"
    if cfg.kind == "ivfsq8":
        return f"{f'PCA{cfg.pca},' if cfg.pca else ''}IVF{cfg.nlist},SQ8"
    # "np": no polysemous training — we never use polysemous search, and it made training 20× slower.
    pq = f"PQ{cfg.m}x{cfg.nbits}np"
    return {"pq": pq, "ivfpq": f"IVF{cfg.nlist},{pq}", "opq": f"OPQ{cfg.m},{pq}"}[cfg.kind]


def exact_search(pool: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Bare FAISS exact search: (squared L2 distances, indices), each m×k (`faiss.knn`: the pool is not copied)."""
    with torch_threads_paused():
        return index_search.knn_exact(np.ascontiguousarray(pool, dtype=np.float32),
                                      np.ascontiguousarray(queries, dtype=np.float32), k)


def _tables(out_dir: Path | None, m: int, k: int):
    """The m×K output tables: in RAM, or memory-mapped .npy files (temporary names until complete)."""
    if out_dir is None:
        return np.empty((m, k), np.float32), np.empty((m, k), np.int64), None
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = {name: out_dir / f".{name}.tmp.npy" for name in ("distances", "indices")}
    sq = np.lib.format.open_memmap(tmp["distances"], mode="w+", dtype=np.float32, shape=(m, k))
    idx = np.lib.format.open_memmap(tmp["indices"], mode="w+", dtype=np.int64, shape=(m, k))
    return sq, idx, tmp


def match(pool: np.ndarray, queries: np.ndarray, k: int, cfg: MatcherConfig = MatcherConfig(),
          distance: str = "l2", *, out_dir: str | os.PathLike | None = None,
          progress: bool | None = None, announce: bool = True) -> MatchResult:
    """Top-K neighbours in `pool` (N×D) of every row of `queries` (m×D). Validates first.

    `out_dir`: write the tables there as distances.npy / indices.npy / match.json (memory-mapped, the
    result's arrays read from them). `progress`: None shows bars only for jobs of several chunks.
    `announce`: print auto's choice (False: only when the choice was timed, i.e. the job is not small)."""
    if distance not in DISTANCES:
        raise GmvError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if pool.ndim != 2 or queries.ndim != 2 or pool.shape[1] != queries.shape[1]:
        raise GmvError(f"pool {pool.shape} and queries {queries.shape} must be 2-D with the same dimension")
    n, d = pool.shape
    out = None if out_dir is None else Path(out_dir)
    with torch_threads_paused(), faiss_threads(cfg.threads):
        t0 = time.perf_counter()
        cfg = resolve(cfg, n, d, k, n_queries=len(queries), probe=lambda: index_search.probe(pool, queries, k))
        t_choose = time.perf_counter() - t0
        factory = factory_string(cfg)
        if cfg.auto_reason and (announce or "measured" in cfg.auto_reason):
            what = "matcher" if announce else f"reverse search ({n:,} × {len(queries):,}, K = {k})"
            print(f"[gmv] {what} auto → {cfg.kind} ({factory}{f' + re-rank {cfg.rerank}' if cfg.rerank else ''}): "
                  f"{cfg.auto_reason}", flush=True)
        sq, idx, tmp = _tables(out, len(queries), k)
        recall, seconds, used = index_search.run(pool, queries, k, cfg, factory, sq, idx, progress)
    if cfg.auto_reason:
        seconds["choose"] = t_choose
    for rows in index_search.chunks(len(queries), index_search.SEARCH_CHUNK):  # in place, chunk by chunk
        lo, hi = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
        block = sq[lo:hi]
        block[:] = np.where(idx[lo:hi] < 0, np.inf, np.maximum(block, 0.0))
        if distance == "l2":
            np.sqrt(block, out=block)
    factory = used.pop("factory", factory)  # a PCA the data do not support is dropped at run time
    settings = asdict(cfg)
    settings.update(used)
    settings.update(distance=distance, k=k, n_pool=n, dim=d, n_missing=int((idx < 0).sum()), n_queries=len(queries))
    if cfg.kind != "flat" and recall < cfg.target_recall:
        hint = ("raise nprobe or rerank" if cfg.kind in IVF_KINDS else "raise rerank") + ", or use matcher=flat / auto"
        print(f"[gmv] WARNING: recall@{k} = {recall:.3f} against exact search is below the target "
              f"{cfg.target_recall:g} ({factory}{' + re-rank' if cfg.rerank else ''}); {hint}", file=sys.stderr, flush=True)
    if tmp is not None:
        sq.flush()
        idx.flush()
        del sq, idx
        for name, path in tmp.items():
            os.replace(path, out / f"{name}.npy")
        sq, idx = np.load(out / "distances.npy", mmap_mode="r"), np.load(out / "indices.npy", mmap_mode="r")
    result = MatchResult(sq, idx, recall, settings, factory, seconds)
    if out is not None:
        result.save(out)
    return result
