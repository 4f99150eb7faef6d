"""The membership probe of a training trajectory: at one moment of training, draw a small X̂ from the
EMA weights, value it against X_v1 ∪ X_v2 and return one row of RA2 numbers (see gmv/training/trajectory.py
for the columns). The probe leaves the module and the global RNGs exactly as it found them.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities.seed import isolate_rng

from gmv.data.imageset import ImageSet
from gmv.errors import GmvError
from gmv.training.quality import frechet_distance

COLUMNS = ["iteration", "t_statistic", "t_critical", "p_value", "auroc", "cohens_d", "mean_value_v1",
           "mean_value_v2", "fd", "fd_floor", "fd_ratio", "nn_dist_v1", "nn_dist_v2", "m", "k", "tau", "tau_used",
           "seconds"]
ALPHA = 0.01  # the paper's significance level (one-sided)
N_BOOT = 200  # membership_summary's bootstraps: kept small, the CI is not part of a trajectory row


# --------------------------------------------------------------------------- numbers


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
        self.fd_floor = frechet_distance(self.emb_v1, self.emb_v2[pick])

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
        from gmv.analysis.membership import membership_summary
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
            stats = membership_summary(v1, v2, alpha=ALPHA, n_boot=N_BOOT, seed=self.seed, n_boot_diff=N_BOOT)
            fd = frechet_distance(self.emb_v1, emb)
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
