"""The train stage: its cache key, training into a cache entry (resuming, healing) and the trajectory.

Entry `train/<key>/`: `checkpoints/last.ckpt` (+ `iter_XXXXXX.ckpt` every `checkpoint_every`), the
harness's sample grids and CSV logs, and `done.json` (iterations, training seconds, images/s, and the
checksum of every checkpoint). The key digests X_v1's pixels and labels, the generator's class and
its *effective* training settings (the preset with the overrides applied, so editing a preset retrains),
the training length and the seed. Sampling-only settings, which each generator declares, are left out.

Continuing. No generator schedules on the training length (the generator contract; tested per generator), so
a fresh entry whose settings match a finished, intact entry's in everything but `train.max_iterations` (same
*lineage*, recorded in done.json) and which trains longer starts from that entry's last checkpoint: running
the same study with more iterations trains only the iterations it adds, and ends bit-identical to a run
trained that long from the start.

Time across parts. A run killed and resumed (or a continuation) trains in parts; `progress.json` in the entry
records when each part started and from which iteration, and when a part resumes the previous one it counts the
previous part's time up to its newest checkpoint (that checkpoint's modification time): `train_seconds` is the
time of every part, from `train_seconds_from_iteration` (0, or the iterations a continuation took over) on.

Healing. A killed run left an unfinished entry: the harness resumes from `last.ckpt` (bit-identical to
an uninterrupted run). A damaged entry — a finished one whose checkpoint fails its checksum, or an
unfinished one whose `last.ckpt` cannot be read — is reported in one line and resumed from the newest
checkpoint that is still intact, or retrained from scratch when none is.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

from gmv.cache import CacheEntry, array_digest, key_of, say
from gmv.code_fingerprint import code_digest
from gmv.data.imageset import ImageSet
from gmv.io import link_or_copy

RECORDED = ("iterations", "train_seconds", "train_seconds_from_iteration", "images_per_s", "world_size", "lineage",
            "continued_from")
PROGRESS = "progress.json"


def train_key(v1: ImageSet, module, train_cfg: Mapping[str, Any], seed: int) -> str:
    target = f"{type(module).__module__}.{type(module).__qualname__}"
    settings = module.training_settings()  # the effective settings: editing a preset changes the key
    shape = {"n_classes": int(module.n_classes), "image_size": int(module.image_size),
             "channels": int(module.channels)}
    code = code_digest(type(module).__module__, "gmv.training.train", "gmv.training.datamodule")
    return key_of("train", array_digest(v1.images, v1.labels), target, shape, settings,
                  {k: train_cfg[k] for k in ("max_iterations", "conditional", "hflip")}, int(seed), code)


def lineage_key(v1: ImageSet, module, train_cfg: Mapping[str, Any], seed: int) -> str:
    """train_key without the training length: runs that differ only in train.max_iterations share it."""
    return train_key(v1, module, {**train_cfg, "max_iterations": None}, seed)


def continue_shorter_run(entry: CacheEntry, lineage: str, max_iterations: int) -> dict[str, Any] | None:
    """Give a fresh entry the last checkpoint of the longest finished, intact entry of the same lineage that
    trained fewer than `max_iterations`; {"key", "iterations"} of that entry, or None (nothing to continue)."""
    folder = entry.folder / "checkpoints"
    if folder.is_dir() and any(folder.glob("*.ckpt")):
        return None  # an unfinished run of its own: resume that
    shorter = []
    for done in entry.folder.parent.glob("*/done.json"):
        other = CacheEntry(entry.root, entry.stage, done.parent.name)
        info = other.info()
        if other.key != entry.key and info.get("lineage") == lineage and info.get("iterations", 0) < max_iterations:
            shorter.append((int(info["iterations"]), other))
    for iterations, other in sorted(shorter, key=lambda t: -t[0]):
        if other.check() is None:
            link_or_copy(other.folder / "checkpoints" / "last.ckpt", folder / "last.ckpt")
            say(f"{entry.name}: continuing {other.name}'s {iterations} iterations (same settings, a shorter run) "
                f"to {max_iterations}")
            return {"key": other.key, "iterations": iterations}
    return None


def _iteration_of(path: Path) -> int | None:
    """The iteration a harness checkpoint was taken at, or None when it cannot be read."""
    import torch

    from gmv.training.train import checkpoint_iteration

    try:
        return checkpoint_iteration(torch.load(path, map_location="cpu", mmap=True, weights_only=False))
    except Exception:  # noqa: BLE001 - any failure to read means: do not resume from it
        return None


def prepare_resume(entry: CacheEntry) -> None:
    """Leave `last.ckpt` a readable checkpoint to resume from — the newest readable one, when `last.ckpt`
    is unreadable or was cleared as damaged — or no checkpoint at all (train from the start)."""
    folder = entry.folder / "checkpoints"
    last = folder / "last.ckpt"
    if last.exists() and _iteration_of(last) is not None:
        return
    periodic = sorted(folder.glob("iter_*.ckpt"), reverse=True) if folder.is_dir() else []
    if not last.exists() and not periodic:
        return  # a fresh entry
    last.unlink(missing_ok=True)
    for candidate in periodic:
        if _iteration_of(candidate) is not None:
            say(f"{entry.name}: resuming from {candidate.name}, the newest intact checkpoint")
            link_or_copy(candidate, last)
            return
        candidate.unlink()
    say(f"{entry.name}: no intact checkpoint — training from the start")


def start_part(entry: CacheEntry, continued: dict[str, Any] | None) -> dict[str, Any]:
    """Record in the entry's progress.json that a training part starts now, from the iteration of `last.ckpt`
    (0 without one). The previous part, if this one resumes it, is closed with the seconds it trained up to
    that checkpoint; a fresh entry (or a continuation, given `continued`) starts a new record."""
    path, last = entry.folder / PROGRESS, entry.folder / "checkpoints" / "last.ckpt"
    resumed = last.exists()  # prepare_resume left it readable, or removed it
    start = _iteration_of(last) if resumed else 0
    progress = json.loads(path.read_text()) if path.is_file() and resumed and continued is None else None
    if progress is None:
        progress = {"continued_from": continued, "parts": []}
    parts = progress["parts"]
    if parts and "seconds" not in parts[-1]:  # the part that was killed: its time up to the checkpoint resumed
        trained = start > parts[-1]["from_iteration"]  # else it was killed before its first checkpoint
        parts[-1].update(seconds=max(0.0, last.stat().st_mtime - parts[-1]["started"]) if trained else 0.0,
                         to_iteration=start)
    parts.append({"started": time.time(), "from_iteration": start})
    entry.folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{PROGRESS}.tmp")
    tmp.write_text(json.dumps(progress, indent=1))
    os.replace(tmp, path)
    return progress


def train(module, datamodule, train_cfg: Mapping[str, Any], trainer_cfg: Mapping[str, Any] | None,
          entry: CacheEntry, seed: int, logger=None, lineage: str | None = None) -> dict[str, Any]:
    """Train (or resume, or continue a shorter run of the same `lineage`) into the entry; returns the harness's
    result plus `train_seconds` (every part's, from `train_seconds_from_iteration` on), `lineage` and
    `continued_from`."""
    from gmv.training.train import train_generator

    continued = continue_shorter_run(entry, lineage, int(train_cfg["max_iterations"])) if lineage else None
    prepare_resume(entry)
    progress = start_part(entry, continued)
    result = train_generator(module, datamodule, int(train_cfg["max_iterations"]), entry.folder,
                             trainer_cfg=trainer_cfg, logger=logger,
                             checkpoint_every=int(train_cfg["checkpoint_every"]),
                             sample_every=int(train_cfg["sample_every"]), seed=seed)
    earlier = sum(part["seconds"] for part in progress["parts"][:-1])
    result.update(train_seconds=round(earlier + result["wall_time_s"], 3), lineage=lineage,
                  train_seconds_from_iteration=progress["parts"][0]["from_iteration"],
                  continued_from=progress["continued_from"])
    return result


def reuse(module, datamodule, train_cfg: Mapping[str, Any], entry: CacheEntry, seed: int) -> dict[str, Any]:
    """A finished, intact entry: load its weights into `module`; the facts come from done.json."""
    from gmv.training.train import train_generator

    result = train_generator(module, datamodule, int(train_cfg["max_iterations"]), entry.folder, seed=seed)
    info = entry.info()
    result.update(train_seconds=info.get("train_seconds"), images_per_s=info.get("images_per_s"),
                  train_seconds_from_iteration=info.get("train_seconds_from_iteration"),
                  continued_from=info.get("continued_from"))
    return result


def trajectory(cfg, module, datamodule, v1: ImageSet, v2: ImageSet, embedder, run_dir: Path):
    """A context in which training also records the membership trajectory (train.trajectory_every > 0):
    every N iterations X̂ (trajectory.m samples) is drawn from the EMA weights and valued, into
    run_dir/trajectory.csv/.png and the loggers (gmv/training/trajectory.py). Training is unchanged."""
    every = int(cfg.train.get("trajectory_every") or 0)
    if every <= 0 or not cfg.valuation.held_out:
        return contextlib.nullcontext()
    from gmv.training.trajectory import MembershipProbe, TrajectoryCallback, attach_callbacks

    probe = MembershipProbe(v1, v2, embedder, class_ids=datamodule.labels, label_values=datamodule.class_ids,
                            m=int(cfg.trajectory.m), k=int(cfg.valuation.k), tau=cfg.valuation.tau,
                            distance=str(cfg.valuation.distance), seed=int(cfg.generate.seed))
    return attach_callbacks(module, TrajectoryCallback(probe, every, run_dir, title=f"{cfg.study}: trajectory"))
