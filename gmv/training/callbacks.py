"""The training harness's Lightning callbacks (gmv/training/train.py puts them together):

- `RNGStateCallback`   saves every rank's Python/NumPy/torch RNG states in checkpoints and restores them before
                       the first batch after a resume (bit-identical resumption).
- `IterationStop`      stops at `max_iterations` generator iterations (not Lightning's global_step).
- `IterationCheckpoint` `last.ckpt` + `iter_XXXXXX.ckpt` every N iterations, atomically.
- `SampleGrid`         a preview grid from fixed noise every N iterations, to PNG and the loggers.
- `IterationProgressBar` tqdm's bar counting generator iterations (in a terminal).
- `IterationLogLines`  the same count as one line per 10% (output to a log file).
- `iteration_progress` the one of the two that fits where the output goes.
- `Throughput`         images per second of the run.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from pathlib import Path
from typing import Any, Mapping

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, TQDMProgressBar
from lightning.pytorch.utilities.seed import isolate_rng

from gmv.errors import GmvError
from gmv.io import link_or_copy


# --------------------------------------------------------------------------- RNG state


def _rng_state() -> dict[str, Any]:
    """This process's global RNG states in a `torch.load(weights_only=True)`-friendly form."""
    version, mt, gauss = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": (int(version), tuple(int(v) for v in mt), gauss),
        "numpy": {
            "key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in mt), gauss))
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["key"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]), float(n["cached_gaussian"]))
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _seed_process(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class RNGStateCallback(Callback):
    """Saves every rank's global Python, NumPy and torch (and CUDA) RNG states in the checkpoint
    and reinstates them right before the first training batch after a restore, so the random
    numbers a resumed run draws are exactly those the uninterrupted run drew.

    Under DDP every rank is reseeded with `seed + global_rank` at setup (distinct noise per rank).
    """

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._pending: Mapping[str, Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size > 1:
            _seed_process(self.seed + trainer.global_rank)

    def state_dict(self) -> dict[str, Any]:
        mine = _rng_state()
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            states: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(states, mine)
        else:
            states = [mine]
        return {"states": states}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = state_dict["states"]
        rank = torch.distributed.get_rank() if (
            torch.distributed.is_available() and torch.distributed.is_initialized()) else 0
        if len(states) <= rank:
            warnings.warn(
                f"the checkpoint holds RNG states for {len(states)} process(es), this is rank {rank}: "
                "resuming with a different number of processes is not bit-reproducible", stacklevel=2
            )
        self._pending = states[rank % len(states)]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._pending is not None:
            _set_rng_state(self._pending)
            self._pending = None


# --------------------------------------------------------------------------- stop / checkpoints


class IterationStop(Callback):
    """Sets `trainer.should_stop` once `module.iteration >= max_iterations`."""

    def __init__(self, max_iterations: int):
        self.max_iterations = int(max_iterations)

    def on_train_start(self, trainer, pl_module) -> None:
        if pl_module.iteration >= self.max_iterations:
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.iteration >= self.max_iterations:
            trainer.should_stop = True


class IterationCheckpoint(Checkpoint):
    """`last.ckpt` + `iter_XXXXXX.ckpt` every `every` generator iterations, and `last.ckpt` when
    training stops. A `Checkpoint` subclass, so Lightning runs it after the other callbacks."""

    def __init__(self, dirpath: str | Path, every: int, max_iterations: int):
        self.dirpath = Path(dirpath)
        self.every = int(every)
        self.max_iterations = int(max_iterations)
        self._saved_at: int | None = None  # iteration of the newest last.ckpt
        self.last_path = self.dirpath / "last.ckpt"

    def on_train_start(self, trainer, pl_module) -> None:
        # train_generator resumes from last.ckpt whenever it exists: that state is saved already
        self._saved_at = pl_module.iteration if self.last_path.exists() else None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        if it == self._saved_at:
            return
        periodic = self.every > 0 and it > 0 and it % self.every == 0
        if periodic or it >= self.max_iterations or trainer.should_stop:
            self._save(trainer, it, periodic)

    def on_train_end(self, trainer, pl_module) -> None:
        if pl_module.iteration != self._saved_at:
            self._save(trainer, pl_module.iteration, periodic=False)

    def _save(self, trainer: L.Trainer, iteration: int, periodic: bool) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        target = self.dirpath / f"iter_{iteration:06d}.ckpt" if periodic else self.last_path
        tmp = target.with_name(f".{target.name}.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # every rank builds it; rank 0 writes it
        if trainer.is_global_zero:
            os.replace(tmp, target)
            if periodic:  # last.ckpt: a hard link to the same bytes (a copy where links fail)
                link_or_copy(target, self.last_path)
        trainer.strategy.barrier("gmv-checkpoint")
        self._saved_at = iteration

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint["gmv"] = {"iteration": int(pl_module.iteration), "max_iterations": self.max_iterations}


# --------------------------------------------------------------------------- samples / progress


def grid_columns(n_classes: int) -> int:
    """Columns of a preview grid: one per class when there are 2–10 classes, else 8."""
    return n_classes if 1 < n_classes <= 10 else 8


def _grid_labels(n_classes: int, n_max: int = 64) -> tuple[np.ndarray, int]:
    """Class ids for a preview grid (each column one class when there are ≤ 10) and its row width."""
    nrow = grid_columns(n_classes)
    n = nrow * max(1, n_max // nrow)
    return np.arange(n, dtype=np.int64) % n_classes, nrow


class SampleGrid(Callback):
    """Every `every` iterations: a grid of samples from fixed noise (seed) to PNG and the logger."""

    def __init__(self, every: int, out_dir: str | Path, seed: int = 0, n_max: int = 64):
        self.every = int(every)
        self.out_dir = Path(out_dir)
        self.seed = int(seed)
        self.n_max = int(n_max)
        self._done_at: int | None = None
        self.written: list[Path] = []

    def on_train_start(self, trainer, pl_module) -> None:
        self._done_at = pl_module.iteration  # no grid for the iteration we start from

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        if self.every <= 0 or it == self._done_at or it % self.every:
            return
        self._done_at = it
        if trainer.is_global_zero:
            self.write(trainer, pl_module, it)

    def write(self, trainer, pl_module, iteration: int) -> Path | None:
        from gmv.training.sample import _module_training_flags, _restore_training_flags, generate_uint8, save_grid

        ids, nrow = _grid_labels(int(getattr(pl_module, "n_classes", 1)), self.n_max)
        flags = _module_training_flags(pl_module)
        pl_module.eval()
        try:
            # isolated: sampling must not move the global RNGs the training run depends on
            with isolate_rng(), torch.inference_mode():
                gen = torch.Generator(device="cpu").manual_seed(self.seed)
                images = generate_uint8(pl_module, torch.from_numpy(ids).to(pl_module.device), gen)
        except GmvError as e:  # e.g. NaN samples: report, but leave the decision to stop to others
            warnings.warn(f"no sample grid at iteration {iteration}: {e}", stacklevel=2)
            return None
        finally:
            _restore_training_flags(flags)
        path = save_grid(images, self.out_dir / f"iter_{iteration:06d}.png", nrow=nrow)
        self.written.append(path)
        self._log(trainer, path, iteration)
        return path

    @staticmethod
    def _log(trainer, path: Path, iteration: int) -> None:
        for logger in trainer.loggers:
            try:
                if hasattr(logger, "log_image"):  # W&B (and other image-capable loggers)
                    logger.log_image(key="samples", images=[str(path)], step=trainer.global_step,
                                     caption=[f"iteration {iteration}"])
                elif hasattr(getattr(logger, "experiment", None), "add_image"):  # TensorBoard
                    from PIL import Image

                    img = np.asarray(Image.open(path).convert("RGB"))
                    logger.experiment.add_image("samples", img, global_step=iteration, dataformats="HWC")
            except Exception as e:  # logging a preview must never kill a training run
                warnings.warn(f"could not log the sample grid to {type(logger).__name__}: {e}", stacklevel=2)


class IterationProgressBar(TQDMProgressBar):
    """The usual tqdm bar, counting generator iterations towards `max_iterations`."""

    def __init__(self, max_iterations: int, refresh_rate: int = 1):
        super().__init__(refresh_rate=refresh_rate)
        self.max_iterations = int(max_iterations)

    def _configure(self, pl_module) -> None:
        bar = self.train_progress_bar
        if bar is None:
            return
        bar.reset(total=self.max_iterations)
        bar.n = bar.initial = pl_module.iteration if pl_module is not None else 0  # rate: this run only
        bar.set_description("iterations")
        bar.refresh()

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._configure(pl_module)  # a resumed run continues mid-epoch: no epoch-start hook

    def on_train_epoch_start(self, trainer, pl_module=None, *args) -> None:
        super().on_train_epoch_start(trainer)
        self._configure(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        n = pl_module.iteration
        bar = self.train_progress_bar
        if bar is not None and self._should_update(n, self.max_iterations) and n != bar.n:
            bar.n = n
            bar.set_postfix(self.get_metrics(trainer, pl_module))
            bar.refresh()


class IterationLogLines(Callback):
    """Training progress for a log file: a line at the start and at every further 10% of `max_iterations`
    (`gmv.console.progress_bar`'s log form), with the progress-bar metrics (losses) on each line."""

    def __init__(self, max_iterations: int):
        self.max_iterations = int(max_iterations)
        self.bar = None

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            import sys

            from gmv.console import progress_bar

            self.bar = progress_bar(total=self.max_iterations, initial=pl_module.iteration, desc="iterations",
                                    unit="it", file=sys.stdout, leave=True, smoothing=0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.bar is not None and pl_module.iteration != self.bar.n:
            self.bar.set_postfix({k: f"{float(v):.3g}" for k, v in trainer.progress_bar_metrics.items()}, refresh=False)
            self.bar.update(pl_module.iteration - self.bar.n)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def iteration_progress(max_iterations: int) -> Callback:
    """`IterationProgressBar` when stdout (where Lightning's bar goes) is a terminal, else `IterationLogLines`."""
    import sys

    from gmv.console import is_terminal

    return IterationProgressBar(max_iterations) if is_terminal(sys.stdout) else IterationLogLines(max_iterations)


class Throughput(Callback):
    def __init__(self):
        self.images = 0
        self.start: float | None = None
        self.end: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        self.images += int(len(x)) * int(trainer.world_size)

    def on_train_end(self, trainer, pl_module) -> None:
        self.end = time.perf_counter()
