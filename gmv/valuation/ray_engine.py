"""Valuation beyond one machine: embed and match on a Ray cluster (`valuate(..., engine="ray")`).

What runs where:
- **embedding**: Ray Data reads the images in blocks (one Arrow table per block, columns `id` and
  `image`) and embeds them with an actor pool (`map_batches` with a callable class and an
  `ActorPoolStrategy`): one actor per GPU when the cluster has GPUs, else one per CPU slot. Every
  actor holds one copy of gmv's own `Embedder` and calls it on whole blocks; blocks start at
  multiples of the embedder's batch size within each image set, so the batches are those of a
  single-process run. The embedded blocks stay in Ray's object store (no shared file system is
  needed between nodes); the driver collects them by `id` — it needs the full matrices anyway
  (GAN-Leaks, the report and the embedding cache read them) — and writes gmv's ordinary embedding
  cache, with the single-process run's keys, so either engine reuses the other's embeddings.
- **matching**: the pool is cut into contiguous shards of `shard_size` points, each put once in
  the object store; one Ray task per shard searches every generated point against it with gmv's
  own `match()` (exact `flat` by default; an approximate matcher is built per shard), FAISS on one
  thread per task. The driver merges each generated point's global top-K exactly (`merge_topk`).
- **values**: on the driver, from the merged tables, with gmv's own Eq. 5–6 and method objects —
  every method (GMValuator, KNNCount, GAN-Leaks …) runs unchanged on the merged evidence.

The exact-merge guarantee: a point of the global top-K is in the top-K of its own shard, so the
merge of the per-shard top-K tables, ordered by (distance, global pool index), *is* the global
top-K. FAISS's exact search orders its results the same way (its heaps compare distance, then id),
and a pool point's distance to a query does not depend on which other points share its index, so
with `flat` the tables equal a single-process run's, index for index. Exact ties (equal distances,
e.g. duplicate pool images) go to the smaller pool index, in both engines. With an approximate
matcher each shard trains its own quantiser, so the tables differ from a single-process PQ run;
recall@K is measured against the merged exact top-K on the sampled queries, as `match()` does.
"""

from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gmv.errors import GmvError
from gmv.valuation.matchers import MatcherConfig, MatchResult, factory_string, recall_at_k, resolve
from gmv.valuation.ray_cluster import cluster_slots, user_error

# ---------------------------------------------------------------- embedding ---------------------------


class EmbedBlocks:
    """The Ray Data actor: one copy of gmv's embedder, called on whole blocks of images."""

    def __init__(self, embedder):
        import torch

        self.embedder = embedder
        if torch.cuda.is_available() and hasattr(embedder, "to"):  # a GPU actor runs its batches on its GPU
            embedder.to("cuda")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = np.ascontiguousarray(batch["image"], dtype=np.uint8)
        feats = self.embedder(images)  # checks finiteness itself
        return {"id": batch["id"], "embedding": feats}


def _blocks(sets: Mapping[str, np.ndarray], rows: int) -> tuple[list, dict[str, tuple[int, int]]]:
    """Arrow tables of ≤ `rows` images (`rows` a multiple of the batch size), ids global over `sets`."""
    import pyarrow as pa
    from ray.data.extensions import ArrowTensorArray

    tables, spans, start = [], {}, 0
    for name, images in sets.items():
        spans[name] = (start, start + len(images))
        for lo in range(0, len(images), rows):
            part = images[lo:lo + rows]
            tables.append(pa.table({"id": np.arange(start + lo, start + lo + len(part), dtype=np.int64),
                                    "image": ArrowTensorArray.from_numpy(np.ascontiguousarray(part))}))
        start += len(images)
    return tables, spans


def embed_on_ray(ray, embedder, sets: Mapping[str, np.ndarray], progress: bool = True) -> dict[str, np.ndarray]:
    """Embed every image set in one Ray Data pass: blocks → actor pool → embeddings by id."""
    import ray.data
    from gmv.console import progress_bar

    total = sum(len(x) for x in sets.values())
    if total == 0:
        return {name: np.zeros((0, 0), np.float32) for name in sets}
    n_gpus, n_cpus = cluster_slots(ray)
    actors = n_gpus or n_cpus
    bs = max(1, int(getattr(embedder, "batch_size", 256)))
    rows = bs * max(1, math.ceil(total / (4 * actors * bs)))  # ≈ 4 blocks per actor, whole batches
    tables, spans = _blocks(sets, rows)
    worker_copy = copy.copy(embedder)
    worker_copy.progress = False
    n_actors = min(actors, len(tables))
    with warnings.catch_warnings():  # Ray ≥ 2.60 asks for max_restarts by another name; older Rays know only this one
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        ds = ray.data.from_arrow(tables).map_batches(
            EmbedBlocks, fn_constructor_args=(worker_copy,), batch_size=None, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=n_actors), num_gpus=1 if n_gpus else 0, num_cpus=1,
            max_restarts=0)  # a failed actor fails the run (and Ray stays quiet about restarting it)
    feats = None
    bar = progress_bar(total=total, desc=f"embed ({embedder.name}, {n_actors} Ray actors)", unit="img", disable=not progress,
               leave=False)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            if feats is None:
                feats = np.empty((total, batch["embedding"].shape[1]), np.float32)
            feats[batch["id"]] = batch["embedding"]
            bar.update(len(batch["id"]))
    except Exception as e:  # noqa: BLE001 - a GmvError inside an actor is the user's; anything else is Ray's
        raise (user_error(e) or e) from None
    finally:
        bar.close()
    return {name: feats[lo:hi] for name, (lo, hi) in spans.items()}


