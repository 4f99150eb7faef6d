"""The study's stages, each a plain function of config sections and the previous stage's output.

    load_data      → ImageSet                     (dataset name, .npz or folder; seconds, never cached)
    split_data     → X_v1, X_v2                   (class-stratified halves)
    build_generator→ an untrained GeneratorModule (validates the generator config)
    train          → trained module               (cache: train/<key>/checkpoints/last.ckpt, resumes)
    generate       → X̂ (samples.npz)             (cache: samples/<key>/)
    valuate        → values                       (embeddings cached by pixel content: embeddings/)
    quality        → Fréchet distance in the valuation embedding, FID/KID where available

Keys: the train key digests X_v1's pixels and labels, the generator's training settings, the
training length and the seed; the samples key adds the sampling settings. Settings that only
change how a trained generator samples (guidance strength, DDIM steps, truncation) are left out of
the train key, so sweeping them does not retrain: each generator class declares them
(`sampling_fields`, gmv/generators/base.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import lightning as L
import numpy as np

from gmv.config_utils import plain  # noqa: F401 - re-exported: stages.plain is used across gmv
from gmv.data.imageset import ImageSet
from gmv.data.sources import load_images
from gmv.data.split import Split, split_imageset, stratified_split
from gmv.errors import GmvError
from gmv.pipeline.cache import array_digest, is_done, key_of, mark_done, read_done

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


def reference_set(data: ImageSet, split: Split, size: int, seed: int = 0) -> ImageSet | None:
    """Up to `size` real images of the split's classes that neither half contains (seeded draw), for
    calibrated membership baselines; None when `size` is 0 or no such image exists."""
    if size <= 0:
        return None
    used = np.zeros(len(data), bool)
    used[split.v1] = used[split.v2] = True
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


def train_key(v1: ImageSet, gen_cfg: Mapping[str, Any], train_cfg: Mapping[str, Any], seed: int) -> str:
    target, settings = generator_settings(gen_cfg)
    sampling = sampling_fields(target)
    return key_of("train", array_digest(v1.images, v1.labels), target,
                  {k: v for k, v in settings.items() if k not in sampling},
                  {k: train_cfg[k] for k in ("max_iterations", "conditional", "hflip")}, int(seed))


def train(module, datamodule, train_cfg: Mapping[str, Any], trainer_cfg: Mapping[str, Any] | None,
          folder: Path, seed: int, logger=None) -> dict[str, Any]:
    """Train (or resume, or reuse) into `folder`; returns the harness's result plus `reused` and
    `train_seconds` (the wall time of the run that did the training, also when reused)."""
    from gmv.training.train import train_generator

    result = train_generator(module, datamodule, int(train_cfg["max_iterations"]), folder, trainer_cfg=trainer_cfg,
                             logger=logger, checkpoint_every=int(train_cfg["checkpoint_every"]),
                             sample_every=int(train_cfg["sample_every"]), seed=seed)
    reused = result["iterations_run"] == 0
    if reused and is_done(folder):
        first = read_done(folder)
        result["train_seconds"] = first.get("train_seconds")
        result["images_per_s"] = first.get("images_per_s")
    else:
        previous = read_done(folder).get("train_seconds", 0.0) if is_done(folder) else 0.0
        result["train_seconds"] = round(float(previous or 0.0) + result["wall_time_s"], 3)
        mark_done(folder, {k: result[k] for k in ("iterations", "train_seconds", "images_per_s", "world_size")})
    result["reused"] = reused
    return result


def trajectory(cfg, module, datamodule, v1: ImageSet, v2: ImageSet, embedder, run_dir: Path):
    """A context in which training also records the membership trajectory (train.trajectory_every > 0):
    every N iterations X̂ (trajectory.m samples) is drawn from the EMA weights and valued, into
    run_dir/trajectory.csv/.png and the loggers (gmv/training/trajectory.py). Training is unchanged."""
    import contextlib

    every = int(cfg.train.get("trajectory_every") or 0)
    if every <= 0 or not cfg.valuation.held_out:
        return contextlib.nullcontext()
    from gmv.training.trajectory import MembershipProbe, TrajectoryCallback, attach_callbacks

    probe = MembershipProbe(v1, v2, embedder, class_ids=datamodule.labels, label_values=datamodule.class_ids,
                            m=int(cfg.trajectory.m), k=int(cfg.valuation.k), tau=cfg.valuation.tau,
                            distance=str(cfg.valuation.distance), seed=int(cfg.generate.seed))
    return attach_callbacks(module, TrajectoryCallback(probe, every, run_dir, title=f"{cfg.study}: trajectory"))


# --------------------------------------------------------------------------- samples


def sample_class_ids(datamodule, generate_cfg: Mapping[str, Any], m: int) -> np.ndarray:
    """Class ids of the m samples: X_v1's class proportions, or only the chosen labels."""
    from gmv.training.sample import class_counts, class_ids_from_counts

    chosen = generate_cfg.get("classes")
    only = None
    if chosen is not None:
        lookup = {int(c): k for k, c in enumerate(datamodule.class_ids)}
        missing = sorted(int(c) for c in chosen if int(c) not in lookup)
        if missing:
            raise GmvError(f"generate.classes {missing} are not classes the generator was trained on "
                           f"(its classes: {[int(c) for c in datamodule.class_ids]})")
        only = [lookup[int(c)] for c in chosen]
    counts = class_counts(datamodule.labels, m, n_classes=datamodule.n_classes, only=only)
    return class_ids_from_counts(counts)


