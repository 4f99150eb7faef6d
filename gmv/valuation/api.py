"""`valuate`: the whole method as one Python call, no Hydra needed.

    result = valuate(train, generated, embedder="resnet20_cifar", matcher="pq", k=10,
                     held_out=None, embedder_options={"weights": path})

`train`, `generated`, `held_out` are ImageSets, uint8 arrays N×H×W×C, or anything `load_images`
takes (a dataset name, an `.npz` path, an image folder). With `held_out` (the paper's RA2), the
generated points are matched against the pool train ∪ held_out and both halves are valued;
`result.split` says which half each pool point belongs to ("v1" = train, "v2" = held out).
Everything is checked before any embedding is computed.

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

from gmv.data.imageset import ImageSet, concat
from gmv.data.sources import load_images
from gmv.errors import GmvError
from gmv.valuation.embedders import Embedder, build_embedder, embed_cached
from gmv.valuation.matchers import MatchResult, MatcherConfig, match, resolve
from gmv.valuation.methods import Evidence, GMValuator, KNNCount, MethodResult, Valuator, build_method, tables_k
from gmv.valuation.ray_cluster import check_engine, require_ray


@dataclass
class Valuation:
    values: np.ndarray  # float64 N_pool: φ_i (Eq. 6), sums to m
    n_matches: np.ndarray  # int64 N_pool: how many generated points have i among their K matches
    split: np.ndarray  # str N_pool: "v1" (train) or "v2" (held out)
    pool: ImageSet  # train ∪ held_out, in that order
    generated: ImageSet
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
    reference_emb: np.ndarray | None = None  # embeddings of the reference set, when given

    @property
    def main(self) -> MethodResult:
        return next(iter(self.methods.values()))

    @property
    def n_generated(self) -> int:
        return len(self.generated)

    def side(self, name: str) -> np.ndarray:
        """Indices into the pool of one half ("v1" or "v2")."""
        return np.flatnonzero(self.split == name)


def as_imageset(x: ImageSet | np.ndarray | str | Path, name: str, **load_options) -> ImageSet:
    if isinstance(x, ImageSet):
        return x
    if isinstance(x, np.ndarray):
        return ImageSet(x, None, name=name)
    s = load_images(x, **load_options)
    s.name = name
    return s


def _matcher_config(matcher: str | MatcherConfig | Mapping[str, Any]) -> MatcherConfig:
    if isinstance(matcher, MatcherConfig):
        return matcher
    if isinstance(matcher, str):
        return MatcherConfig(kind=matcher)
    cfg = dict(matcher)
    known = set(MatcherConfig.__dataclass_fields__)
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise GmvError(f"unknown matcher setting(s) {unknown}; valid: {', '.join(sorted(known))}")
    return MatcherConfig(**cfg)


def _methods(method, baselines, k: int, tau, distance: str) -> list[Valuator]:
    main = GMValuator(k=k, tau=tau, distance=distance) if method is None else build_method(method)
    chosen = [main] + [build_method(b) for b in (baselines or [])]
    names = [m.name for m in chosen]
    if len(set(names)) != len(names):
        raise GmvError(f"valuation methods must have distinct names, got {names}")
    return chosen


def valuate(train, generated, embedder: str | Embedder | Mapping[str, Any] = "pixels",
            matcher: str | MatcherConfig | Mapping[str, Any] = "auto", k: int = 10, held_out=None,
            tau: float | str = "auto", distance: str = "l2", cache_dir: str | Path | None = None,
            embedder_options: Mapping[str, Any] | None = None, image_size: int | None = None,
            method: Any = None, baselines: Sequence[Any] | None = None, reference=None,
            engine: str = "local", ray_address: str | None = None, shard_size: int | None = None) -> Valuation:
    """Value every training (and held-out) image by the generated images that match it.

    `engine="ray"` embeds and matches on a Ray cluster (gmv/valuation/ray_engine.py): `ray_address`
    (default: RAY_ADDRESS, else a local instance), `shard_size` pool points per search task."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    check_engine(engine)
    if engine == "ray":
        require_ray()  # before any loading: say how to install it
    methods = _methods(method, baselines, k, tau, distance)  # every method checks its settings here
    main = methods[0]
    distance = getattr(main, "distance", distance)
    k_tables = tables_k(methods)
    opts = {} if image_size is None else {"image_size": image_size}
    train_set = as_imageset(train, "train", **opts)
    gen_set = as_imageset(generated, "generated", **opts)
    sets = [train_set]
    if held_out is not None:
        sets.append(as_imageset(held_out, "held_out", **opts))
    pool = concat(sets, name="pool") if len(sets) > 1 else train_set
    split = np.array(["v1"] * len(train_set) + (["v2"] * len(sets[1]) if len(sets) > 1 else []))
    if gen_set.shape != pool.shape:
        raise GmvError(f"generated images are {gen_set.shape} (H, W, C) but training images are {pool.shape}; "
                       "give both at one size and channel count (e.g. --image-size)")
    ref_set = None if reference is None else as_imageset(reference, "reference", **opts)
    if ref_set is not None and ref_set.shape != pool.shape:
        raise GmvError(f"reference images are {ref_set.shape} (H, W, C) but training images are {pool.shape}")
    emb = build_embedder(embedder, **dict(embedder_options or {}))
    mcfg = resolve(_matcher_config(matcher), len(pool), emb.dim(pool.shape), k_tables,  # all checks before work
                   n_queries=len(gen_set))
    timings["load_and_check"] = time.perf_counter() - t0

    # ---- embed + match: on this process (engine "local") or on a Ray cluster (engine "ray") ----
    ref_images = None if ref_set is None else ref_set.images
    if engine == "ray":
        from gmv.valuation.ray_engine import embed_and_match

        pool_emb, gen_emb, ref_emb, reused, result = embed_and_match(
            emb, pool.images, gen_set.images, ref_images, cache_dir, mcfg, k_tables, distance, ray_address,
            shard_size, timings)
    else:
        t0 = time.perf_counter()
        pool_emb, reused_pool = embed_cached(emb, pool.images, cache_dir, desc="embed training")
        gen_emb, reused_gen = embed_cached(emb, gen_set.images, cache_dir, desc="embed generated")
        reused = {"pool_embedding": reused_pool, "generated_embedding": reused_gen}
        ref_emb = None
        if ref_set is not None:
            ref_emb, reused["reference_embedding"] = embed_cached(emb, ref_images, cache_dir, desc="embed reference")
        timings["embed"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        result = match(pool_emb, gen_emb, k_tables, mcfg, distance=distance)
        timings["match"] = time.perf_counter() - t0
    # ---- end of the engine-specific part: values below come from the same tables either way ----

    t0 = time.perf_counter()
    evidence = Evidence(pool_emb, gen_emb, split, result, ref_emb)
    results: dict[str, MethodResult] = {}
    skipped: dict[str, str] = {}
    for m in methods:
        if m.needs_reference and ref_emb is None and m is not main:
            skipped[m.name] = "no reference set of real images outside the split"
            continue
        results[m.name] = m.value(evidence)
    timings["value"] = time.perf_counter() - t0
    first = results[main.name]
    k_main = int(first.extras.get("k", k_tables))
    credit = first.arrays.get("credit", np.ones((len(gen_set), k_main)) / k_main)
    n_matches = first.arrays.get("n_matches")
    if n_matches is None:  # a main method without match counts: the K-NN count over its K
        n_matches = KNNCount(k_main).value(evidence).values.astype(np.int64)
    return Valuation(first.values, n_matches, split, pool, gen_set, pool_emb, gen_emb, result, credit, k_main,
                     float(first.extras.get("tau", float("nan"))), emb.fingerprint(), timings, reused, results,
                     skipped, ref_emb)