def embed_sets(ray, embedder, sets: Mapping[str, Any], cache_dir: str | Path | None):
    """(embeddings by name, reused by name) of image sets (arrays, ImageSets or streamed sets): those already
    in gmv's embedding store are read from it — under the keys a local run uses for the same sources — the
    rest read on the driver, embedded on Ray in one pass and written to the store."""
    from gmv.data.pixels import as_pixels
    from gmv.valuation.embed import store_for

    out, reused, todo, stores = {}, {}, {}, {}
    for name, images in sets.items():
        if images is None:
            continue
        if cache_dir is not None:
            stores[name] = store_for(embedder, images, cache_dir)
            feats = stores[name].open_complete()
            if feats is not None:
                out[name], reused[name] = feats, True
                continue
        pixels = as_pixels(images)
        todo[name] = pixels.read_range(0, len(pixels))  # Ray ships arrays to its workers
    for name, feats in embed_on_ray(ray, embedder, todo).items():
        out[name], reused[name] = feats, False
        if name in stores:
            out[name] = _store(stores[name], feats)
    return out, reused


def _store(store, feats: np.ndarray) -> np.ndarray:
    """Write embeddings computed on Ray into the store, chunk by chunk as a local run would."""
    store.set_dim(int(feats.shape[1]))
    store.begin()
    for i in range(store.n_chunks):
        lo, hi = store.chunk_rows(i)
        store.write_chunk(i, np.ascontiguousarray(feats[lo:hi], np.float32))
    return store.finish()


# ---------------------------------------------------------------- matching ----------------------------