def samples_key(train_key_: str, gen_cfg: Mapping[str, Any], generate_cfg: Mapping[str, Any]) -> str:
    target, settings = generator_settings(gen_cfg)
    sampling = sampling_fields(target)
    return key_of("samples", train_key_, {k: v for k, v in settings.items() if k in sampling},
                  {k: plain(generate_cfg)[k] for k in ("m", "classes", "seed", "batch_size")})


def generate(module, datamodule, generate_cfg: Mapping[str, Any], folder: Path) -> tuple[ImageSet, bool]:
    """X̂ from the trained module's EMA weights, cached as `folder/samples.npz` (+ `samples.png`)."""
    from gmv.data.sources import load_npz
    from gmv.training.sample import sample_imageset, save_grid
    from gmv.training.train import grid_columns

    if is_done(folder):
        return load_npz(folder / "samples.npz"), True
    t0 = time.perf_counter()
    m = int(generate_cfg["m"])
    ids = sample_class_ids(datamodule, generate_cfg, m)
    samples = sample_imageset(module, m, ids, seed=int(generate_cfg["seed"]),
                              batch_size=int(generate_cfg["batch_size"]), label_values=datamodule.class_ids)
    samples.save_npz(folder / "samples.npz")
    save_grid(samples.images[_grid_pick(ids, 64)], folder / "samples.png", nrow=grid_columns(datamodule.n_classes))
    mark_done(folder, {"m": m, "seconds": round(time.perf_counter() - t0, 3)})
    return samples, False


def _grid_pick(ids: np.ndarray, n: int) -> np.ndarray:
    """Up to `n` sample indices for a preview grid: the first few of every class, interleaved."""
    classes = np.unique(ids)
    per = max(1, n // len(classes))
    chosen = [np.flatnonzero(ids == c)[:per] for c in classes]
    rows = max(len(c) for c in chosen)
    picked = [c[r] for r in range(rows) for c in chosen if r < len(c)]
    return np.asarray(picked[:n], np.int64)


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


# --------------------------------------------------------------------------- files


class StageClock:
    """Per-stage wall times and whether each stage was reused from the cache."""

    def __init__(self):
        self.stages: dict[str, dict[str, Any]] = {}
        self._t0: float | None = None

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self, name: str, reused: bool | None = None, key: str | None = None) -> float:
        seconds = round(time.perf_counter() - (self._t0 or time.perf_counter()), 3)
        self.stages[name] = {"seconds": seconds, "reused": reused, "key": key}
        self._t0 = time.perf_counter()
        return seconds

    def metrics(self) -> dict[str, Any]:
        return {f"seconds_stage_{name}": s["seconds"] for name, s in self.stages.items()}

    def table(self) -> str:
        lines = []
        for name, s in self.stages.items():
            state = {True: "reused", False: "computed", None: ""}[s["reused"]]
            lines.append(f"  {name:<10} {s['seconds']:>8.1f} s  {state}")
        return "\n".join(lines)
