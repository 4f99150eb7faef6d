"""`valuate`: the whole method as one Python call, no Hydra needed.

    result = valuate(train, generated, embedder="resnet20_cifar", matcher="pq", k=10,
                     held_out=None, embedder_options={"weights": path})

`train`, `generated`, `held_out` are ImageSets, uint8 arrays N×H×W×C, or anything `load_images`
takes (a dataset name, an `.npz` path, an image folder); `.npz` files and folders stream (read in
batches, never whole: gmv.data.stream) and their embeddings go through the resumable chunked store
under `cache_dir` (gmv/valuation/embed.py). With `held_out` (the paper's RA2), the
generated points are matched against the pool train ∪ held_out and both halves are valued;
`result.split` says which half each pool point belongs to ("v1" = train, "v2" = held out).
Everything is checked before any embedding is computed.

The steps, for callers that run them one at a time (the study app's embed, match and value stages):

    inputs = prepare(train, generated, …)        # every check, before any work
    embedded = embed(inputs, cache_dir)          # pool, generated and reference embeddings (the store)
    tables = match_tables(inputs, embedded)      # the m×K distance and index tables
    val = value(inputs, embedded, tables)        # every method's values → Valuation

`engine="ray"` runs embed and match on a Ray cluster (gmv/valuation/ray_engine.py): `ray_address` (default:
RAY_ADDRESS, else a local instance), `shard_size` pool points per search task; pass the session's `ray`
module to `embed`/`match_tables` (`with ray_session(address) as ray:`) to run several steps on one cluster.

Embeddings computed elsewhere: `embedder="precomputed"` with `.npy` float32 N×D paths (or arrays) for every
set, or `EmbeddingSet`s from `gmv.valuation.precomputed.load_embeddings(path, ids=…)` (memory-mapped; ids
from a file, else the row number). `result.ids` holds the pool's ids when the inputs have ids (precomputed
embeddings, image folders: the relative file paths), and `values.csv` gains an `id` column.

The method is a `Valuator` (gmv/valuation/methods.py): by default the paper's GMValuator built from
`k`, `tau` (a number, or "auto": Eq. 5 as sharp as in the paper on any embedding) and `distance`.
`baselines` adds other methods valued on the same samples and embeddings (names such as "knn_count",
"gan_leaks", "gan_leaks_calibrated", Valuator objects or Hydra `_target_` mappings); `reference` is a
set of real images in neither half, used by calibrated GAN-Leaks. `result.methods` holds every
method's `MethodResult`; `result.values` etc. are the main method's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gmv.data.imageset import ImageSet
from gmv.data.stream import LazyImageSet, set_ids
from gmv.errors import GmvError
from gmv.valuation.cost import measured
from gmv.valuation.embed import embed_source
from gmv.valuation.embedders import Embedder, build_embedder
from gmv.valuation.matchers import MatchResult, MatcherConfig, match, resolve
from gmv.valuation.methods import (Evidence, GMValuator, KNNCount, MethodResult, Valuator, build_method,
                                   reverse_matcher, tables_k)
from gmv.valuation.inputs import (as_imageset, embedding_inputs, image_inputs, is_precomputed,  # noqa: F401
                                  matcher_config)
from gmv.valuation.precomputed import EmbeddingSet
from gmv.valuation.ray_cluster import check_engine, require_ray


@dataclass
class Valuation:
    values: np.ndarray  # float64 N_pool: φ_i (Eq. 6), sums to m
    n_matches: np.ndarray  # int64 N_pool: how many generated points have i among their K matches
    split: np.ndarray  # str N_pool: "v1" (train) or "v2" (held out)
    pool: ImageSet | LazyImageSet | EmbeddingSet  # train ∪ held_out, in that order (`images` None: no pixels)
    generated: ImageSet | LazyImageSet | EmbeddingSet
    pool_emb: np.ndarray  # float32 N_pool×D
    gen_emb: np.ndarray  # float32 m×D
    matches: MatchResult  # the m×K distance and index tables
    credit: np.ndarray  # float64 m×K: Eq. 5 per table entry
    k: int
    tau: float  # the τ used (resolved when "auto")
    embedder: dict[str, Any]  # the embedder's fingerprint
    seconds: dict[str, float] = field(default_factory=dict)
    reused: dict[str, bool] = field(default_factory=dict)  # which embeddings came from the cache
    methods: dict[str, MethodResult] = field(default_factory=dict)  # main method first, then baselines
    skipped: dict[str, str] = field(default_factory=dict)  # baselines that could not run, and why
    costs: dict[str, dict[str, float]] = field(default_factory=dict)  # per method: own seconds, peak extra MiB, shared s
    reference_emb: np.ndarray | None = None  # embeddings of the reference set, when given
    ids: np.ndarray | None = None  # the pool's ids (precomputed embeddings, image folders), else None
    generated_ids: np.ndarray | None = None

    @property
    def has_pixels(self) -> bool:
        return self.pool.images is not None and self.generated.images is not None

    @property
    def main(self) -> MethodResult:
        return next(iter(self.methods.values()))

    @property
    def n_generated(self) -> int:
        return len(self.generated)

    def side(self, name: str) -> np.ndarray:
        """Indices into the pool of one half ("v1" or "v2")."""
        return np.flatnonzero(self.split == name)


def _methods(method, baselines, k: int, tau, distance: str) -> list[Valuator]:
    main = GMValuator(k=k, tau=tau, distance=distance) if method is None else build_method(method)
    chosen = [main] + [build_method(b) for b in (baselines or [])]
    names = [m.name for m in chosen]
    if len(set(names)) != len(names):
        raise GmvError(f"valuation methods must have distinct names, got {names}")
    return chosen


@dataclass
class Inputs:
    """What `valuate` was given, checked: the methods, the sets (images or embeddings), the resolved matcher."""

    methods: list[Valuator]
    k_tables: int  # K of the match tables (the largest any method needs)
    distance: str
    pool: Any  # train ∪ held_out: ImageSet | LazyImageSet | EmbeddingSet
    generated: Any
    reference: Any  # or None
    split: np.ndarray
    embedder: Embedder | None  # None: precomputed embeddings
    matcher: MatcherConfig
    engine: str = "local"
    ray_address: str | None = None
    shard_size: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    rerank_embedder: Embedder | None = None  # perceptual re-rank (gmv/valuation/rerank.py); None = off
    rerank_candidates: int = 0  # R: candidates per generated image the matcher hands to the re-rank

    @property
    def dim(self) -> int:
        return self.pool.dim if self.embedder is None else self.embedder.dim(self.pool.shape)


@dataclass
class Embedded:
    pool: np.ndarray  # float32 N_pool×D
    generated: np.ndarray  # float32 m×D
    reference: np.ndarray | None
    reused: dict[str, bool]
    fingerprint: dict[str, Any]
    rerank_pool: np.ndarray | None = None  # the re-rank embedder's embeddings of the pool and of X̂
    rerank_generated: np.ndarray | None = None


def prepare(train, generated, embedder: str | Embedder | Mapping[str, Any] = "pixels",
            matcher: str | MatcherConfig | Mapping[str, Any] = "auto", k: int = 10, held_out=None,
            tau: float | str = "auto", distance: str = "l2", cache_dir: str | Path | None = None,
            embedder_options: Mapping[str, Any] | None = None, image_size: int | None = None,
            method: Any = None, baselines: Sequence[Any] | None = None, reference=None,
            engine: str = "local", ray_address: str | None = None, shard_size: int | None = None,
            rerank_embedder: str | Embedder | Mapping[str, Any] | None = None, rerank_candidates: int = 50) -> Inputs:
    """Every check `valuate` makes, before any embedding is computed (see the module docstring)."""
    t0 = time.perf_counter()
    check_engine(engine)
    if engine == "ray":
        require_ray()  # before any loading: say how to install it
    methods = _methods(method, baselines, k, tau, distance)  # every method checks its settings here
    distance = getattr(methods[0], "distance", distance)
    k_tables = tables_k(methods)
    if is_precomputed(embedder, [train, generated, held_out, reference]):
        if engine == "ray":
            raise GmvError("engine=ray embeds images on Ray workers; with precomputed embeddings use engine=local")
        pool, gen_set, ref_set, split = embedding_inputs(train, generated, held_out, reference)
        emb, dim = None, pool.dim
    else:
        pool, gen_set, ref_set, split = image_inputs(train, generated, held_out, reference, image_size, cache_dir)
        emb = build_embedder(embedder, **dict(embedder_options or {}))
        dim = emb.dim(pool.shape)
    second, r = None, 0
    if rerank_embedder is not None:
        if emb is None or engine == "ray":
            raise GmvError("a re-rank embedder needs images and the local engine (not precomputed embeddings, "
                           "not engine=ray)")
        if isinstance(rerank_candidates, bool) or not isinstance(rerank_candidates, int) or rerank_candidates < k_tables:
            raise GmvError(f"rerank candidates must be an integer ≥ K = {k_tables}, got {rerank_candidates!r}")
        second, r = build_embedder(rerank_embedder), min(int(rerank_candidates), len(pool))
        second.dim(pool.shape)  # an embedder that cannot take these images says so now
    mcfg = resolve(matcher_config(matcher), len(pool), dim, max(k_tables, r), n_queries=len(gen_set))
    inputs = Inputs(methods, k_tables, distance, pool, gen_set, ref_set, split, emb, mcfg, engine, ray_address,
                    shard_size, rerank_embedder=second, rerank_candidates=r)
    inputs.seconds["load_and_check"] = time.perf_counter() - t0
    return inputs


def embed(inputs: Inputs, cache_dir: str | Path | None = None, ray=None) -> Embedded:
    """The pool's, the generated set's and the reference set's embeddings (through the store when
    `cache_dir` is given). Precomputed embeddings are passed through; `ray`: embed on that Ray session."""
    t0 = time.perf_counter()
    if inputs.embedder is not None and inputs.embedder.needs_fit and not inputs.embedder.fitted:
        inputs.embedder.fit(inputs.pool)  # on the pool (both halves alike), before anything is embedded
    if inputs.embedder is None:
        ref = None if inputs.reference is None else inputs.reference.vectors
        out = Embedded(inputs.pool.vectors, inputs.generated.vectors, ref, {"precomputed": True},
                       {"name": "precomputed"})
    elif inputs.engine == "ray":
        from gmv.valuation.ray_engine import embed_sets

        sets = {"pool": inputs.pool, "generated": inputs.generated, "reference": inputs.reference}
        feats, reused = _on_ray(ray, inputs, lambda r: embed_sets(r, inputs.embedder, sets, cache_dir))
        out = Embedded(feats["pool"], feats["generated"], feats.get("reference"),
                       {f"{name}_embedding": v for name, v in reused.items()}, inputs.embedder.fingerprint())
    else:
        emb = inputs.embedder
        pool, reused_pool = embed_source(emb, inputs.pool, cache_dir, desc="embed training")
        gen, reused_gen = embed_source(emb, inputs.generated, cache_dir, desc="embed generated")
        reused = {"pool_embedding": reused_pool, "generated_embedding": reused_gen}
        ref = None
        if inputs.reference is not None:
            ref, reused["reference_embedding"] = embed_source(emb, inputs.reference, cache_dir, desc="embed reference")
        out = Embedded(pool, gen, ref, reused, emb.fingerprint())
        second = inputs.rerank_embedder
        if second is not None:
            if second.needs_fit and not second.fitted:
                second.fit(inputs.pool)
            out.rerank_pool, reused["rerank_pool_embedding"] = embed_source(second, inputs.pool, cache_dir,
                                                                            desc="embed training (re-rank)")
            out.rerank_generated, reused["rerank_generated_embedding"] = embed_source(
                second, inputs.generated, cache_dir, desc="embed generated (re-rank)")
    inputs.seconds["embed"] = time.perf_counter() - t0
    return out


def _on_ray(ray, inputs: Inputs, work):
    """`work(ray)` on the given Ray session, or on one opened (and closed) for it."""
    if ray is not None:
        return work(ray)
    from gmv.valuation.ray_cluster import ray_session

    with ray_session(inputs.ray_address) as session:
        return work(session)


def match_tables(inputs: Inputs, embedded: Embedded, ray=None) -> MatchResult:
    """The paper's m×K tables: each generated point's K nearest pool points (on Ray: shard by shard, merged)."""
    t0 = time.perf_counter()
    if inputs.engine == "ray":
        from gmv.valuation.ray_engine import search_on_ray

        result = _on_ray(ray, inputs, lambda r: search_on_ray(r, embedded.pool, embedded.generated, inputs.k_tables,
                                                              inputs.matcher, inputs.distance, inputs.shard_size))
    elif inputs.rerank_embedder is not None:
        from gmv.valuation.rerank import rerank

        candidates = match(embedded.pool, embedded.generated, inputs.rerank_candidates, inputs.matcher,
                           distance=inputs.distance)
        result = rerank(candidates, embedded.rerank_pool, embedded.rerank_generated, inputs.k_tables,
                        inputs.distance, inputs.matcher.recall_queries, inputs.matcher.seed,
                        inputs.rerank_embedder.fingerprint().get("name", "second embedding"))
    else:
        result = match(embedded.pool, embedded.generated, inputs.k_tables, inputs.matcher, distance=inputs.distance)
    inputs.seconds["match"] = time.perf_counter() - t0
    return result


def value(inputs: Inputs, embedded: Embedded, result: MatchResult) -> Valuation:
    """Every method's values from the same embeddings and tables (Eq. 5–6 for the main method)."""
    t0 = time.perf_counter()
    methods, main = inputs.methods, inputs.methods[0]
    evidence = Evidence(embedded.pool, embedded.generated, inputs.split, result, embedded.reference,
                        reverse_matcher(inputs.matcher, int(embedded.pool.shape[1])))
    results: dict[str, MethodResult] = {}
    skipped: dict[str, str] = {}
    costs: dict[str, dict[str, float]] = {}
    for m in methods:
        if m.needs_reference and embedded.reference is None and m is not main:
            skipped[m.name] = "no reference set of real images outside the split"
            continue
        if getattr(m, "needs_model", False) and not m.bound and m is not main:
            skipped[m.name] = "needs the trained generator (a gmv study binds it; gmv-value has only images)"
            continue
        with measured() as cost:
            results[m.name] = m.value(evidence)
        # what it reads besides: the embeddings and match tables (not a method that works from the generator)
        shared = 0.0 if getattr(m, "needs_model", False) else inputs.seconds["embed"] + inputs.seconds["match"]
        costs[m.name] = {**cost.as_dict(), "shared_seconds": round(shared, 3)}
    first = results[main.name]
    k_main = int(first.extras.get("k", inputs.k_tables))
    credit = first.arrays.get("credit", np.ones((len(inputs.generated), k_main)) / k_main)
    n_matches = first.arrays.get("n_matches")
    if n_matches is None:  # a main method without match counts: the K-NN count over its K
        n_matches = KNNCount(k_main).value(evidence).values.astype(np.int64)
    inputs.seconds["value"] = time.perf_counter() - t0
    return Valuation(first.values, n_matches, inputs.split, inputs.pool, inputs.generated, embedded.pool,
                     embedded.generated, result, credit, k_main, float(first.extras.get("tau", float("nan"))),
                     embedded.fingerprint, dict(inputs.seconds), embedded.reused, results, skipped, costs,
                     embedded.reference, set_ids(inputs.pool), set_ids(inputs.generated))


