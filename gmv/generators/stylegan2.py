"""StyleGAN2 as a Lightning module: non-saturating logistic loss, lazy R1, optional lazy path-length
regularisation, style mixing, EMA generator. Networks live in `gmv.models.stylegan2` (G) and
`gmv.models.stylegan2_discriminator` (D).

    module = StyleGAN2(n_classes=10, image_size=32, channels=3, preset="cifar10")

One `training_step` = one real batch = one D update (+ an R1 update every `r1_interval` steps)
and one G update (+ a path-length update every `pl_interval` steps when `pl_weight` > 0), then the
EMA update and `_advance_iteration()`. All training randomness comes from torch's global RNG.
Fake images are generated with the real batch's labels (so fakes follow the data's class mix).
n_classes = 1 trains an unconditional model; > 1 conditions G (class embedding concatenated to z in
the mapping network) and D (projection with a class embedding, StyleGAN2-ADA's cmap).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gmv.generators.base import GeneratorModule, update_ema
from gmv.models.diffaugment import diff_augment, parse_policy, policy_problems
from gmv.models.stylegan2 import Generator
from gmv.models.stylegan2_discriminator import Discriminator


@dataclass(frozen=True)
class StyleGAN2Config:
    """StyleGAN2's settings (Hydra: `generator=stylegan2 generator.<field>=…`; null = the preset's value)."""

    # networks
    z_dim: int = 512  # latent size
    w_dim: int = 512  # intermediate latent size
    mapping_layers: int = 8  # G mapping MLP depth (paper 8; CIFAR 2), lr multiplier mapping_lr_mul
    d_mapping_layers: int = 8  # depth of D's class-embedding (cmap) mapping, conditional case only
    mapping_lr_mul: float = 0.01
    channel_base: int = 16384  # channels at resolution R = min(channel_base // R, channel_max)
    channel_max: int = 512
    d_architecture: str = "resnet"  # "resnet" (paper config F) or "orig" (plain, StyleGAN2-ADA's CIFAR)
    mbstd_group_size: int = 4  # minibatch-stddev group size
    # optimisation
    lr: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    batch_size: int = 32  # for the data loader; training_step uses whatever batch it is given
    r1_gamma: float = 10.0  # R1 weight γ
    r1_interval: int = 16  # lazy R1: every r1_interval D steps, weighted by r1_interval
    pl_weight: float = 0.0  # path-length regularisation weight (paper 2); 0 disables
    pl_interval: int = 4  # lazy path-length regularisation every pl_interval G steps
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    style_mixing_prob: float = 0.0  # paper 0.9
    # EMA generator: half-life ema_kimg thousand images, at most ema_rampup × the images seen so far
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05  # None: no ramp-up (a preset's choice; null in Hydra means the preset's value)
    # DiffAugment policy (Zhao et al. 2020), e.g. "color,translation,cutout": D sees every image through it —
    # reals, fakes and the reals of R1 (its gradient taken through the augmentation); "" = none
    diffaug: str = ""
    # sampling
    truncation_psi: float = 1.0  # truncation for generate(); 1.0 = none


PRESETS: dict[str, StyleGAN2Config] = {
    # StudioGAN's / StyleGAN2-ADA's CIFAR-10 config ("cifar"): 512 channels at every resolution,
    # 2-layer mapping, no style mixing, no path-length reg, plain ("orig") D, mbstd group 32,
    # EMA half-life 500 kimg with 5% ramp-up, lazy R1 every 16 steps with γ = 0.01.
    "cifar10": StyleGAN2Config(
        z_dim=512, w_dim=512, mapping_layers=2, d_mapping_layers=8, channel_base=32768, channel_max=512,
        d_architecture="orig", mbstd_group_size=32, lr=0.0025, betas=(0.0, 0.99), batch_size=64,
        r1_gamma=0.01, r1_interval=16, pl_weight=0.0, style_mixing_prob=0.0, ema_kimg=500.0, ema_rampup=0.05,
    ),
    # 64×64 faces: StyleGAN2-ADA's "auto" config evaluated for 64×64 on one GPU — batch 32,
    # channel_base 16384 (256 ch at 64², 512 below), 2-layer mapping, γ = 0.0002·64²/32 ≈ 0.0256,
    # EMA 10 kimg, mbstd 4 — plus the paper's style mixing 0.9 and path-length reg (weight 2, every 4).
    "celeba64": StyleGAN2Config(
        z_dim=512, w_dim=512, mapping_layers=2, d_mapping_layers=2, channel_base=16384, channel_max=512,
        d_architecture="resnet", mbstd_group_size=4, lr=0.0025, betas=(0.0, 0.99), batch_size=32,
        r1_gamma=0.0256, r1_interval=16, pl_weight=2.0, pl_interval=4, style_mixing_prob=0.9,
        ema_kimg=10.0, ema_rampup=0.05,
    ),
    # Minutes on 2 CPU cores at 32×32: 64 channels (32 at 32²), z = w = 64.
    "tiny": StyleGAN2Config(
        z_dim=64, w_dim=64, mapping_layers=2, d_mapping_layers=1, channel_base=1024, channel_max=64,
        d_architecture="resnet", mbstd_group_size=4, lr=0.0025, betas=(0.0, 0.99), batch_size=32,
        r1_gamma=0.05, r1_interval=4, pl_weight=0.0, style_mixing_prob=0.0, ema_kimg=1.0, ema_rampup=0.05,
    ),
}


class StyleGAN2(GeneratorModule):
    """StyleGAN2 generator + discriminator + EMA generator, trained with manual optimisation."""

    family = "StyleGAN2"
    presets = PRESETS
    sampling_fields = frozenset({"truncation_psi"})

    def __init__(self, n_classes: int, image_size: int, channels: int, preset: str = "tiny", **overrides):
        super().__init__(n_classes, image_size, channels, preset, **overrides)
        cfg = self.config
        self.automatic_optimization = False

        self.G = Generator(cfg.z_dim, cfg.w_dim, self.n_classes, self.image_size, self.channels,
                           cfg.mapping_layers, cfg.channel_base, cfg.channel_max, cfg.mapping_lr_mul)
        self.D = Discriminator(self.n_classes, self.image_size, self.channels, cfg.channel_base,
                               cfg.channel_max, cfg.d_architecture, cfg.mbstd_group_size, cfg.d_mapping_layers)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        self.register_buffer("pl_mean", torch.zeros(()), persistent=True)
        self._augment_policy = parse_policy(cfg.diffaug)

    @classmethod
    def check_settings(cls, cfg: StyleGAN2Config, image_size: int) -> list[str]:
        if not (image_size >= 8 and image_size & (image_size - 1) == 0):
            valid_sizes = [2 ** k for k in range(3, 11)]
            return [f"StyleGAN2 needs a power-of-two image size ≥ 8 (e.g. {', '.join(map(str, valid_sizes))}), "
                    f"got {image_size}"]
        problems = []
        for name in ("z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "mbstd_group_size",
                     "batch_size", "r1_interval", "pl_interval", "pl_batch_shrink"):
            if getattr(cfg, name) < 1:
                problems.append(f"{name} must be a positive integer, got {getattr(cfg, name)!r}")
        if cfg.d_mapping_layers < 0:
            problems.append(f"d_mapping_layers must be an integer ≥ 0, got {cfg.d_mapping_layers!r}")
        if cfg.d_architecture not in ("resnet", "orig"):
            problems.append(f"d_architecture must be 'resnet' or 'orig', got {cfg.d_architecture!r}")
        if not cfg.lr > 0:
            problems.append(f"lr must be > 0, got {cfg.lr}")
        if not all(0.0 <= b < 1.0 for b in cfg.betas):
            problems.append(f"betas must be two numbers in [0, 1), got {cfg.betas!r}")
        for name in ("r1_gamma", "pl_weight", "ema_kimg"):
            if not getattr(cfg, name) >= 0:
                problems.append(f"{name} must be ≥ 0, got {getattr(cfg, name)}")
        if not cfg.mapping_lr_mul > 0:
            problems.append(f"mapping_lr_mul must be > 0, got {cfg.mapping_lr_mul}")
        if not 0.0 <= cfg.style_mixing_prob <= 1.0:
            problems.append(f"style_mixing_prob must be in [0, 1], got {cfg.style_mixing_prob}")
        if not 0.0 <= cfg.pl_decay <= 1.0:
            problems.append(f"pl_decay must be in [0, 1], got {cfg.pl_decay}")
        if cfg.ema_rampup is not None and not cfg.ema_rampup > 0:
            problems.append(f"ema_rampup must be > 0 or null, got {cfg.ema_rampup}")
        if not cfg.truncation_psi >= 0:
            problems.append(f"truncation_psi must be ≥ 0, got {cfg.truncation_psi}")
        problems += policy_problems(cfg.diffaug)
        return problems

    # ── bookkeeping ──────────────────────────────────────────────────────────────────────────────

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "D": self.D}

    def lazy_regularisation(self) -> dict[str, int]:
        """R1 every r1_interval iterations (when r1_gamma > 0), path length every pl_interval (pl_weight > 0)."""
        cfg = self.config
        return {**({"r1": cfg.r1_interval} if cfg.r1_gamma > 0 else {}),
                **({"pl": cfg.pl_interval} if cfg.pl_weight > 0 else {})}

    def configure_optimizers(self):
        cfg = self.config
        # lazy regularisation (paper App. C): the regulariser's extra optimiser steps are accounted
        # for by shrinking lr and betas with mb_ratio = interval / (interval + 1)
        g_ratio = cfg.pl_interval / (cfg.pl_interval + 1) if cfg.pl_weight > 0 else 1.0
        d_ratio = cfg.r1_interval / (cfg.r1_interval + 1) if cfg.r1_gamma > 0 else 1.0

        def adam(params, ratio):
            return torch.optim.Adam(params, lr=cfg.lr * ratio, betas=tuple(b ** ratio for b in cfg.betas), eps=1e-8)

        return [adam(self.G.parameters(), g_ratio), adam(self.D.parameters(), d_ratio)]

    # ── losses ───────────────────────────────────────────────────────────────────────────────────

    def _z(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(n, self.config.z_dim, device=like.device, dtype=like.dtype)

    def _r1_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Lazy R1 on reals: (γ/2)·‖∇_x D(aug(x))‖², weighted by r1_interval (aug: DiffAugment, if on)."""
        x = x.detach().requires_grad_(True)
        logits = self.D(diff_augment(x, self._augment_policy), y)
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        penalty = grad.square().sum(dim=[1, 2, 3])  # N
        return (penalty * (self.config.r1_gamma / 2)).mean() * self.config.r1_interval

    def _pl_loss(self, y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Lazy path-length regularisation: (‖J_wᵀ u‖ − a)², a the running mean, weighted by pl_interval."""
        cfg = self.config
        n = max(1, y.shape[0] // cfg.pl_batch_shrink)
        y = y[:n]
        ws = self.G.map(self._z(n, like), y, style_mixing_prob=cfg.style_mixing_prob)
        img = self.G.synthesis(ws, fused=False)
        u = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * u).sum(), ws, create_graph=True)
        lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()  # N
        pl_mean = self.pl_mean.lerp(lengths.mean(), cfg.pl_decay)  # running mean a (as StyleGAN2-ADA)
        self.pl_mean.copy_(pl_mean.detach())
        return ((lengths - pl_mean).square() * cfg.pl_weight).mean() * cfg.pl_interval

    def training_step(self, batch, batch_idx):
        cfg = self.config
        opt_g, opt_d = self.optimizers()
        x, y = batch
        y = self.batch_labels(y)
        n = x.shape[0]
        it = self.iteration

        # ── D: softplus(D(G(z))) + softplus(−D(x)) ──
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        with torch.no_grad():
            fake = self.G(self._z(n, x), y, style_mixing_prob=cfg.style_mixing_prob, fused_modconv=False)
        logits_fake = self.D(diff_augment(fake, self._augment_policy), y)
        logits_real = self.D(diff_augment(x, self._augment_policy), y)
        loss_d = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.log("loss/d", loss_d.detach(), prog_bar=True, batch_size=n)
        self.log("score/real", logits_real.detach().mean(), batch_size=n)
        self.log("score/fake", logits_fake.detach().mean(), batch_size=n)

        if cfg.r1_gamma > 0 and it % cfg.r1_interval == 0:
            loss_r1 = self._r1_loss(x, y)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_r1)
            opt_d.step()
            self.log("loss/r1", loss_r1.detach(), batch_size=n)

        # ── G: softplus(−D(G(z))) ──
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        fake = self.G(self._z(n, x), y, update_w_avg=True, style_mixing_prob=cfg.style_mixing_prob,
                      fused_modconv=False)
        loss_g = F.softplus(-self.D(diff_augment(fake, self._augment_policy), y)).mean()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        self.log("loss/g", loss_g.detach(), prog_bar=True, batch_size=n)

        if cfg.pl_weight > 0 and it % cfg.pl_interval == 0:
            loss_pl = self._pl_loss(y, x)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_pl)
            opt_g.step()
            self.log("loss/pl", loss_pl.detach(), batch_size=n)
        self.D.requires_grad_(True)

        self._update_ema(n * self.trainer.world_size)  # images per step over all DDP ranks
        self._advance_iteration()
        self.log("iteration", float(self.iteration), batch_size=n)

    def _update_ema(self, batch: int) -> None:
        """G_ema ← β·G_ema + (1−β)·G with β = 0.5^(batch / ema_nimg): half-life ema_kimg·1000 images.

        `batch` is the global batch (all ranks); ramp-up caps ema_nimg at ema_rampup × images seen.
        """
        cfg = self.config
        ema_nimg = cfg.ema_kimg * 1000.0
        if cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, (self.iteration + 1) * batch * cfg.ema_rampup)
        beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
        update_ema(self.G_ema, self.G, beta, buffers="copy", anchor="live")

    # ── sampling ─────────────────────────────────────────────────────────────────────────────────

    @torch.inference_mode()
    def generate(self, labels: torch.Tensor, generator: torch.Generator, chunk: int = 256) -> torch.Tensor:
        """Images float N×C×H×W in [−1, 1] from the EMA generator (truncation_psi from the config).

        z and every noise map come from `generator` (drawn on its device), so the output is a
        function of the generator's state alone.
        """
        labels = self.check_labels(labels)
        n = labels.numel()
        g = self.G_ema
        out = torch.empty(n, self.channels, self.image_size, self.image_size, device=self.device)
        z = torch.randn(n, self.config.z_dim, generator=generator, device=generator.device).to(self.device)
        labels = labels.to(self.device)
        for s in range(0, n, chunk):
            img = g(z[s:s + chunk], labels[s:s + chunk], truncation_psi=self.config.truncation_psi,
                    generator=generator, fused_modconv=True)
            out[s:s + chunk] = img.clamp(-1.0, 1.0)
        return out