def merge_topk(per_shard_distances, per_shard_indices, offsets, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's global top-k from per-shard top-k tables, exactly.

    `per_shard_distances[s]`, `per_shard_indices[s]`: m×k_s tables of shard s (indices local to the
    shard, −1 = no match); `offsets[s]`: the global pool index of the shard's first point. Returns
    (m×k distances, m×k global indices), ordered by (distance, global index): on equal distances the
    smaller pool index comes first, as in FAISS's exact search. Missing entries (−1) sort last and
    stay −1 with distance +inf; fewer than k candidates in all are padded so.
    """
    if not (len(per_shard_distances) == len(per_shard_indices) == len(offsets)) or not offsets:
        raise GmvError("merge_topk needs one distance table, index table and offset per shard")
    m = np.asarray(per_shard_distances[0]).shape[0]
    d_parts, i_parts = [], []
    for d, i, off in zip(per_shard_distances, per_shard_indices, offsets):
        d, i = np.asarray(d), np.asarray(i, dtype=np.int64)
        if d.shape != i.shape or d.ndim != 2 or d.shape[0] != m:
            raise GmvError(f"shard tables must all be m×k_s with m = {m}, got {d.shape} and {i.shape}")
        missing = i < 0
        d_parts.append(np.where(missing, np.inf, d))
        i_parts.append(np.where(missing, -1, i + int(off)))
    dist, idx = np.concatenate(d_parts, axis=1), np.concatenate(i_parts, axis=1)
    if dist.shape[1] < k:
        pad = k - dist.shape[1]
        dist = np.hstack([dist, np.full((m, pad), np.inf, dist.dtype)])
        idx = np.hstack([idx, np.full((m, pad), -1, np.int64)])
    order = np.lexsort((np.where(idx < 0, np.iinfo(np.int64).max, idx), dist), axis=1)[:, :k]
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)


def shard_offsets(n: int, shard_size: int) -> list[int]:
    return list(range(0, n, shard_size))


def plan_shards(cfg: MatcherConfig, n: int, d: int, k: int, shard_size: int | None,
                n_slots: int | None = None) -> tuple[int, list[MatcherConfig]]:
    """(shard size, one resolved matcher config per shard); every setting checked before any work.
    Unset `shard_size`: one shard per CPU slot (`n_slots`), at least 1,024 points."""
    if shard_size is None:
        shard_size = max(min(n, 1024), math.ceil(n / max(1, n_slots or 1)))
    if isinstance(shard_size, bool) or not isinstance(shard_size, (int, np.integer)) or shard_size < 1:
        raise GmvError(f"ray shard_size must be an integer ≥ 1, got {shard_size!r}")
    shard_size = int(min(shard_size, n))
    cfgs = []
    for lo in shard_offsets(n, shard_size):
        size = min(shard_size, n - lo)
        try:
            cfgs.append(resolve(replace(cfg, recall_queries=0), size, d, min(k, size)))
        except GmvError as e:
            raise GmvError(f"pool shard of {size} points (shard_size {shard_size}, pool {n}): {e}; "
                           "choose a larger shard_size or a pool size that leaves no small last shard") from None
    return shard_size, cfgs


def _search_shard(shard: np.ndarray, queries: np.ndarray, k: int, cfg: MatcherConfig, recall_rows):
    """One Ray task: gmv's match() of all queries against one pool shard (squared L2, as FAISS gives)."""
    import faiss

    from gmv.valuation.matchers import exact_search, match

    faiss.omp_set_num_threads(1)  # one CPU per task; and FAISS's threaded split of a small pool rounds differently
    t0 = time.perf_counter()
    res = match(shard, queries, k, cfg, distance="sqeuclidean")
    exact = None
    if recall_rows is not None:
        exact = exact_search(np.ascontiguousarray(shard, np.float32),
                             np.ascontiguousarray(queries[recall_rows], np.float32), k)
    return res.distances, res.indices, exact, res.factory, time.perf_counter() - t0


def search_on_ray(ray, pool: np.ndarray, queries: np.ndarray, k: int, cfg: MatcherConfig, distance: str,
                  shard_size: int | None = None, progress: bool = True) -> MatchResult:
    """The m×K tables of `queries` against `pool`, searched shard by shard on Ray workers and merged."""
    from gmv.console import progress_bar

    pool = np.ascontiguousarray(pool, np.float32)
    queries = np.ascontiguousarray(queries, np.float32)
    n, d = pool.shape
    n_gpus, n_cpus = cluster_slots(ray)
    shard_size, cfgs = plan_shards(cfg, n, d, k, shard_size, n_cpus)
    offsets = shard_offsets(n, shard_size)
    print(f"[gmv] Ray: {n_cpus} CPU and {n_gpus} GPU slots; pool of {n} in {len(offsets)} search shards of "
          f"≤ {shard_size}", file=sys.stderr)
    recall_rows = None
    if cfg.kind != "flat" and cfg.recall_queries:
        rng = np.random.default_rng(cfg.seed)
        recall_rows = np.sort(rng.choice(len(queries), min(cfg.recall_queries, len(queries)), replace=False))
    t0 = time.perf_counter()
    task = ray.remote(num_cpus=1, max_retries=0)(_search_shard)
    q_ref = ray.put(queries)
    refs = [task.remote(ray.put(pool[lo:lo + shard_size]), q_ref, min(k, len(pool[lo:lo + shard_size])), c,
                        recall_rows) for lo, c in zip(offsets, cfgs)]
    try:
        pending = list(refs)
        with progress_bar(total=len(refs), desc="match (ray shards)", unit="shard", disable=not progress, leave=False) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done)
                bar.update(len(done))
        parts = ray.get(refs)
    except Exception as e:  # noqa: BLE001
        raise (user_error(e) or e) from None
    sq, idx = merge_topk([p[0] for p in parts], [p[1] for p in parts], offsets, k)
    seconds = {"search": time.perf_counter() - t0, "shard_max": max(p[4] for p in parts)}
    recall = 1.0
    if recall_rows is not None:
        _, exact_idx = merge_topk([p[2][0] for p in parts], [p[2][1] for p in parts], offsets, k)
        recall = recall_at_k(idx[recall_rows], exact_idx)
    missing = idx < 0
    sq = np.where(missing, np.inf, np.maximum(sq, 0.0)).astype(np.float32)
    dist = sq if distance == "sqeuclidean" else np.sqrt(sq)
    settings = asdict(cfgs[0])
    settings.update(recall_queries=cfg.recall_queries, distance=distance, k=k, n_pool=n, dim=d,
                    n_missing=int(missing.sum()), engine="ray", n_shards=len(offsets), shard_size=shard_size,
                    shard_factories=sorted({p[3] for p in parts}))
    return MatchResult(dist, idx, recall, settings, factory_string(cfgs[0]), seconds)
