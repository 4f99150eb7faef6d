"""Gradient-based attribution baselines: TRAK (Park et al., ICML 2023) and D-TRAK (Zheng et al., ICLR 2024) for
diffusion models, through dattri.

TRAK attributes a model's output on a target to its training examples through randomly projected per-example
gradients: with Φ the n×k projected gradients of the training images and φ(x̂) a target's,

    τ(x̂, x_i) = φ(x̂) (ΦᵀΦ + λI)⁻¹ φ(x_i)ᵀ        (Q = 1: no probability reweighting, as D-TRAK)

For a diffusion model the gradients are those of a function of the denoiser averaged over a fixed set of
(timestep, noise) draws per image: TRAK's own choice is the diffusion loss L_simple = ‖ε̂ − ε‖² (`output="loss"`,
method `trak`); D-TRAK's is L_square = ‖ε̂‖² (`output="square"`, method `d_trak`), for training and generated images
alike — the function its paper found to attribute better (gmv/analysis/model_output.py holds both).

The kernel ΦᵀΦ comes from the images the generator was trained on (the first `n_train` pool images; the held-out
ones are scored with the same formula so that the method also reads in the RA2 tables). With fewer training images
than projection dimensions (here 100 against 512) ΦᵀΦ is singular, so λ > 0 is required: λ = ridge · tr(ΦᵀΦ) / n,
a fraction of the mean non-zero eigenvalue; the default ridge 1/√k is the random projection's own relative error
(Johnson–Lindenstrauss), below which eigen-directions are projection noise. D-TRAK's code adds a fixed 0.5·I on its
feature scale for the same reason. Everything is in float64.

gmv's code is the wrapper and the kernel solve: dattri (`AttributionTask`) gives the per-example gradients
(torch.func, divided by √(number of parameters) as dattri's TRAKAttributor does) and `random_project` the
projection; the solve is ours so that held-out images and a relative λ fit in — for training images the scores equal
dattri's `TRAKAttributor(regularization=λ)` (tests/test_dtrak.py checks it).

Why dattri and not traker: both run on a CPU (traker's fast projector is CUDA-only; both fall back to a basic
one), but dattri (0.3.0, 2026) is maintained, takes any `loss(params, example)` written with torch.func — the
diffusion functions need no fork of the library, as D-TRAK's own code needed of traker (0.3.2, 2024) — and ships
the LDS metric gmv reads (gmv/analysis/lds.py).

As a `Valuator`: τ(x̂_j, x_i) for every generated image j and pool image i (`attribute`), and the value of a
pool image is the sum over targets, φ_i = Σ_j τ(x̂_j, x_i). It needs the trained generator: a study binds it
(`bind`) before valuing; gmv-value, which has only images, skips it with a reason. It costs per-example gradients
of the whole denoiser: seconds per image and draw on a CPU (the cost-next-to-quality table reports it).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from gmv.errors import GmvError


OUTPUTS = ("square", "loss")  # D-TRAK's L_square, TRAK's L_simple


class DTRAK:
    needs_reference = False
    needs_model = True

    def __init__(self, timesteps: int = 10, proj_dim: int = 512, batch_size: int = 8, seed: int = 0,
                 targets: int | None = None, output: str = "square", ridge: float | None = None):
        for what, v in (("timesteps", timesteps), ("proj_dim", proj_dim), ("batch_size", batch_size),
                        ("targets", 1 if targets is None else targets)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise GmvError(f"D-TRAK: {what} must be an integer ≥ 1, got {v!r}")
        if output not in OUTPUTS:
            raise GmvError(f"D-TRAK: output must be one of {', '.join(OUTPUTS)} (square: D-TRAK's ‖ε̂‖²; loss: TRAK's "
                           f"diffusion loss), got {output!r}")
        if ridge is not None and not (isinstance(ridge, (int, float)) and not isinstance(ridge, bool) and ridge > 0):
            raise GmvError(f"D-TRAK: ridge must be a number > 0 (λ as a fraction of the kernel's mean eigenvalue), "
                           f"got {ridge!r}")
        self.timesteps, self.proj_dim, self.batch_size, self.seed = timesteps, proj_dim, batch_size, int(seed)
        self.targets = targets  # attribute only the first `targets` generated images (None: all); the rest score 0
        self.output = output
        self.name = "d_trak" if output == "square" else "trak"
        self.ridge = float(ridge) if ridge is not None else 1.0 / proj_dim ** 0.5
        self._bound: dict[str, Any] | None = None
        self._scores: np.ndarray | None = None
        self.seconds: float | None = None

    @property
    def bound(self) -> bool:
        return self._bound is not None

    def needs_k(self) -> int:
        return 0

    def bind(self, module, pool_images: np.ndarray, pool_ids: np.ndarray, gen_images: np.ndarray,
             gen_ids: np.ndarray, n_train: int | None = None) -> None:
        """The trained generator (a CFGDiffusion: an EMA denoiser `ema_unet` and its `noise_scheduler`), the pool and
        generated images (uint8 N×H×W×C) with their class ids (the generator's contiguous ids), and how many of the
        pool's first images it was trained on (None: all) — the kernel's images."""
        if not (hasattr(module, "ema_unet") and hasattr(module, "noise_scheduler")):
            raise GmvError(f"D-TRAK attributes diffusion models; {type(module).__name__} has no denoiser "
                           "(ema_unet) and noise scheduler")
        n_train = len(pool_images) if n_train is None else int(n_train)
        if not 1 <= n_train <= len(pool_images):
            raise GmvError(f"D-TRAK: n_train must be 1…{len(pool_images)} (the pool's first images, those the "
                           f"generator trained on), got {n_train}")
        self._bound = {"module": module, "pool": (pool_images, pool_ids), "gen": (gen_images, gen_ids),
                       "n_train": n_train}
        self._scores = None

    def _loader(self, images: np.ndarray, ids: np.ndarray, seed: int):
        """The examples with their fixed draws (gmv/analysis/model_output.py: the draws LDS outputs use)."""
        import torch

        from gmv.analysis.model_output import fixed_draws, pixels_to_model

        x = pixels_to_model(images)
        y = torch.as_tensor(np.asarray(ids), dtype=torch.long)
        n_train = self._bound["module"].noise_scheduler.config.num_train_timesteps
        t, noise = fixed_draws(len(x), self.timesteps, n_train, tuple(x.shape[1:]), seed)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y, t, noise), batch_size=self.batch_size,
                                           shuffle=False)

    def task(self):
        """dattri's AttributionTask for the bound generator's EMA denoiser and this method's output function."""
        from dattri.task import AttributionTask

        from gmv.analysis.model_output import example_loss, example_square_norm

        module = self._bound["module"]
        net = copy.deepcopy(module.ema_unet).eval().requires_grad_(True)
        scheduler = module.noise_scheduler
        fn = example_square_norm if self.output == "square" else example_loss

        def output(params, example):
            x, y, t, noise = example  # one image C×H×W, its class id, its timesteps and noises
            return fn(net, scheduler, x, y, t, noise, params=params)

        return AttributionTask(loss_func=output, model=net, checkpoints=net.state_dict())

    def features(self, task, images: np.ndarray, ids: np.ndarray, seed: int, what: str):
        """n×k float64: the projected per-example gradients (dattri's gradient function and projector, with the
        scaling dattri's TRAKAttributor applies)."""
        import torch
        from dattri.func.projection import random_project

        from gmv.console import progress_bar

        params, _ = task.get_param(ckpt_idx=0)
        grad = task.get_grad_loss_func(in_dims=(None, 0))
        scale = sum(p.numel() for p in task.get_model().parameters() if p.requires_grad) ** 0.5
        rows = []
        for batch in progress_bar(self._loader(images, ids, seed), desc=f"{self.name}: gradients of {what}",
                                  unit="batch", leave=False):
            g = torch.nan_to_num(grad(params, batch)) / scale
            project = random_project(g, len(g), proj_dim=self.proj_dim, proj_max_batch_size=32, proj_seed=self.seed,
                                     device="cpu")
            rows.append(project(g, ensemble_id=0).detach())
        return torch.cat(rows).double()

    def attribute(self, evidence=None) -> np.ndarray:
        """m×N: τ(x̂_j, x_i) (computed once per binding)."""
        if self._scores is not None:
            return self._scores
        if self._bound is None:
            raise GmvError("D-TRAK needs the trained generator: value it within a study (which binds it), not "
                           "from images alone")
        import warnings

        t0 = time.perf_counter()
        task = self.task()
        (pool, pool_ids), (gen, gen_ids) = self._bound["pool"], self._bound["gen"]
        n = len(gen) if self.targets is None else min(self.targets, len(gen))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*batching rule.*")  # functorch performance notes
            phi_pool = self.features(task, pool, pool_ids, self.seed, "the pool")
            phi_gen = self.features(task, gen[:n], gen_ids[:n], self.seed + 1, "the targets")
        self._scores = np.zeros((len(gen), len(pool)))
        self._scores[:n] = trak_scores(phi_gen, phi_pool[: self._bound["n_train"]], phi_pool, self.ridge).numpy()
        self.seconds = time.perf_counter() - t0
        return self._scores

    def value(self, evidence):
        from gmv.valuation.methods import MethodResult

        a = self.attribute(evidence)
        if a.shape[1] != evidence.n_pool or a.shape[0] != len(evidence.gen_emb):
            raise GmvError(f"D-TRAK was bound to {a.shape[1]} pool and {a.shape[0]} generated images, the valuation "
                           f"has {evidence.n_pool} and {len(evidence.gen_emb)}")
        extras = {"timesteps": self.timesteps, "proj_dim": self.proj_dim, "output": self.output,
                  "ridge": round(self.ridge, 6), "n_train": self._bound["n_train"],
                  "seconds": round(self.seconds or 0.0, 3),
                  "targets": int(len(a) if self.targets is None else min(self.targets, len(a)))}
        return MethodResult(self.name, a.sum(axis=0), evidence.split, extras, {"attributions": a})


def trak_scores(phi_targets, phi_train, phi_pool, ridge: float):
    """TRAK's scores φ(x̂) (ΦᵀΦ + λI)⁻¹ φ(x_i)ᵀ of every target (rows) against every pool image (columns), the kernel
    from the training images' features Φ and λ = ridge · tr(ΦᵀΦ) / n (torch float64 in, torch out)."""
    import torch

    kernel = phi_train.T @ phi_train
    lam = ridge * float(torch.trace(kernel)) / len(phi_train)
    kernel.diagonal().add_(lam)
    return phi_targets @ torch.linalg.solve(kernel, phi_pool.T)
