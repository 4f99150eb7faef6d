"""The generator-agnostic training harness: `train_generator(module, datamodule, max_iterations, out_dir)`.

- Stops when `module.iteration >= max_iterations` (generator iterations, not Lightning's
  `global_step`, which counts every optimiser step under manual optimisation).
- Writes `out_dir/checkpoints/last.ckpt` (every `checkpoint_every` iterations and at the end) and
  `iter_XXXXXX.ckpt` every `checkpoint_every` iterations, each atomically.
- Calling it again with the same `out_dir` resumes from `last.ckpt`: weights, optimiser and
  scheduler states, the iteration counter, the data stream position and the global Python/NumPy/
  torch RNG states, so an interrupted-then-resumed run ends bit-identical to an uninterrupted one.
  If the checkpoint has already reached `max_iterations`, it returns without training.
- Every `sample_every` iterations a sample grid goes to `out_dir/samples/iter_XXXXXX.png` and to
  the logger when it takes images (W&B `log_image`, TensorBoard `add_image`).

Checkpoints are taken in `on_train_batch_end` of the harness's callbacks, i.e. after the
training step, the optimiser steps and the step-wise LR schedulers, but *before* the module's own
`on_train_batch_end`: generator modules must finish each iteration's state changes (EMA update,
counter) inside `training_step`/`optimizer_step`, as the GeneratorModule contract asks. The callbacks
themselves are gmv/training/callbacks.py.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, TQDMProgressBar

from gmv.config_utils import plain
from gmv.console import show_progress
from gmv.errors import GmvError
from gmv.training.callbacks import (IterationCheckpoint, IterationStop, RNGStateCallback, SampleGrid, Throughput,
                                    iteration_progress)

#: trainer_cfg keys the harness owns; a trainer config may not set them.
_RESERVED = {
    "max_steps", "max_epochs", "min_steps", "min_epochs", "callbacks", "logger", "default_root_dir",
    "enable_checkpointing", "enable_progress_bar", "use_distributed_sampler", "max_time",
    "limit_train_batches", "reload_dataloaders_every_n_epochs",
}


@contextlib.contextmanager
def quiet_fit_warnings():
    """Silence Lightning warnings that do not apply here (in-memory data needs no workers; manual
    optimisation returns no loss)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*`training_step` returned `None`.*")
        # lightning's own pytree helper trips a torch deprecation on every fit (not our code, not actionable)
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
        yield


