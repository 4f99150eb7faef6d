"""A gradient-based attribution baseline: D-TRAK (Zheng et al., ICLR 2024) through dattri's TRAK.

TRAK (Park et al., ICML 2023) attributes a model's output on a target to its training examples from
randomly projected per-example gradients; D-TRAK applies it to diffusion models with the diffusion loss as
both the training function and the model output, averaged over a fixed set of (timestep, noise) draws per
image. gmv's code is only the wrapper: the loss of one image under the generator's EMA denoiser at its own
seeded draws, given to `dattri.task.AttributionTask`; `dattri.algorithm.trak.TRAKAttributor` does the rest
(projection, kernel, scores), with Q = 1 (no probability reweighting, as D-TRAK).

Why dattri and not traker: both run on a CPU (traker's fast projector is CUDA-only; both fall back to a basic
one), but dattri (0.3.0, 2026) is maintained, takes any `loss(params, example)` written with torch.func — the
diffusion loss needs no fork of the library, as D-TRAK's own code needed of traker (0.3.2, 2024) — and ships
the LDS metric gmv reads (gmv/analysis/lds.py).

As a `Valuator`: τ(x̂_j, x_i) for every generated image j and pool image i (`attribute`), and the value of a
pool image is the sum over targets, φ_i = Σ_j τ(x̂_j, x_i), so it reads in the RA2 tables beside the others.
It needs the trained generator: a study binds it (`bind`) before valuing; gmv-value, which has only images,
skips it with a reason. It costs per-example gradients of the whole denoiser: seconds per image and draw on a
CPU (a cost the cost-next-to-quality table reports).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from gmv.errors import GmvError


class DTRAK:
    name = "d_trak"
    needs_reference = False
    needs_model = True

    def __init__(self, timesteps: int = 10, proj_dim: int = 512, batch_size: int = 8, seed: int = 0,
                 targets: int | None = None):
        for what, v in (("timesteps", timesteps), ("proj_dim", proj_dim), ("batch_size", batch_size),
                        ("targets", 1 if targets is None else targets)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise GmvError(f"D-TRAK: {what} must be an integer ≥ 1, got {v!r}")
        self.timesteps, self.proj_dim, self.batch_size, self.seed = timesteps, proj_dim, batch_size, int(seed)
        self.targets = targets  # attribute only the first `targets` generated images (None: all); the rest score 0
        self._bound: dict[str, Any] | None = None
        self._scores: np.ndarray | None = None
        self.seconds: float | None = None

    @property
    def bound(self) -> bool:
        return self._bound is not None

    def needs_k(self) -> int:
        return 0

    def bind(self, module, pool_images: np.ndarray, pool_ids: np.ndarray, gen_images: np.ndarray,
             gen_ids: np.ndarray) -> None:
        """The trained generator (a CFGDiffusion: an EMA denoiser `ema_unet` and its `noise_scheduler`) and the
        pool and generated images (uint8 N×H×W×C) with their class ids (the generator's contiguous ids)."""
        if not (hasattr(module, "ema_unet") and hasattr(module, "noise_scheduler")):
            raise GmvError(f"D-TRAK attributes diffusion models; {type(module).__name__} has no denoiser "
                           "(ema_unet) and noise scheduler")
        self._bound = {"module": module, "pool": (pool_images, pool_ids), "gen": (gen_images, gen_ids)}
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

    def attribute(self, evidence=None) -> np.ndarray:
        """m×N: τ(x̂_j, x_i) (computed once per binding)."""
        if self._scores is not None:
            return self._scores
        if self._bound is None:
            raise GmvError("D-TRAK needs the trained generator: value it within a study (which binds it), not "
                           "from images alone")
        import torch
        from dattri.algorithm.trak import TRAKAttributor
        from dattri.task import AttributionTask

        from gmv.analysis.model_output import example_loss

        t0 = time.perf_counter()
        module = self._bound["module"]
        net = copy.deepcopy(module.ema_unet).eval().requires_grad_(True)
        scheduler = module.noise_scheduler

        def diffusion_loss(params, example):
            x, y, t, noise = example  # one image C×H×W, its class id, its timesteps and noises
            return example_loss(net, scheduler, x, y, t, noise, params=params)

        def no_reweighting(params, example):  # TRAK's Q = 1 − p; p = 0 gives D-TRAK's Q = 1
            return torch.zeros(())

        task = AttributionTask(loss_func=diffusion_loss, model=net, checkpoints=net.state_dict())
        attributor = TRAKAttributor(task, no_reweighting, device="cpu",
                                    projector_kwargs={"proj_dim": self.proj_dim, "proj_seed": self.seed, "device": "cpu"})
        gen_images, gen_ids = self._bound["gen"]
        n = len(gen_images) if self.targets is None else min(self.targets, len(gen_images))
        with _quiet():
            attributor.cache(self._loader(*self._bound["pool"], seed=self.seed))
            scores = attributor.attribute(self._loader(gen_images[:n], gen_ids[:n], seed=self.seed + 1))  # N × n
        self._scores = np.zeros((len(gen_images), len(self._bound["pool"][0])))
        self._scores[:n] = scores.detach().double().numpy().T
        self.seconds = time.perf_counter() - t0
        return self._scores

    def value(self, evidence):
        from gmv.valuation.methods import MethodResult

        a = self.attribute(evidence)
        if a.shape[1] != evidence.n_pool or a.shape[0] != len(evidence.gen_emb):
            raise GmvError(f"D-TRAK was bound to {a.shape[1]} pool and {a.shape[0]} generated images, the valuation "
                           f"has {evidence.n_pool} and {len(evidence.gen_emb)}")
        extras = {"timesteps": self.timesteps, "proj_dim": self.proj_dim, "seconds": round(self.seconds or 0.0, 3),
                  "targets": int(len(a) if self.targets is None else min(self.targets, len(a)))}
        return MethodResult(self.name, a.sum(axis=0), evidence.split, extras, {"attributions": a})


class _quiet:
    """dattri's progress bars drawn by gmv's (one line per 10% in a log file), and functorch's 'batching rule'
    performance warnings off the console."""

    def __enter__(self):
        import warnings

        import dattri.algorithm.trak as trak

        from gmv.console import progress_bar

        self._trak, self._tqdm = trak, trak.tqdm
        trak.tqdm = lambda iterable=None, desc=None, leave=None, **kw: progress_bar(
            iterable, desc=f"D-TRAK: {desc.rstrip('.') if desc else 'gradients'}", unit="batch", leave=False)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        return self

    def __exit__(self, *exc):
        self._trak.tqdm = self._tqdm
        self._warnings.__exit__(*exc)
        return False