def valuate(train, generated, embedder: str | Embedder | Mapping[str, Any] = "pixels",
            matcher: str | MatcherConfig | Mapping[str, Any] = "auto", k: int = 10, held_out=None,
            tau: float | str = "auto", distance: str = "l2", cache_dir: str | Path | None = None,
            embedder_options: Mapping[str, Any] | None = None, image_size: int | None = None,
            method: Any = None, baselines: Sequence[Any] | None = None, reference=None,
            engine: str = "local", ray_address: str | None = None, shard_size: int | None = None,
            rerank_embedder: str | Embedder | Mapping[str, Any] | None = None, rerank_candidates: int = 50) -> Valuation:
    """Value every training (and held-out) image by the generated images that match it: prepare → embed →
    match_tables → value (on one Ray session when engine="ray"). `rerank_embedder`: re-rank the matcher's
    `rerank_candidates` per generated image by this embedder's exact distance (gmv/valuation/rerank.py)."""
    inputs = prepare(train, generated, embedder, matcher, k, held_out, tau, distance, cache_dir, embedder_options,
                     image_size, method, baselines, reference, engine, ray_address, shard_size, rerank_embedder,
                     rerank_candidates)
    if engine != "ray":
        embedded = embed(inputs, cache_dir)
        return value(inputs, embedded, match_tables(inputs, embedded))

    from gmv.valuation.ray_cluster import ray_session

    t0 = time.perf_counter()
    with ray_session(ray_address) as ray:
        inputs.seconds["ray_start"] = time.perf_counter() - t0
        embedded = embed(inputs, cache_dir, ray=ray)
        result = match_tables(inputs, embedded, ray=ray)
    return value(inputs, embedded, result)
