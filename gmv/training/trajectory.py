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
import csv
import math
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.seed import isolate_rng

from gmv.data.imageset import ImageSet
from gmv.errors import GmvError
from gmv.io import save_figure, write_csv

COLUMNS = ["iteration", "t_statistic", "t_critical", "p_value", "auroc", "cohens_d", "mean_value_v1",
           "mean_value_v2", "fd", "fd_floor", "fd_ratio", "nn_dist_v1", "nn_dist_v2", "m", "k", "tau", "tau_used",
           "seconds"]
CSV_NAME = "trajectory.csv"
PNG_NAME = "trajectory.png"
ALPHA = 0.01  # the paper's significance level (one-sided)
N_BOOT = 200  # membership_stats' bootstrap: kept small, the CI is not part of a trajectory row


# --------------------------------------------------------------------------- numbers


def frechet_distance_fast(a: np.ndarray, b: np.ndarray, method: str = "auto") -> float:
    """Fréchet distance between Gaussians fitted to two N×D feature sets (sample covariances, ddof 1).

    `sqrtm`: `gmv.training.quality.frechet_distance` (D×D matrix square root). `svd`: the exact
    low-rank identity tr((Σa Σb)^½) = Σ singular values of (A Bᵀ) / √((na−1)(nb−1)) for centred
    A, B — an na×nb problem instead of a D×D one, exact even when N < D (where Σa Σb is singular and
    `sqrtm` is slow and unreliable). `auto`: `sqrtm` when D ≤ min(na, nb), else `svd`.
    """
    from gmv.training.quality import _as_features, frechet_distance

    a = _as_features(a, "frechet_distance (first set)")
    b = _as_features(b, "frechet_distance (second set)")
    if a.shape[1] != b.shape[1]:
        raise GmvError(f"frechet_distance: feature dimensions differ ({a.shape[1]} vs {b.shape[1]})")
    if method not in ("auto", "svd", "sqrtm"):
        raise GmvError(f"frechet_distance_fast: method must be auto, svd or sqrtm, got {method!r}")
    d = a.shape[1]
    if method == "sqrtm" or (method == "auto" and d <= min(len(a), len(b))):
        return frechet_distance(a, b)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = a - mu_a, b - mu_b
    tr_a = float(np.einsum("ij,ij->", ca, ca)) / (len(a) - 1)
    tr_b = float(np.einsum("ij,ij->", cb, cb)) / (len(b) - 1)
    small, large = (ca, cb) if len(ca) <= len(cb) else (cb, ca)
    sv = np.linalg.svd(small @ large.T, compute_uv=False)
    tr_sqrt = float(sv.sum()) / math.sqrt((len(a) - 1) * (len(b) - 1))
    diff = mu_a - mu_b
    return max(float(diff @ diff) + tr_a + tr_b - 2.0 * tr_sqrt, 0.0)


def welch_critical_t(v1: np.ndarray, v2: np.ndarray, alpha: float = ALPHA) -> float:
    """The one-sided Welch critical value t_(1−α, df), df by Welch–Satterthwaite (normal when undefined)."""
    from scipy import stats

    a, b = np.var(v1, ddof=1) / len(v1), np.var(v2, ddof=1) / len(v2)
    denom = (a * a / (len(v1) - 1) if a else 0.0) + (b * b / (len(v2) - 1) if b else 0.0)
    if denom == 0.0:
        return float(stats.norm.ppf(1.0 - alpha))
    return float(stats.t.ppf(1.0 - alpha, (a + b) ** 2 / denom))


@contextlib.contextmanager
def _module_state_preserved(module: torch.nn.Module):
    """Put every submodule's train/eval flag, buffer and plain scalar attribute back afterwards.

    Sampling may change state that training never reads but checkpoints hold (BigGAN recomputes its
    EMA generator's BatchNorm statistics and marks them fresh); restoring it keeps a run with the
    probe bit-identical to one without it.
    """
    flags = [(m, m.training) for m in module.modules()]
    buffers = [(m, name, None if b is None else b.detach().clone())
               for m in module.modules() for name, b in m._buffers.items()]
    scalars = [(m, {k: v for k, v in vars(m).items()
                    if k != "training" and type(v) in (bool, int, float)}) for m in module.modules()]
    try:
        yield
    finally:
        with torch.inference_mode(False), torch.no_grad():
            for m, name, saved in buffers:
                current = m._buffers.get(name)
                if saved is None or current is None or current.is_inference() \
                        or current.shape != saved.shape or current.dtype != saved.dtype:
                    m._buffers[name] = saved
                elif not torch.equal(current, saved):
                    current.copy_(saved)
        for m, attrs in scalars:
            for k, v in attrs.items():
                if getattr(m, k, v) is not v:
                    setattr(m, k, v)
        for m, was in flags:
            m.training = was


# --------------------------------------------------------------------------- the probe


