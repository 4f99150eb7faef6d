"""BigGAN as a Lightning module: hinge loss, n_dis discriminator updates per generator update,
optional DiffAugment, an EMA copy of the generator for sampling.

    module = BigGAN(n_classes=10, image_size=32, channels=3, preset="cifar10")

n_classes = 1 trains an unconditional model (every label 0); > 1 conditions G (shared class embedding +
z chunks → conditional BatchNorm) and D (projection ⟨embed(y), h⟩). Image sizes: 16, 32, 64, 128, 256,
512 (log2(size/4) G up-blocks from 4×4). Networks: gmv/models/biggan.py.

Presets
- `cifar10`: StudioGAN's CIFAR-10 BigGAN — G width 96 (three 384-channel up-blocks 4×4 → 32×32,
  ≈ 9.4M parameters), D width 96 (four 192-channel blocks, ≈ 2.4M), z 80 in 4 chunks of 20, shared
  class embedding 128, attention after G block 2 / D block 1, batch 64, Adam 2e-4 / 2e-4 with betas
  (0.5, 0.999) and eps 1e-6, n_dis 5, EMA decay 0.9999 from generator iteration 1,000, 100k
  generator iterations, no DiffAugment.
- `tiny`: the same architecture with 32-channel blocks, z 60, n_dis 2, batch 32, EMA 0.99 from the
  first iteration: CPU smoke runs (about 1–2 s per generator iteration on one core).

Training (manual optimisation). Each `training_step` receives one real batch (x, y) and updates D
once on it, with fakes from labels drawn uniformly at random; every n_dis-th step then updates G
once, so one generator iteration consumes n_dis real batches, as in StudioGAN. After each G update
the EMA generator is updated (before iteration `ema_start` it is a plain copy of G) and
`self.iteration` advances. All randomness (z, fake labels, DiffAugment) comes from torch's global
RNG, so a restored RNG state reproduces a run.

BatchNorm statistics of the EMA generator. After every EMA update its buffers (BatchNorm running
statistics, spectral-norm power-iteration vectors) are *copied* from G, as StudioGAN does. At
sampling time `generate` then replaces the BatchNorm statistics by *standing statistics* (BigGAN
paper, appendix): the EMA generator is run in training mode on `standing_stats` batches of
`batch_size` samples (z and uniformly random labels from a private RNG with a fixed seed), and the
running means/variances become the plain average over those batches. They are recomputed lazily,
once after each EMA change, and are deterministic, so `generate` stays a pure function of the
weights and the caller's `torch.Generator`. `standing_stats = 0` keeps the copied statistics.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from gmv.generators.base import GeneratorModule, update_ema
from gmv.models.biggan import (
    IMAGE_SIZES,
    Discriminator,
    Generator,
    G_CHANNELS,
    D_CHANNELS,
    num_d_blocks,
    num_g_blocks,
)
from gmv.models.diffaugment import diff_augment, parse_policy, policy_problems

STANDING_STATS_SEED = 0  # seed of the private RNG that draws the standing-statistics samples
GENERATE_CHUNK = 256  # images per forward pass in `generate`


@dataclass(frozen=True)
class BigGANConfig:
    """BigGAN's settings (Hydra: `generator=biggan generator.<field>=…`; null = the preset's value)."""

    # architecture
    g_width: int = 96  # G channel unit "ch" (32×32: every G block has 4·ch channels)
    d_width: int = 96  # D channel unit (32×32: every D block has 2·ch channels)
    z_dim: int = 80  # latent size; split into (G blocks + 1) equal chunks, so it must divide evenly (4 at 32×32)
    shared_dim: int = 128  # shared class embedding, concatenated with each z chunk
    g_attn_block: int = 2  # self-attention after this G block (1-based; 0 = none)
    d_attn_block: int = 1  # self-attention after this D block (1-based; 0 = none)
    # optimisation
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    adam_eps: float = 1e-6
    n_dis: int = 5  # D updates per G update, each on its own real batch
    batch_size: int = 64  # real batch size the data loader should use; fakes match the real batch
    diffaug: str = ""  # DiffAugment policy, e.g. "color,translation,cutout" (small data sets); "" = none
    max_iterations: int = 100_000  # G iterations the preset is tuned for (informational: train.max_iterations decides)
    # EMA generator
    ema_decay: float = 0.9999
    ema_start: int = 1000  # G iterations before the EMA starts averaging (until then it copies G)
    standing_stats: int = 16  # batches for the EMA G's standing BN statistics; 0 = copy G's


PRESETS: dict[str, BigGANConfig] = {
    "cifar10": BigGANConfig(),
    "tiny": BigGANConfig(
        g_width=8,  # 32 channels per G block at 32×32 (G ≈ 0.1M parameters)
        d_width=16,  # 32 channels per D block at 32×32 (D ≈ 0.07M parameters)
        z_dim=60,  # chunks divide evenly for 16–128 pixels (3–6 chunks)
        shared_dim=64,
        n_dis=2,
        batch_size=32,
        max_iterations=500,
        ema_decay=0.99,
        ema_start=0,
        standing_stats=8,
    ),
}


class BigGAN(GeneratorModule):
    """Class-conditional BigGAN (n_classes = 1: unconditional) trained with the hinge loss."""

    family = "BigGAN"
    presets = PRESETS
    # standing_stats only decides how generate() recomputes the EMA generator's BatchNorm statistics
    sampling_fields = frozenset({"standing_stats"})

    def __init__(self, n_classes: int, image_size: int, channels: int, preset: str = "tiny", **overrides: Any):
        super().__init__(n_classes, image_size, channels, preset, **overrides)
        self.automatic_optimization = False
        cfg = self.config

        self.G = Generator(n_classes, image_size, channels, cfg.g_width, cfg.z_dim,
                                   cfg.shared_dim, cfg.g_attn_block)
        self.D = Discriminator(n_classes, image_size, channels, cfg.d_width, cfg.d_attn_block)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        # D updates so far; G updates when it reaches a multiple of n_dis (saved for exact resume)
        self.register_buffer("_d_updates", torch.zeros((), dtype=torch.long), persistent=True)
        self._augment_policy = parse_policy(cfg.diffaug)
        self._standing_stats_fresh = False

    @classmethod
    def check_settings(cls, cfg: BigGANConfig, image_size: int) -> list[str]:
        """What the architecture or the training loop cannot use (the settings are already typed)."""
        if image_size not in IMAGE_SIZES:
            return [f"cannot make {image_size}×{image_size} images; valid image sizes are "
                    f"{', '.join(map(str, IMAGE_SIZES))} (resize the data, e.g. image_size=32)"]
        problems = []
        n_g, n_d = num_g_blocks(image_size), num_d_blocks(image_size)
        for name in ("g_width", "d_width", "z_dim", "shared_dim", "batch_size", "n_dis"):
            if getattr(cfg, name) < 1:
                problems.append(f"{name} must be ≥ 1, got {getattr(cfg, name)}")
        if cfg.z_dim >= 1 and cfg.z_dim % (n_g + 1):
            suggestion = (n_g + 1) * max(1, round(cfg.z_dim / (n_g + 1)))
            problems.append(f"z_dim {cfg.z_dim} must split evenly into {n_g + 1} chunks at {image_size}×{image_size} "
                            f"({n_g} G blocks + 1); e.g. z_dim={suggestion}")
        if not 0 <= cfg.g_attn_block <= n_g:
            problems.append(f"g_attn_block must be 0 (none) or a G block 1…{n_g} at {image_size}×{image_size}, "
                            f"got {cfg.g_attn_block}")
        elif cfg.g_attn_block and G_CHANNELS[image_size][cfg.g_attn_block] * cfg.g_width < 8:
            problems.append(f"g_width {cfg.g_width} is too narrow for self-attention (needs ≥ 8 channels)")
        if not 0 <= cfg.d_attn_block <= n_d:
            problems.append(f"d_attn_block must be 0 (none) or a D block 1…{n_d} at {image_size}×{image_size}, "
                            f"got {cfg.d_attn_block}")
        elif cfg.d_attn_block and D_CHANNELS[image_size][cfg.d_attn_block - 1] * cfg.d_width < 8:
            problems.append(f"d_width {cfg.d_width} is too narrow for self-attention (needs ≥ 8 channels)")
        if cfg.lr_g <= 0 or cfg.lr_d <= 0 or cfg.adam_eps <= 0:
            problems.append(f"lr_g, lr_d and adam_eps must be > 0, got {cfg.lr_g}, {cfg.lr_d}, {cfg.adam_eps}")
        if not all(0.0 <= b < 1.0 for b in cfg.betas):
            problems.append(f"betas must lie in [0, 1), got {cfg.betas}")
        if not 0.0 <= cfg.ema_decay < 1.0:
            problems.append(f"ema_decay must lie in [0, 1), got {cfg.ema_decay}")
        for name in ("ema_start", "standing_stats", "max_iterations"):
            if getattr(cfg, name) < 0:
                problems.append(f"{name} must be ≥ 0, got {getattr(cfg, name)}")
        problems += policy_problems(cfg.diffaug)
        return problems

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "D": self.D}

    @property
    def real_batches_per_iteration(self) -> int:
        return self.config.n_dis

    # --- sampling -------------------------------------------------------------------------------

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def z_chunk(self) -> int:
        return self.G.z_chunk

    def _sample_latents(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """z ~ N(0, I) and uniformly random class ids, from torch's global RNG."""
        z = torch.randn(n, self.config.z_dim, device=self.device)
        y = torch.randint(0, self.n_classes, (n,), device=self.device)
        return z, y

    @torch.inference_mode()
    def generate(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Images float32 N×C×H×W in [−1, 1] (on the module's device) from the EMA generator.

        z is drawn from `generator` (on its own device), so equal generator states give equal images.
        """
        labels = self.check_labels(labels)
        z = torch.randn(len(labels), self.config.z_dim, generator=generator, device=generator.device)
        g = self.G_ema
        was_training = g.training
        self._refresh_standing_stats()
        g.eval()
        out = [
            g(z[i : i + GENERATE_CHUNK].to(self.device), labels[i : i + GENERATE_CHUNK].to(self.device)).float()
            for i in range(0, len(labels), GENERATE_CHUNK)
        ]
        g.train(was_training)  # Lightning expects the module's modes unchanged
        if not out:
            return torch.empty(0, self.channels, self.image_size, self.image_size, device=self.device)
        return torch.cat(out).clamp_(-1.0, 1.0)

    def _refresh_standing_stats(self) -> None:
        """Recompute the EMA generator's BatchNorm statistics as an average over fresh samples."""
        n_batches = self.config.standing_stats
        if self._standing_stats_fresh or n_batches == 0:
            return
        g = self.G_ema
        norms = [m for m in g.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        rng = torch.Generator(device=self.device).manual_seed(STANDING_STATS_SEED)
        with torch.inference_mode(False), torch.no_grad():
            g.eval()  # spectral norm stays in eval mode: no power iteration on the EMA weights
            momenta = []
            for bn in norms:
                momenta.append(bn.momentum)
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average over the batches below
                bn.train()
            for _ in range(n_batches):
                n = self.config.batch_size
                z = torch.randn(n, self.config.z_dim, generator=rng, device=self.device)
                y = torch.randint(0, self.n_classes, (n,), generator=rng, device=self.device)
                g(z, y)
            for bn, momentum in zip(norms, momenta):
                bn.momentum = momentum
            g.eval()
        self._standing_stats_fresh = True

    def _update_ema(self) -> None:
        """EMA of G's parameters (a plain copy before `ema_start`); buffers are copied."""
        decay = self.config.ema_decay if self.iteration >= self.config.ema_start else 0.0
        update_ema(self.G_ema, self.G, decay, buffers="copy", anchor="ema")
        self._standing_stats_fresh = False

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._standing_stats_fresh = False

    # --- training -------------------------------------------------------------------------------

    def training_step(self, batch, batch_idx: int) -> None:
        x_real, y_real = batch[0], self.batch_labels(batch[1])
        n = x_real.shape[0]
        opt_g, opt_d = self.optimizers()

        # discriminator: hinge loss  E[relu(1 − D(x))] + E[relu(1 + D(G(z)))]
        self.D.requires_grad_(True)
        with torch.no_grad():
            z, y_fake = self._sample_latents(n)
            x_fake = self.G(z, y_fake)
        logits = self.D(diff_augment(torch.cat([x_real, x_fake]), self._augment_policy),
                        torch.cat([y_real, y_fake]))
        d_real, d_fake = logits[:n], logits[n:]
        d_loss = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        self._d_updates += 1
        self.log("loss/d", d_loss.detach(), prog_bar=True, batch_size=n)
        self.log_dict({"score/real": d_real.detach().mean(), "score/fake": d_fake.detach().mean()}, batch_size=n)
        self.log("lr/d", opt_d.param_groups[0]["lr"], batch_size=n)

        if int(self._d_updates) % self.config.n_dis:
            return

        # generator: −E[D(G(z))], D frozen
        self.D.requires_grad_(False)
        z, y_fake = self._sample_latents(n)
        g_loss = -self.D(diff_augment(self.G(z, y_fake), self._augment_policy), y_fake).mean()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.D.requires_grad_(True)
        self._update_ema()
        self._advance_iteration()
        self.log("loss/g", g_loss.detach(), prog_bar=True, batch_size=n)
        self.log("lr/g", opt_g.param_groups[0]["lr"], batch_size=n)
        self.log("iteration", float(self.iteration), batch_size=n)

    def configure_optimizers(self):
        cfg = self.config
        opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas, eps=cfg.adam_eps)
        opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=cfg.betas, eps=cfg.adam_eps)
        return [opt_g, opt_d]
