"""`valuate`: the whole method as one Python call, no Hydra needed.

    result = valuate(train, generated, embedder="resnet20_cifar", matcher="pq", k=10,
                     held_out=None, embedder_options={"weights": path})

`train`, `generated`, `held_out` are ImageSets, uint8 arrays N×H×W×C, or anything `load_images`
takes (a dataset name, an `.npz` path, an image folder). With `held_out` (the paper's RA2), the
generated points are matched against the pool train ∪ held_out and both halves are valued;
`result.split` says which half each pool point belongs to ("v1" = train, "v2" = held out).
Everything is checked before any embedding is computed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gmv.data.imageset import ImageSet, concat
from gmv.data.sources import load_images
from gmv.errors import GmvError
from gmv.valuation.embedders import Embedder, build_embedder, embed_cached
from gmv.valuation.matchers import DISTANCES, MatchResult, MatcherConfig, match, resolve
from gmv.valuation.value import values_from_matches


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
    tau: float
    embedder: dict[str, Any]  # the embedder's fingerprint
    seconds: dict[str, float] = field(default_factory=dict)
    reused: dict[str, bool] = field(default_factory=dict)  # which embeddings came from the cache

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


def valuate(train, generated, embedder: str | Embedder | Mapping[str, Any] = "pixels",
            matcher: str | MatcherConfig | Mapping[str, Any] = "flat", k: int = 10, held_out=None,
            tau: float = 1.0, distance: str = "l2", cache_dir: str | Path | None = None,
            embedder_options: Mapping[str, Any] | None = None, image_size: int | None = None) -> Valuation:
    """Value every training (and held-out) image by the generated images that match it."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
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
    if tau <= 0:
        raise GmvError(f"temperature tau must be > 0, got {tau}")
    if distance not in DISTANCES:
        raise GmvError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")
    emb = build_embedder(embedder, **dict(embedder_options or {}))
    mcfg = resolve(_matcher_config(matcher), len(pool), emb.dim(pool.shape), k)  # all checks before work
    timings["load_and_check"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    pool_emb, reused_pool = embed_cached(emb, pool.images, cache_dir, desc="embed training")
    gen_emb, reused_gen = embed_cached(emb, gen_set.images, cache_dir, desc="embed generated")
    timings["embed"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = match(pool_emb, gen_emb, k, mcfg, distance=distance)
    timings["match"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    values, n_matches, w = values_from_matches(result.distances, result.indices, len(pool), tau)
    timings["value"] = time.perf_counter() - t0
    return Valuation(values, n_matches, split, pool, gen_set, pool_emb, gen_emb, result, w, k, tau,
                     emb.fingerprint(), timings, {"pool_embedding": reused_pool, "generated_embedding": reused_gen})
