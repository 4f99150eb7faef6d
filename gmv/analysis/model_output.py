"""The model output that counterfactual and LDS studies measure for a diffusion generator (D-TRAK's choice):
the diffusion loss of a target image x̂_j under the model's EMA denoiser, averaged over a fixed set of
(timestep, noise) draws per image — the same draws for every retrained model, so outputs are comparable.

    fixed_draws(n, timesteps, n_train_timesteps, image_shape, seed)  → (t: n×T, noise: n×T×C×H×W)
    example_loss(net, scheduler, x, y, t, noise)                     → one image's mean loss over its draws
    diffusion_outputs(module, images, ids, timesteps, seed)          → float64 n: −loss (higher = the model
                                                                       reproduces x̂_j better)

TRAK and D-TRAK (gmv/valuation/dtrak.py) differentiate `example_loss` and `example_square_norm`; this module
evaluates the loss.
"""

from __future__ import annotations

import numpy as np


def fixed_draws(n: int, timesteps: int, n_train_timesteps: int, image_shape: tuple[int, ...], seed: int):
    import torch

    g = torch.Generator().manual_seed(int(seed))
    t = torch.randint(0, n_train_timesteps, (n, timesteps), generator=g)
    noise = torch.randn((n, timesteps, *image_shape), generator=g)
    return t, noise


def predicted_noise(net, scheduler, x, y, t, noise, params=None):
    """ε̂(x_t, t, y) (T×C×H×W) of one image `x` (C×H×W, in [−1, 1]) with class id `y`, noised at its draws `t` (T)
    with `noise` (T×C×H×W); `params` for torch.func.functional_call (None: the network's own)."""
    import torch

    k = t.shape[0]
    x_t = scheduler.add_noise(x.unsqueeze(0).expand(k, *x.shape), noise, t)
    if params is None:
        return net(x_t, t, class_labels=y.expand(k)).sample
    return torch.func.functional_call(net, params, (x_t, t), {"class_labels": y.expand(k)}).sample


def example_loss(net, scheduler, x, y, t, noise, params=None):
    """Mean ε-prediction loss ‖ε̂ − ε‖² of one image over its draws (L_simple: the model output LDS measures, and
    TRAK's function)."""
    return ((predicted_noise(net, scheduler, x, y, t, noise, params) - noise) ** 2).mean()


def example_square_norm(net, scheduler, x, y, t, noise, params=None):
    """Mean ‖ε̂‖² of one image over its draws (L_square: the function D-TRAK differentiates, for training and
    generated images alike — Zheng et al. 2024 found it attributes better than L_simple)."""
    return (predicted_noise(net, scheduler, x, y, t, noise, params) ** 2).mean()


def pixels_to_model(images: np.ndarray):
    """uint8 N×H×W×C → float32 N×C×H×W in [−1, 1] (the generators' input range)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 127.5 - 1.0


def diffusion_outputs(module, images: np.ndarray, ids: np.ndarray, timesteps: int = 10, seed: int = 0,
                      batch_size: int = 64) -> np.ndarray:
    """−(mean diffusion loss) of each image under `module`'s EMA denoiser at seeded draws (module docstring)."""
    import torch

    net, scheduler = module.ema_unet.eval(), module.noise_scheduler
    x = pixels_to_model(images)
    y = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    t, noise = fixed_draws(len(x), timesteps, scheduler.config.num_train_timesteps, tuple(x.shape[1:]), seed)
    out = np.empty(len(x))
    with torch.inference_mode():
        for i in range(len(x)):
            out[i] = -float(example_loss(net, scheduler, x[i], y[i], t[i], noise[i]))
    return out
