"""Classifier-free guidance diffusion (Ho & Salimans 2022) on diffusers' `UNet2DModel`.

One network ε_θ(x_t, t, y) is trained on labels y ∈ {0, …, n_classes−1} plus a null label ∅
(index `n_classes`): during training each label is replaced by ∅ with probability `p_uncond`,
so the same network learns the conditional ε(x, c) and the unconditional ε(x, ∅). Training
uses the DDPM forward process (1,000 steps, linear betas 1e-4…0.02) and the ε-prediction MSE
loss. Sampling runs DDIM (eta = 0 by default) on the guided prediction

    ε̃ = (1 + w)·ε(x, c) − w·ε(x, ∅)

with both terms from one batched forward pass (w = 0.5 by default; w = 0 is plain
conditional sampling, which then uses the conditional forward only).

    module = CFGDiffusion(n_classes=10, image_size=32, channels=3, preset="cifar10")
    images = module.generate(torch.arange(10), torch.Generator().manual_seed(0))

Presets: `cifar10` is the DDPM CIFAR-10 UNet (channels 128/256/256/256, 2 res blocks per
level, attention at 16×16, dropout 0.1, Adam 2e-4 with 5,000 warm-up steps, batch 128,
grad-norm clip 1.0, EMA 0.9999); `tiny` trains in minutes on a laptop CPU at 32×32.

Training notes:
- One `training_step` is one denoiser update = one `iteration` (counted in `optimizer_step`,
  so it stays right under gradient accumulation); the EMA copy is updated there too.
- Gradient clipping comes from the config (`grad_clip`, global L2 norm), applied in
  `configure_gradient_clipping`; the Trainer's own `gradient_clip_val` is ignored.
- All training randomness (label dropout, timesteps, noise, dropout) comes from torch's
  global RNG. Sampling randomness comes only from the `torch.Generator` passed in.
- The EMA weights are a frozen sub-module (`ema_unet`), so they travel in every checkpoint. Its
  decay warms up as min(ema_decay, (1 + n)/(10 + n)) (set `ema_warmup=False` for DDPM's constant).
- `config.batch_size` is the training batch size the data loader should use.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from gmv.errors import GmvError
from gmv.generators.base import GeneratorModule, update_ema
from gmv.models.unet import ddpm_unet

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


@dataclass(frozen=True)
class CFGDiffusionConfig:
    """The diffusion model's settings (Hydra: `generator=cfg_diffusion generator.<field>=…`; null = the
    preset's value). The sampling settings (guidance_w … sample_batch_size) do not change training."""

    # --- UNet (gmv.models.unet) ---
    block_out_channels: tuple[int, ...] = (128, 256, 256, 256)  # one per level; image_size divisible by 2^(levels−1)
    layers_per_block: int = 2  # residual blocks per level (down path; up path has one more)
    attention_resolutions: tuple[int, ...] = (16,)  # feature-map sizes (pixels) with self-attention; [] = none
    mid_attention: bool = True  # self-attention in the middle block
    dropout: float = 0.1
    norm_groups: int = 32  # GroupNorm groups; every block width must be divisible by it
    # --- classifier-free guidance ---
    p_uncond: float = 0.1  # probability a training label is replaced by the null label ∅, in [0, 1]
    guidance_w: float = 0.5  # w ≥ 0 in ε̃ = (1 + w)·ε(x, c) − w·ε(x, ∅); 0 = plain conditional sampling
    # --- sampling (DDIM) ---
    sampling_steps: int = 100
    eta: float = 0.0  # 0 = deterministic DDIM, 1 = DDPM-like
    timestep_spacing: str = "leading"  # leading | trailing | linspace
    clip_sample: bool = True  # clip the predicted x₀ to [−1, 1] at every DDIM step
    sample_batch_size: int = 256  # generate() works through the labels in chunks of this size
    # --- optimisation ---
    lr: float = 2e-4
    warmup: int = 5000  # linear learning-rate warm-up, in optimiser steps
    weight_decay: float = 0.0  # AdamW; 0 = Adam as in DDPM
    batch_size: int = 128  # training batch size for the data loader
    ema_decay: float = 0.9999  # EMA of the UNet weights, which generate() uses
    ema_warmup: bool = True  # effective decay min(ema_decay, (1 + n) / (10 + n)) at iteration n
    grad_clip: float = 1.0  # max global gradient L2 norm, applied by the module; 0 = no clipping
    # --- forward process (DDPM) ---
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"  # linear | scaled_linear | squaredcos_cap_v2