def _trainer_kwargs(trainer_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if trainer_cfg is not None:
        cfg = {k: v for k, v in dict(plain(trainer_cfg)).items() if not str(k).startswith("_")}
    bad = sorted(_RESERVED & set(cfg))
    if bad:
        raise GmvError(
            f"trainer config sets {bad}, which the training harness controls; remove them "
            "(max_iterations belongs to the experiment, checkpoints/logging to train_generator)"
        )
    kw = {"accelerator": "auto", "devices": "auto", "strategy": "auto", "precision": "32-true", "num_nodes": 1}
    kw.update(cfg)
    backend = kw.pop("process_group_backend", None)
    unused = kw.pop("find_unused_parameters", None)
    if backend is not None or unused is not None:
        strategy = kw.get("strategy")
        if not (isinstance(strategy, str) and strategy.startswith("ddp")):
            raise GmvError(
                f"process_group_backend/find_unused_parameters need a DDP strategy, got strategy={strategy!r}"
            )
        from lightning.pytorch.strategies import DDPStrategy

        start_method = "spawn" if strategy.startswith("ddp_spawn") else "popen"
        opts: dict[str, Any] = {"start_method": start_method}
        if backend is not None:
            opts["process_group_backend"] = backend
        if unused is not None or "find_unused_parameters_true" in strategy:
            opts["find_unused_parameters"] = bool(unused) if unused is not None else True
        kw["strategy"] = DDPStrategy(**opts)
    return kw


def build_trainer(trainer_cfg: Mapping[str, Any] | None, out_dir: str | Path, callbacks: list[Callback],
                  logger=None) -> L.Trainer:
    """The harness's `lightning.Trainer`: the hardware from `trainer_cfg` (see `train_generator`), no epoch or
    step limit (a callback stops it: `IterationStop`), the data stream's own sampling, `callbacks` in order.
    A progress bar shows when `callbacks` hold one (`IterationProgressBar`); checkpoints come from a
    `Checkpoint` callback among them (`IterationCheckpoint`)."""
    has_bar = any(isinstance(c, TQDMProgressBar) for c in callbacks)
    return L.Trainer(
        **_trainer_kwargs(trainer_cfg),
        max_epochs=-1,
        max_steps=-1,
        callbacks=list(callbacks),
        logger=logger if logger is not None else False,
        default_root_dir=str(out_dir),
        enable_checkpointing=any(isinstance(c, Checkpoint) for c in callbacks),
        enable_progress_bar=has_bar,
        use_distributed_sampler=False,
    )


def checkpoint_iteration(ckpt: Mapping[str, Any]) -> int:
    """The generator iteration a loaded harness checkpoint was taken at."""
    if "gmv" in ckpt:
        return int(ckpt["gmv"]["iteration"])
    sd = ckpt.get("state_dict", {})
    if "_iteration" in sd:
        return int(sd["_iteration"])
    raise GmvError("not a gmv training checkpoint (no iteration counter)")


def _checkpoint_iteration(path: Path) -> int:
    try:
        return checkpoint_iteration(torch.load(path, map_location="cpu", mmap=True, weights_only=False))
    except GmvError:
        raise GmvError(f"{path} is not a gmv training checkpoint (no iteration counter); move it away to retrain") \
            from None


def train_generator(module, datamodule, max_iterations: int, out_dir: str | Path,
                    trainer_cfg: Mapping[str, Any] | None = None, logger=None,
                    checkpoint_every: int = 1000, sample_every: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Train `module` on `datamodule` until `module.iteration >= max_iterations`, resuming from
    `out_dir/checkpoints/last.ckpt` when it exists.

    `trainer_cfg`: hardware settings for `lightning.Trainer` (accelerator, devices, strategy,
    precision, num_nodes, and optionally `process_group_backend`/`find_unused_parameters` for DDP,
    or other Trainer options such as log_every_n_steps). `logger`: a Lightning logger or None.
    `checkpoint_every`/`sample_every`: in generator iterations (0 disables; last.ckpt is still
    written when training ends). Returns wall time, iterations, images/s and the checkpoint path.
    """
    t0 = time.perf_counter()
    max_iterations = int(max_iterations)
    if max_iterations < 1:
        raise GmvError(f"max_iterations must be ≥ 1, got {max_iterations}")
    if checkpoint_every < 0 or sample_every < 0:
        raise GmvError("checkpoint_every and sample_every must be ≥ 0 (0 disables them)")
    if not hasattr(module, "iteration"):
        raise GmvError(f"{type(module).__name__} is not a GeneratorModule (it has no `iteration` counter)")
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    L.seed_everything(int(seed), verbose=False)

    resume = last.exists()
    start_iteration = _checkpoint_iteration(last) if resume else module.iteration
    result: dict[str, Any] = {
        "out_dir": str(out_dir),
        "resumed_from": str(last) if resume else None,
        "start_iteration": int(start_iteration),
        "checkpoint": str(last) if resume else None,
    }
    if start_iteration >= max_iterations:
        if resume and module.iteration != start_iteration:  # hand back the trained weights
            ckpt = torch.load(last, map_location="cpu", weights_only=False)
            module.load_state_dict(ckpt["state_dict"])
        wall = time.perf_counter() - t0
        result.update(wall_time_s=wall, train_time_s=0.0, iterations=int(start_iteration), iterations_run=0,
                      images=0, images_per_s=0.0, world_size=1)
        return result

    stop = IterationStop(max_iterations)
    rng = RNGStateCallback(seed)
    grids = SampleGrid(sample_every, out_dir / "samples", seed=seed)
    throughput = Throughput()
    ckpt_cb = IterationCheckpoint(ckpt_dir, checkpoint_every, max_iterations)
    bar = [iteration_progress(max_iterations)] if show_progress() else []
    trainer = build_trainer(trainer_cfg, out_dir, [rng, stop, throughput, grids, *bar, ckpt_cb], logger=logger)
    with quiet_fit_warnings():
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None, weights_only=False)

    wall = time.perf_counter() - t0
    train_time = (throughput.end or time.perf_counter()) - (throughput.start or t0)
    result.update(
        wall_time_s=wall,
        train_time_s=train_time,
        iterations=int(module.iteration),
        iterations_run=int(module.iteration) - int(start_iteration),
        images=throughput.images,
        images_per_s=throughput.images / train_time if train_time > 0 else math.nan,
        world_size=int(trainer.world_size),
        checkpoint=str(last),
        samples=[str(p) for p in grids.written],
    )
    return result
