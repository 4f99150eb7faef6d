"""Training trajectories: *when* during training does a generator start to carry membership signal?

At chosen generator iterations the RA2 test is repeated on a fresh, small sample X̂ from the EMA
weights: X̂ is embedded, matched (exact K-NN) against the pool X_v1 ∪ X_v2, valued (Eq. 5–6), and
the values of X_v1 are compared with those of X_v2 (one-sided Welch t, AUROC, Cohen's d). Beside
it go the sample quality (Fréchet distance of X̂ to X_v1 in the same embedding, and its floor: the
distance of an equally large random subset of X_v2 to X_v1) and how close X̂ comes to either half.

- `MembershipProbe(v1, v2, embedder, class_ids, label_values, m, k, tau, distance, seed)`: embeds
  X_v1 and X_v2 once; `probe.evaluate(module)` → one flat row (see `COLUMNS`). It leaves the
  module exactly as it found it (train/eval flags, buffers such as BigGAN's standing statistics and
  plain attributes) and the global Python/NumPy/torch RNGs untouched, so a training run with the
  probe ends bit-identical to one without it.
- `TrajectoryCallback(probe, every, out_dir)`: a Lightning callback, run every `every` generator
  iterations (and after the last one) on rank 0; it keeps `out_dir/trajectory.csv` and
  `out_dir/trajectory.png` up to date and logs `trajectory/<column>` to the trainer's loggers.
  On a resumed run the rows already in the CSV are kept and their iterations not evaluated again.
- `attach_callbacks(module, *callbacks)` / `train_with_trajectory(...)`: `train_generator` owns
  the Trainer's callback list, so extra callbacks enter through the module's
  `configure_callbacks` hook (Lightning merges what it returns into the list).
- `evaluate_checkpoints(module, checkpoints, probe, out_dir)`: the same rows post hoc, from saved
  `iter_XXXXXX.ckpt` / `last.ckpt` files.

CSV columns (`COLUMNS`), one row per evaluated iteration, sorted by iteration:

    iteration      generator iterations trained (module.iteration)
    t_statistic    one-sided Welch t, H1: mean φ(X_v1) > mean φ(X_v2)
    t_critical     the t the one-sided test needs for p < 0.01 (Welch–Satterthwaite df)
    p_value        its one-sided p-value
    auroc          P(φ of a random X_v1 image > φ of a random X_v2 image), ties half
    cohens_d       standardised mean difference (pooled SD)
    mean_value_v1, mean_value_v2   mean φ per half (Σ φ = m)
    fd             Fréchet distance of X̂ to X_v1 in the embedding
    fd_floor       the same for min(m, |X_v2|) random X_v2 images (what a perfect generator scores)
    fd_ratio       fd / fd_floor (1 = as close to X_v1 as held-out real data)
    nn_dist_v1, nn_dist_v2         mean Euclidean distance of X̂ to its nearest X_v1 / X_v2 image
    m, k, tau      the probe's settings (tau as given: a number or "auto")
    tau_used       the numeric τ of this row (differs from tau under tau = "auto", which is resolved
                   on each row's own distance table)
    seconds        wall time of the evaluation
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from lightning.pytorch.callbacks import Callback

from gmv.errors import GmvError
from gmv.training.trajectory_files import (CSV_NAME, PNG_NAME, format_table, plot_trajectory, read_trajectory,
                                          write_trajectory)
from gmv.training.trajectory_probe import COLUMNS, MembershipProbe, welch_critical_t

__all__ = ["COLUMNS", "CSV_NAME", "PNG_NAME", "MembershipProbe", "TrajectoryCallback", "attach_callbacks",
           "evaluate_checkpoints", "format_table", "load_checkpoint_weights",
           "plot_trajectory", "read_trajectory", "train_with_trajectory", "welch_critical_t", "write_trajectory"]


def _log_row(loggers: Sequence[Any], row: Mapping[str, Any]) -> None:
    metrics = {}
    for k, v in row.items():
        if k == "iteration" or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        metrics[f"trajectory/{k}"] = float(v)
    for logger in loggers:
        try:
            logger.log_metrics(metrics, step=int(row["iteration"]))
        except Exception as e:  # logging must never kill a training run
            warnings.warn(f"could not log the trajectory row to {type(logger).__name__}: {e}", stacklevel=2)


# --------------------------------------------------------------------------- during training


class TrajectoryCallback(Callback):
    """Runs `probe` every `every` generator iterations (module.iteration; once per iteration value)
    and after the last one, on rank 0; keeps `out_dir/trajectory.csv`/`.png` and logs
    `trajectory/<column>` to `trainer.loggers` at step = iteration. `at_start` also evaluates the
    iteration training starts from (e.g. the untrained generator at 0). Rows already in the CSV
    (a resumed run) are kept, and their iterations are not evaluated again.

    The callback holds no checkpoint state, and the probe restores the module and the RNGs, so the
    training run is bit-identical with and without it. A GmvError during evaluation (e.g. NaN
    samples of a diverged run) is reported as a warning and training goes on.
    """

    def __init__(self, probe: MembershipProbe, every: int, out_dir: str | Path, at_start: bool = False,
                 title: str | None = None):
        if int(every) < 0:
            raise GmvError(f"every must be ≥ 0 (0: only after the last iteration), got {every}")
        self.probe = probe
        self.every = int(every)
        self.out_dir = Path(out_dir)
        self.at_start = bool(at_start)
        self.title = title
        earlier = read_trajectory(self.out_dir / CSV_NAME)  # a resumed run keeps these rows
        self.rows: dict[int, dict[str, Any]] = {int(r["iteration"]): r for r in earlier}

    @property
    def iterations(self) -> list[int]:
        return sorted(self.rows)

    def on_train_start(self, trainer, pl_module) -> None:
        if self.at_start:
            self._maybe_run(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = int(pl_module.iteration)
        if self.every > 0 and it > 0 and it % self.every == 0:
            self._maybe_run(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._maybe_run(trainer, pl_module)

    def _maybe_run(self, trainer, pl_module) -> None:
        it = int(pl_module.iteration)
        if it in self.rows or not trainer.is_global_zero:
            return
        try:
            row = self.probe.evaluate(pl_module)
        except GmvError as e:
            warnings.warn(f"no trajectory row at iteration {it}: {e}", stacklevel=2)
            return
        self.rows[it] = row
        write_trajectory(self.rows.values(), self.out_dir, title=self.title)
        _log_row(trainer.loggers, row)


@contextlib.contextmanager
def attach_callbacks(module, *callbacks: Callback):
    """Make the next `trainer.fit(module)` (e.g. inside `train_generator`, which owns the Trainer's
    callback list) also run `callbacks`: Lightning merges what `module.configure_callbacks()`
    returns into the trainer's callbacks (checkpoint callbacks still run last)."""
    had = "configure_callbacks" in vars(module)
    previous = vars(module).get("configure_callbacks")
    original = module.configure_callbacks

    def configure_callbacks():
        own = original()
        own = [] if own is None else ([own] if isinstance(own, Callback) else list(own))
        return own + list(callbacks)

    module.configure_callbacks = configure_callbacks
    try:
        yield module
    finally:
        if had:
            module.configure_callbacks = previous
        else:
            del module.configure_callbacks