PRESETS: dict[str, CFGDiffusionConfig] = {
    # DDPM (Ho et al. 2020) CIFAR-10 network; DDPM reports FID 3.17 (unconditional, 1,000 steps).
    "cifar10": CFGDiffusionConfig(),
    # Small enough to train in minutes on 2 CPU cores at 32×32.
    "tiny": CFGDiffusionConfig(
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        attention_resolutions=(8,),
        mid_attention=True,
        dropout=0.0,
        norm_groups=8,
        sampling_steps=20,
        lr=5e-4,
        warmup=100,
        batch_size=32,
        ema_decay=0.995,
        grad_clip=1.0,
    ),
}


def _valid_sizes(multiple: int) -> str:
    sizes = [multiple * k for k in range(1, 9)]
    return ", ".join(str(s) for s in sizes) + ", …"


class CFGDiffusion(GeneratorModule):
    """Classifier-free guidance diffusion model; see the module docstring."""

    family = "CFGDiffusion"
    presets = PRESETS
    sampling_fields = frozenset({"guidance_w", "sampling_steps", "eta", "timestep_spacing", "clip_sample",
                                 "sample_batch_size"})

    def __init__(self, n_classes: int, image_size: int, channels: int, preset: str = "tiny", **overrides: Any):
        super().__init__(n_classes, image_size, channels, preset, **overrides)
        cfg = self.config
        from diffusers import DDIMScheduler, DDPMScheduler

        self.null_label = self.n_classes  # index of ∅ in the label embedding
        self.unet = ddpm_unet(self.n_classes, self.image_size, self.channels, cfg.block_out_channels,
                              cfg.layers_per_block, cfg.attention_resolutions, cfg.mid_attention, cfg.dropout,
                              cfg.norm_groups)
        self.ema_unet = copy.deepcopy(self.unet).requires_grad_(False)  # sample() switches it to eval
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=cfg.num_train_timesteps,
            beta_start=cfg.beta_start,
            beta_end=cfg.beta_end,
            beta_schedule=cfg.beta_schedule,
            prediction_type="epsilon",
            clip_sample=cfg.clip_sample,
            timestep_spacing=cfg.timestep_spacing,
        )
        self.sample_scheduler = DDIMScheduler.from_config(self.noise_scheduler.config)

    @classmethod
    def check_settings(cls, cfg: CFGDiffusionConfig, image_size: int) -> list[str]:
        problems = []
        n_levels = len(cfg.block_out_channels)
        if n_levels < 1:
            return ["block_out_channels needs at least one entry"]
        if any(c < 1 for c in cfg.block_out_channels):
            problems.append(f"block_out_channels must be positive, got {list(cfg.block_out_channels)}")
        if cfg.norm_groups < 1 or any(c % cfg.norm_groups for c in cfg.block_out_channels):
            problems.append(f"every block_out_channels entry {list(cfg.block_out_channels)} must be divisible by "
                            f"norm_groups={cfg.norm_groups}")
        multiple = 2 ** (n_levels - 1)
        if image_size < 1 or image_size % multiple:
            problems.append(f"image_size {image_size} does not fit a UNet with {n_levels} resolution levels: it must "
                            f"be divisible by 2^{n_levels - 1} = {multiple}; valid sizes are {_valid_sizes(multiple)}")
        for name in ("layers_per_block", "sampling_steps", "num_train_timesteps", "sample_batch_size", "batch_size"):
            if getattr(cfg, name) < 1:
                problems.append(f"{name} must be ≥ 1, got {getattr(cfg, name)}")
        if cfg.sampling_steps > cfg.num_train_timesteps:
            problems.append(f"sampling_steps ({cfg.sampling_steps}) cannot exceed num_train_timesteps "
                            f"({cfg.num_train_timesteps})")
        if not 0.0 <= cfg.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {cfg.dropout}")
        for name in ("p_uncond", "ema_decay"):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(cfg, name)}")
        if not (math.isfinite(cfg.guidance_w) and cfg.guidance_w >= 0):
            problems.append(f"guidance_w must be a finite number ≥ 0, got {cfg.guidance_w}")
        for name in ("eta", "warmup", "weight_decay"):
            if getattr(cfg, name) < 0:
                problems.append(f"{name} must be ≥ 0, got {getattr(cfg, name)}")
        if cfg.grad_clip < 0:
            problems.append(f"grad_clip must be ≥ 0 (0 = off), got {cfg.grad_clip}")
        if not cfg.lr > 0:
            problems.append(f"lr must be > 0, got {cfg.lr}")
        if cfg.timestep_spacing not in TIMESTEP_SPACINGS:
            problems.append(f"timestep_spacing must be one of {', '.join(TIMESTEP_SPACINGS)}, "
                            f"got {cfg.timestep_spacing!r}")
        if cfg.beta_schedule not in BETA_SCHEDULES:
            problems.append(f"beta_schedule must be one of {', '.join(BETA_SCHEDULES)}, got {cfg.beta_schedule!r}")
        if not 0.0 < cfg.beta_start < cfg.beta_end < 1.0:
            problems.append(f"need 0 < beta_start < beta_end < 1, got {cfg.beta_start} and {cfg.beta_end}")
        return problems

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"UNet": self.unet}

    # ------------------------------------------------------------------ training

    def drop_labels(self, y: torch.Tensor) -> torch.Tensor:
        """Replace each label by the null label with probability p_uncond (torch's global RNG)."""
        drop = torch.rand(y.shape, device=y.device) < self.config.p_uncond
        return torch.where(drop, torch.full_like(y, self.null_label), y)

    def training_step(self, batch, batch_idx):
        x, y = batch[0], batch[1]
        x = x.to(self.dtype)
        y = self.drop_labels(self.batch_labels(y))
        t = torch.randint(0, self.config.num_train_timesteps, (x.shape[0],), device=x.device, dtype=torch.long)
        noise = torch.randn_like(x)
        x_t = self.noise_scheduler.add_noise(x, noise, t)
        eps = self.unet(x_t, t, class_labels=y).sample
        loss = F.mse_loss(eps.float(), noise.float())
        self.log("loss/diffusion", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=x.shape[0])
        self.log("lr", float(self.trainer.optimizers[0].param_groups[0]["lr"]),
                 on_step=True, on_epoch=False, batch_size=x.shape[0])
        return loss

    def configure_optimizers(self):
        cfg = self.config
        opt = torch.optim.AdamW(self.unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        warmup = cfg.warmup

        def factor(step: int) -> float:
            return 1.0 if warmup <= 0 else min(1.0, (step + 1) / warmup)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        # The config decides clipping (global L2 norm); the Trainer's gradient_clip_val is ignored.
        if self.config.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(self.unet.parameters(), self.config.grad_clip)
            if self._trainer is not None:
                self.log("grad_norm", norm, on_step=True, on_epoch=False)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        self._advance_iteration()
        self.update_ema()

    def ema_decay_now(self) -> float:
        """The EMA decay for the update after iteration `self.iteration` (with optional warm-up, so
        short runs are not dominated by the random initial weights)."""
        d = self.config.ema_decay
        if self.config.ema_warmup:
            n = self.iteration
            d = min(d, (1.0 + n) / (10.0 + n))
        return d

    def update_ema(self) -> None:
        """ema ← decay·ema + (1 − decay)·θ, for parameters and (float) buffers."""
        update_ema(self.ema_unet, self.unet, self.ema_decay_now(), buffers="average", anchor="ema")

    # ------------------------------------------------------------------ sampling

    def eps(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, guidance_w: float | None,
            use_ema: bool = True) -> torch.Tensor:
        """ε prediction. guidance_w=None: conditional ε(x, c) only; a number w: the guided
        (1 + w)·ε(x, c) − w·ε(x, ∅), both halves from one batched forward."""
        net = self.ema_unet if use_ema else self.unet
        if guidance_w is None:
            return net(x, t, class_labels=labels).sample
        null = torch.full_like(labels, self.null_label)
        t = torch.as_tensor(t, device=x.device).expand(x.shape[0])
        both = net(torch.cat([x, x]), torch.cat([t, t]), class_labels=torch.cat([labels, null])).sample
        eps_c, eps_u = both.chunk(2)
        return (1.0 + guidance_w) * eps_c - guidance_w * eps_u

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator, *, guidance_w: float | None = None,
               steps: int | None = None, eta: float | None = None, use_ema: bool = True,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """DDIM sampling of one batch. guidance_w=None is plain conditional sampling (ε(x, c) only);
        a number uses the classifier-free guided ε̃ (even 0, via the batched forward). `noise`
        optionally fixes x_T (N×C×H×W); otherwise it is drawn from `generator`."""
        steps = self.config.sampling_steps if steps is None else int(steps)
        eta = self.config.eta if eta is None else float(eta)
        if not 1 <= steps <= self.config.num_train_timesteps:
            raise GmvError(f"sampling steps must be in [1, {self.config.num_train_timesteps}], got {steps}")
        if guidance_w is not None and not (math.isfinite(guidance_w) and guidance_w >= 0):
            raise GmvError(f"guidance_w must be a finite number ≥ 0, got {guidance_w}")
        device = self.device
        labels = self.check_labels(labels).to(device)
        n = labels.shape[0]
        shape = (n, self.channels, self.image_size, self.image_size)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32)
        x = noise.to(device=device, dtype=self.dtype)
        net = self.ema_unet if use_ema else self.unet
        was_training = net.training
        net.eval()
        try:
            sched = self.sample_scheduler
            sched.set_timesteps(steps, device=device)
            for t in sched.timesteps:
                tt = t.expand(n).to(device)
                e = self.eps(x, tt, labels, guidance_w, use_ema=use_ema)
                var_noise = None
                if eta > 0:
                    var_noise = torch.randn(shape, generator=generator, device=gen_device,
                                            dtype=torch.float32).to(device=device, dtype=x.dtype)
                x = sched.step(e, t, x, eta=eta, variance_noise=var_noise).prev_sample
        finally:
            net.train(was_training)
        return x.float().clamp(-1.0, 1.0)

    @torch.inference_mode()
    def generate(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Images float32 N×C×H×W in [−1, 1] from the EMA weights, guided with config.guidance_w.
        All x_T are drawn first, then the labels are sampled in chunks of sample_batch_size."""
        labels = torch.as_tensor(labels).long().reshape(-1)
        n = labels.shape[0]
        w = self.config.guidance_w if self.config.guidance_w > 0 else None
        gen_device = generator.device if generator is not None else torch.device("cpu")
        shape = (n, self.channels, self.image_size, self.image_size)
        noise = torch.randn(shape, generator=generator, device=gen_device, dtype=torch.float32)
        out = []
        bs = self.config.sample_batch_size
        for s in range(0, n, bs):
            out.append(self.sample(labels[s:s + bs], generator, guidance_w=w, noise=noise[s:s + bs]).cpu())
        if not out:
            return torch.empty(shape, dtype=torch.float32)
        return torch.cat(out)