class MembershipProbe:
    """RA2 on a small fresh sample X̂ of a generator, at any point of its training.

    `v1`/`v2`: the training half and the held-out half. `embedder`: a gmv Embedder (or anything
    `build_embedder` takes). `class_ids`: contiguous class ids whose proportions the m samples
    follow — X_v1's ids (the datamodule's `labels`) or the study's per-sample ids
    (`stages.sample_class_ids`); float per-class weights work too; None = unconditional (all class
    0). `label_values`: the original label of each class id (the datamodule's `class_ids`).
    `tau`, `k` and `distance` build the probe's GMValuator (exact matching). X̂ is drawn with `seed` every time, so the
    rows of one trajectory differ by the weights only.
    """

    def __init__(self, v1: ImageSet, v2: ImageSet, embedder, class_ids, label_values, m: int = 200,
                 k: int = 5, tau: float | str = 1.0, distance: str = "l2", seed: int = 0,
                 batch_size: int = 256):
        from gmv.training.sample import class_counts, class_ids_from_counts
        from gmv.valuation.embedders import build_embedder
        from gmv.valuation.methods import GMValuator

        if not isinstance(v1, ImageSet) or not isinstance(v2, ImageSet):
            raise GmvError("MembershipProbe needs X_v1 and X_v2 as ImageSets")
        if v1.shape != v2.shape:
            raise GmvError(f"X_v1 {v1.shape} and X_v2 {v2.shape} differ in image shape")
        if len(v1) < 2 or len(v2) < 2:
            raise GmvError(f"MembershipProbe needs ≥ 2 images per half, got {len(v1)} and {len(v2)}")
        self.m, self.k, self.seed, self.batch_size = int(m), int(k), int(seed), int(batch_size)
        if self.m < 2:
            raise GmvError(f"the probe needs m ≥ 2 samples (a Fréchet distance fits a Gaussian), got {m}")
        if not 1 <= self.k <= len(v1) + len(v2):
            raise GmvError(f"k must lie in 1..{len(v1) + len(v2)} (the pool size), got {k}")
        self.method = GMValuator(k=self.k, tau=tau, distance=str(distance))  # checks τ and the distance
        self.tau, self.distance = tau, str(distance)
        if class_ids is None:
            self.sample_ids = None
        else:
            self.sample_ids = class_ids_from_counts(class_counts(np.asarray(class_ids), self.m))
        self.label_values = None if label_values is None else np.asarray(label_values, np.int64)
        self.embedder = build_embedder(embedder)
        self.n_v1, self.n_v2 = len(v1), len(v2)
        self.emb_v1 = np.ascontiguousarray(self.embedder(v1.images, desc="embed X_v1"), dtype=np.float32)
        self.emb_v2 = np.ascontiguousarray(self.embedder(v2.images, desc="embed X_v2"), dtype=np.float32)
        self.emb_pool = np.ascontiguousarray(np.concatenate([self.emb_v1, self.emb_v2]))
        self.split = np.array(["v1"] * self.n_v1 + ["v2"] * self.n_v2)
        n_floor = min(self.m, self.n_v2)
        pick = np.sort(np.random.default_rng(self.seed).choice(self.n_v2, n_floor, replace=False))
        self.fd_floor = frechet_distance_fast(self.emb_v1, self.emb_v2[pick])

    def sample(self, module) -> ImageSet:
        """X̂: m images from the module's EMA weights (module state and global RNGs untouched)."""
        from gmv.training.sample import sample_imageset

        with _module_state_preserved(module), isolate_rng():
            module.eval()
            return sample_imageset(module, self.m, self.sample_ids, seed=self.seed, batch_size=self.batch_size,
                                   label_values=self.label_values, progress=False)

    def evaluate(self, module) -> dict[str, Any]:
        """One trajectory row (`COLUMNS`) for the module's current weights."""
        from gmv.analysis.ra1 import nearest_neighbour_distances
        from gmv.analysis.ra2 import membership_stats
        from gmv.valuation.matchers import MatcherConfig, match
        from gmv.valuation.methods import Evidence

        t0 = time.perf_counter()
        iteration = int(module.iteration)
        samples = self.sample(module)
        with isolate_rng():  # embedders and FAISS draw no random numbers; make sure of it
            emb = np.ascontiguousarray(self.embedder(samples.images, desc="embed X̂"), dtype=np.float32)
            tables = match(self.emb_pool, emb, self.k, MatcherConfig(kind="flat"), distance=self.distance)
            valued = self.method.value(Evidence(self.emb_pool, emb, self.split, tables))
            v1, v2 = valued.side("v1"), valued.side("v2")
            stats = membership_stats(v1, v2, alpha=ALPHA, n_boot=N_BOOT, seed=self.seed)
            fd = frechet_distance_fast(self.emb_v1, emb)
            nn = nearest_neighbour_distances(emb, self.emb_v1, self.emb_v2)
        return {
            "iteration": iteration,
            "t_statistic": stats["t_statistic"],
            "t_critical": welch_critical_t(v1, v2),
            "p_value": stats["p_value"],
            "auroc": stats["auroc"],
            "cohens_d": stats["cohens_d"],
            "mean_value_v1": stats["mean_value_v1"],
            "mean_value_v2": stats["mean_value_v2"],
            "fd": fd,
            "fd_floor": self.fd_floor,
            "fd_ratio": fd / self.fd_floor if self.fd_floor > 0 else math.inf,
            "nn_dist_v1": nn["nn_dist_gen_to_v1"],
            "nn_dist_v2": nn["nn_dist_gen_to_v2"],
            "m": self.m,
            "k": self.k,
            "tau": self.tau,
            "tau_used": valued.extras["tau"],
            "seconds": round(time.perf_counter() - t0, 3),
        }