def train_with_trajectory(module, datamodule, max_iterations: int, out_dir: str | Path, probe: MembershipProbe,
                          every: int, trajectory_dir: str | Path | None = None, at_start: bool = False,
                          **train_kwargs) -> dict[str, Any]:
    """`train_generator(module, datamodule, max_iterations, out_dir, **train_kwargs)` with a
    TrajectoryCallback writing to `trajectory_dir` (default `out_dir`). Returns the harness's
    result plus `trajectory` (the rows, sorted by iteration)."""
    from gmv.training.train import train_generator

    cb = TrajectoryCallback(probe, every, trajectory_dir or out_dir, at_start=at_start)
    with attach_callbacks(module, cb):
        result = train_generator(module, datamodule, max_iterations, out_dir, **train_kwargs)
    result["trajectory"] = [cb.rows[i] for i in cb.iterations]
    return result


# --------------------------------------------------------------------------- post hoc


def load_checkpoint_weights(module, path: str | Path) -> int:
    """Load a harness checkpoint's weights (state_dict) into `module`; returns its iteration."""
    path = Path(path)
    if not path.is_file():
        raise GmvError(f"checkpoint {path} not found")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)  # our own files: RNG tuples etc.
    if "state_dict" not in ckpt:
        raise GmvError(f"{path} holds no state_dict; not a Lightning checkpoint")
    module.load_state_dict(ckpt["state_dict"])
    if hasattr(module, "on_load_checkpoint"):
        module.on_load_checkpoint(ckpt)  # e.g. BigGAN: standing statistics are stale now
    return int(module.iteration)


def evaluate_checkpoints(module, checkpoints: Sequence[str | Path], probe: MembershipProbe,
                         out_dir: str | Path | None, resume: bool = False, title: str | None = None,
                         progress: bool = True) -> list[dict[str, Any]]:
    """Trajectory rows from saved checkpoints: each one's weights are loaded into `module` (which
    keeps the last one's) and probed. Checkpoints of an iteration already evaluated are skipped
    (last.ckpt is usually a link to the newest iter_XXXXXX.ckpt). Writes `out_dir/trajectory.csv`
    and `.png` (when out_dir is given) after each checkpoint; `resume` keeps the rows already there
    and skips their iterations, otherwise the files are replaced. Returns the rows by iteration."""
    rows: dict[int, dict[str, Any]] = {}
    if resume and out_dir is not None:
        rows = {int(r["iteration"]): r for r in read_trajectory(Path(out_dir) / CSV_NAME)}
    done_here: set[int] = set()
    for path in checkpoints:
        it = load_checkpoint_weights(module, path)
        if it in done_here or it in rows:
            continue
        row = probe.evaluate(module)
        rows[it] = row
        done_here.add(it)
        if progress:
            print(f"[trajectory] iteration {it}: t = {row['t_statistic']:.3f}, AUROC = {row['auroc']:.3f}, "
                  f"FD/floor = {row['fd_ratio']:.3g} ({Path(path).name}, {row['seconds']:.1f} s)", flush=True)
        if out_dir is not None:
            write_trajectory(rows.values(), out_dir, title=title)
    return [rows[i] for i in sorted(rows)]
