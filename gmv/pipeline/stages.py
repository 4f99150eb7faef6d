"""Plain functions of config sections that the study's stages are made of (gmv/pipeline/study.py lists
the stages; training and sampling, the two cached generator stages, are gmv/pipeline/train_stage.py and
gmv/pipeline/sample_stage.py):

    load_data         → ImageSet                   (dataset name, .npz or folder)
    split_data        → Split, X_v1, X_v2          (class-stratified halves)
    edit_training_set → X_v1 without data.subset's removals, with data.addition's images, and the record
                        (gmv/data/edit.py)
    reference_set     → real images in neither half (calibrated membership baselines)
    valuation_methods → the main method and the baselines (Valuator objects)
    build_generator   → an untrained GeneratorModule (validates the generator config)
    quality           → Fréchet distance in the valuation embedding, FID/KID where available
"""

from __future__ import annotations

from typing import Any, Mapping

import lightning as L
import numpy as np

from gmv.config_utils import plain  # noqa: F401 - re-exported: stages.plain is used across gmv
from gmv.data.imageset import ImageSet
from gmv.data.sources import load_images
from gmv.data.split import Split, split_imageset, stratified_split
from gmv.errors import GmvError

TORCHVISION_SOURCES = ("mnist", "cifar10", "celeba")


# --------------------------------------------------------------------------- data


def load_data(data_cfg: Mapping[str, Any]) -> ImageSet:
    source = str(data_cfg["source"])
    options = {k: data_cfg.get(k) for k in ("image_size", "channels", "limit")}
    if source in TORCHVISION_SOURCES:
        options.update(root=data_cfg.get("root", "data"), download=bool(data_cfg.get("download", False)))
    data = load_images(source, **{k: v for k, v in options.items() if v is not None})
    if len(data) == 0:
        raise GmvError(f"data source {source!r} has no images")
    return data


def split_data(data: ImageSet, split_cfg: Mapping[str, Any]) -> tuple[Split, ImageSet, ImageSet]:
    split = stratified_split(data.labels, ratio=float(split_cfg["ratio"]), classes=split_cfg.get("classes"),
                             seed=int(split_cfg["seed"]), per_class_limit=split_cfg.get("per_class_limit"))
    v1, v2 = split_imageset(data, split)
    return split, v1, v2


def edit_training_set(data: ImageSet, split: Split, v1: ImageSet, data_cfg: Mapping[str, Any], seed: int,
                      conditional: bool, hflip: bool):
    """X_v1 edited by `data.subset` and `data.addition` (gmv.data.edit.EditedTrainingSet), or None when
    neither changes it."""
    from gmv.data.edit import apply_edit, parse_additions, parse_subset

    additions = parse_additions(plain(data_cfg.get("addition")), default_seed=seed)
    subset = parse_subset(plain(data_cfg.get("subset")), default_seed=seed)
    if not additions and subset is None:
        return None
    return apply_edit(data, split, v1, additions, subset, image_size=data_cfg.get("image_size"),
                      conditional=conditional, hflip=hflip)


def reference_set(data: ImageSet, split: Split, size: int, seed: int = 0,
                  exclude: np.ndarray | None = None) -> ImageSet | None:
    """Up to `size` real images of the split's classes that neither half contains nor `exclude` lists
    (images a training-set edit took), seeded draw, for calibrated membership baselines; None when
    `size` is 0 or no such image exists."""
    if size <= 0:
        return None
    used = np.zeros(len(data), bool)
    used[split.v1] = used[split.v2] = True
    if exclude is not None:
        used[exclude] = True
    classes = np.unique(data.labels[split.v1])
    free = np.flatnonzero(~used & np.isin(data.labels, classes))
    if len(free) == 0:
        return None
    pick = np.sort(np.random.default_rng(seed).choice(free, min(size, len(free)), replace=False))
    return data.subset(pick, name=f"{data.name}_reference")


# --------------------------------------------------------------------------- valuation


def valuation_methods(valuation_cfg: Mapping[str, Any]):
    """(main method, [baselines]) from the valuation config's `method` and `baselines` (_target_ nodes)."""
    from gmv.valuation.methods import build_method

    method = build_method(valuation_cfg["method"])
    baselines = [build_method(spec) for spec in (valuation_cfg.get("baselines") or {}).values()]
    return method, baselines


def engine_options(valuation_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """valuate()'s engine arguments from the valuation section (engine, ray.address, ray.shard_size)."""
    v = valuation_cfg
    ray = v.get("ray") or {}
    return {"engine": str(v.get("engine", "local")), "ray_address": ray.get("address"),
            "shard_size": ray.get("shard_size")}


# --------------------------------------------------------------------------- generator


def generator_settings(gen_cfg: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(`_target_`, the settings that are set): null entries mean "the preset's value"."""
    cfg = dict(plain(gen_cfg))
    target = cfg.pop("_target_", None)
    if not target:
        raise GmvError("the generator config needs a `_target_` (e.g. gmv.generators.biggan.BigGAN)")
    return str(target), {k: v for k, v in cfg.items() if v is not None}


def generator_class(target: str) -> type:
    """The generator class a `_target_` names."""
    from hydra.utils import get_class

    try:
        return get_class(target)
    except Exception as e:  # noqa: BLE001 - a typo in _target_ is the user's config error
        raise GmvError(f"cannot import generator {target!r}: {str(e).splitlines()[0]}") from None


def sampling_fields(target: str) -> frozenset[str]:
    """The settings the generator class declares sampling-only: the samples key's, not the train key's."""
    return frozenset(getattr(generator_class(target), "sampling_fields", ()))


def build_generator(gen_cfg: Mapping[str, Any], n_classes: int, image_size: int, channels: int, seed: int = 0):
    """The untrained generator, its initial weights drawn from `seed` (the global RNGs are left as they were)."""
    from lightning.pytorch.utilities.seed import isolate_rng

    target, settings = generator_settings(gen_cfg)
    cls = generator_class(target)
    with isolate_rng():
        L.seed_everything(int(seed), verbose=False)
        return cls(n_classes=n_classes, image_size=image_size, channels=channels, **settings)


# --------------------------------------------------------------------------- quality


def quality(v1: ImageSet, v2: ImageSet | None, samples: ImageSet, emb_v1: np.ndarray, emb_v2: np.ndarray | None,
            emb_gen: np.ndarray, embedder_name: str, inception: bool) -> dict[str, Any]:
    """Sample quality: Fréchet distance of X̂ to X_v1 in the valuation embedding (labelled as such),
    the same distance between X_v2 and X_v1 as a floor (what a perfect generator would score at this
    sample size), and FID/KID on Inception-v3 features when they are available locally."""
    from gmv.training.quality import frechet_distance, inception_fid

    out: dict[str, Any] = {"fd_embedding": frechet_distance(emb_v1, emb_gen), "fd_embedder": embedder_name}
    if emb_v2 is not None:
        out["fd_embedding_v2_vs_v1"] = frechet_distance(emb_v1, emb_v2)
    out["fid"] = None
    if inception:
        fid = inception_fid(v1, samples)
        if fid is not None:
            out.update(fid=fid["fid"], kid_mean=fid["kid_mean"], kid_std=fid["kid_std"])
    return out