# --------------------------------------------------------------------------- files


def _parse(value: str) -> Any:
    if value == "":
        return math.nan
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_trajectory(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a trajectory CSV (numbers parsed), or [] when there is none."""
    path = Path(path)
    if path.is_dir():
        path = path / CSV_NAME
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [{k: _parse(v) for k, v in r.items() if k is not None} for r in csv.DictReader(f)]
    for r in rows:
        if not isinstance(r.get("iteration"), int):
            raise GmvError(f"{path}: a row has no integer `iteration` ({r.get('iteration')!r}); not a trajectory CSV")
    return rows


def write_trajectory(rows: Iterable[Mapping[str, Any]], out_dir: str | Path,
                     title: str | None = None) -> tuple[Path, Path]:
    """Write rows (sorted by iteration) to `out_dir/trajectory.csv` and redraw `trajectory.png`, atomically."""
    rows = sorted(rows, key=lambda r: int(r["iteration"]))
    out_dir = Path(out_dir)
    csv_path = write_csv(out_dir / CSV_NAME, COLUMNS, [[r.get(c, "") for c in COLUMNS] for r in rows])
    png_path = plot_trajectory(rows, out_dir / PNG_NAME, title=title)
    return csv_path, png_path


def _numbers(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    out = []
    for r in rows:
        try:
            out.append(float(r.get(key, math.nan)))
        except (TypeError, ValueError):
            out.append(math.nan)
    return np.asarray(out, dtype=np.float64)


def plot_trajectory(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Three panels against generator iterations: Welch t (with the p = 0.01 line), AUROC (0.5 line),
    FD / floor (1.0 line)."""
    from matplotlib.figure import Figure

    rows = sorted(rows, key=lambda r: int(r["iteration"]))
    it = _numbers(rows, "iteration")
    fig = Figure(figsize=(12, 3.6), dpi=120)
    axes = fig.subplots(1, 3)
    style = dict(marker="o", ms=3.5, lw=1.4, color="tab:blue")

    ax = axes[0]
    ax.plot(it, _numbers(rows, "t_statistic"), label="Welch t (X_v1 > X_v2)", **style)
    crit = _numbers(rows, "t_critical")
    if np.isfinite(crit).any():
        ax.plot(it, crit, ls="--", lw=1.1, color="tab:red", drawstyle="steps-mid",
                label=f"critical t, one-sided p = {ALPHA:g}")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_title("Membership test: Welch t")
    ax.set_ylabel("t statistic")

    ax = axes[1]
    ax.plot(it, _numbers(rows, "auroc"), label="AUROC of φ (X_v1 vs X_v2)", **style)
    ax.axhline(0.5, ls="--", lw=1.1, color="tab:red", label="0.5 = no signal")
    ax.set_ylim(0.0, 1.0)
    ax.set_title("Membership signal: AUROC")
    ax.set_ylabel("AUROC")

    ax = axes[2]
    ratio = _numbers(rows, "fd_ratio")
    ax.plot(it, ratio, label="FD(X̂, X_v1) / FD(X_v2, X_v1)", **style)
    ax.axhline(1.0, ls="--", lw=1.1, color="tab:red", label="1.0 = held-out real data")
    finite = ratio[np.isfinite(ratio) & (ratio > 0)]
    if finite.size and finite.max() / max(finite.min(), 1e-12) > 20:
        ax.set_yscale("log")
    ax.set_title("Sample quality: FD / floor")
    ax.set_ylabel("Fréchet distance ratio")

    for ax in axes:
        ax.set_xlabel("generator iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(path, fig)


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


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A small text table: iteration, t (critical t), p, AUROC, FD/floor."""
    lines = [f"{'iteration':>9}  {'t':>8}  {'t_crit':>6}  {'p':>9}  {'AUROC':>6}  {'FD/floor':>9}"]
    for r in sorted(rows, key=lambda r: int(r["iteration"])):
        lines.append(f"{int(r['iteration']):>9}  {float(r['t_statistic']):>8.3f}  {float(r['t_critical']):>6.3f}  "
                     f"{float(r['p_value']):>9.2e}  {float(r['auroc']):>6.3f}  {float(r['fd_ratio']):>9.3g}")
    return "\n".join(lines)
