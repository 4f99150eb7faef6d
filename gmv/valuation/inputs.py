"""What `valuate` is given, made uniform: image sets (arrays, ImageSets, dataset names, npz files and folders,
the latter streamed) or precomputed embeddings, the pool train ∪ held_out and its v1/v2 split, the matcher
settings from a name, mapping or MatcherConfig (gmv/valuation/api.py runs the steps on them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gmv.data.imageset import ImageSet
from gmv.data.stream import LazyImageSet, concat_sets, open_images
from gmv.errors import GmvError
from gmv.valuation.matchers import MatcherConfig
from gmv.valuation.precomputed import EmbeddingSet, as_embedding_set, concat_embeddings


def as_imageset(x, name: str, cache_dir: str | Path | None = None, **load_options) -> ImageSet | LazyImageSet:
    """An image set from an ImageSet/LazyImageSet (as is), a uint8 array, or a name or path (npz files and
    folders stream)."""
    if isinstance(x, (ImageSet, LazyImageSet)):
        return x
    if isinstance(x, np.ndarray):
        return ImageSet(x, None, name=name)
    s = open_images(x, cache_dir=cache_dir, **load_options)
    s.name = name
    return s


def matcher_config(matcher: str | MatcherConfig | Mapping[str, Any]) -> MatcherConfig:
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


def is_precomputed(embedder, sets) -> bool:
    given = [x for x in sets if x is not None]
    if isinstance(embedder, str) and embedder == "precomputed":
        return True
    embeddings = [isinstance(x, EmbeddingSet) for x in given]
    if any(embeddings) and not all(embeddings):
        raise GmvError("give embeddings (EmbeddingSet, embedder='precomputed') for every set, or images for every "
                       "set; the two cannot be mixed")
    return any(embeddings)


def split_of(sets) -> np.ndarray:
    return np.array(["v1"] * len(sets[0]) + (["v2"] * len(sets[1]) if len(sets) > 1 else []))


def embedding_inputs(train, generated, held_out, reference):
    """Precomputed embeddings → (pool, generated, reference, split)."""
    sets = [as_embedding_set(train, "train")] + ([as_embedding_set(held_out, "held_out")] if held_out is not None
                                                  else [])
    gen = as_embedding_set(generated, "generated")
    ref = None if reference is None else as_embedding_set(reference, "reference")
    pool = concat_embeddings(sets, "pool")
    for other in [gen] + ([ref] if ref is not None else []):
        if other.dim != pool.dim:
            raise GmvError(f"{other.name} embeddings are {other.dim}-d but the training embeddings are {pool.dim}-d")
    return pool, gen, ref, split_of(sets)


def image_inputs(train, generated, held_out, reference, image_size, cache_dir):
    """Images → (pool, generated, reference, split), lazily for npz files and folders."""
    opts = {} if image_size is None else {"image_size": image_size}
    sets = [as_imageset(train, "train", cache_dir, **opts)]
    if held_out is not None:
        sets.append(as_imageset(held_out, "held_out", cache_dir, **opts))
    gen = as_imageset(generated, "generated", cache_dir, **opts)
    pool = concat_sets(sets, name="pool") if len(sets) > 1 else sets[0]
    if gen.shape != pool.shape:
        raise GmvError(f"generated images are {gen.shape} (H, W, C) but training images are {pool.shape}; "
                       "give both at one size and channel count (e.g. --image-size)")
    ref = None if reference is None else as_imageset(reference, "reference", cache_dir, **opts)
    if ref is not None and ref.shape != pool.shape:
        raise GmvError(f"reference images are {ref.shape} (H, W, C) but training images are {pool.shape}")
    return pool, gen, ref, split_of(sets)
