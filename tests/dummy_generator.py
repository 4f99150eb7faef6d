"""A fourth generator, added the way README.md's "Adding a generator" says — to prove that recipe.

What would be two files in gmv/ is one here: the network (gmv/models/<name>.py) and the Lightning
module with its settings and presets (gmv/generators/<name>.py). The third piece, its config, is one
line: `register_generator("dummy", DummyGenerator)` (in gmv: an entry in gmv.generators.GENERATORS).
Nothing in gmv/pipeline knows about it; tests/test_generator_contract.py runs the shared contract tests
and a whole study on it.

The model: one learned image μ_y per class and a learned per-pixel noise scale σ,

    x = tanh(μ_y + T·σ ⊙ z),   z ~ N(0, I)  (N×C×H×W)

trained by regressing x(z, y) on the real images of class y (mean squared error; the optimum is μ_y ≈
the class mean, σ → 0). T is the sampling `temperature` (1 while training), a sampling-only setting.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gmv.generators.base import GeneratorModule, update_ema


# --------------------------------------------------------------------------- the network


class ClassMeans(nn.Module):
    """G(y, z): y N int64, z N×C×H×W → images N×C×H×W in (−1, 1)."""

    def __init__(self, n_classes: int, image_size: int, channels: int):
        super().__init__()
        self.means = nn.Parameter(0.1 * torch.randn(n_classes, channels, image_size, image_size))  # μ: K×C×H×W
        self.log_scale = nn.Parameter(torch.full((channels, image_size, image_size), -1.0))  # log σ: C×H×W

    def forward(self, y: torch.Tensor, z: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return torch.tanh(self.means[y] + temperature * self.log_scale.exp() * z)  # N×C×H×W


# --------------------------------------------------------------------------- settings and the module


@dataclass(frozen=True)
class DummyConfig:
    lr: float = 0.05  # Adam
    batch_size: int = 16
    ema_decay: float = 0.5  # EMA of G, which generate() uses
    temperature: float = 1.0  # noise scale T at sampling time


PRESETS = {"tiny": DummyConfig(), "wide": DummyConfig(batch_size=64, ema_decay=0.99)}


class DummyGenerator(GeneratorModule):
    family = "DummyGenerator"
    presets = PRESETS
    sampling_fields = frozenset({"temperature"})

    def __init__(self, n_classes: int, image_size: int, channels: int, preset: str = "tiny", **overrides: Any):
        super().__init__(n_classes, image_size, channels, preset, **overrides)
        self.G = ClassMeans(self.n_classes, self.image_size, self.channels)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)

    @classmethod
    def check_settings(cls, cfg: DummyConfig, image_size: int) -> list[str]:
        problems = []
        if not cfg.lr > 0:
            problems.append(f"lr must be > 0, got {cfg.lr}")
        if cfg.batch_size < 1:
            problems.append(f"batch_size must be ≥ 1, got {cfg.batch_size}")
        if not 0.0 <= cfg.ema_decay < 1.0:
            problems.append(f"ema_decay must lie in [0, 1), got {cfg.ema_decay}")
        if cfg.temperature < 0:
            problems.append(f"temperature must be ≥ 0, got {cfg.temperature}")
        return problems

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G}

    def training_step(self, batch, batch_idx):
        x, y = batch[0], self.batch_labels(batch[1])
        z = torch.randn_like(x)  # torch's global RNG, as the contract asks
        loss = F.mse_loss(self.G(y, z), x)
        self.log("loss/fit", loss, prog_bar=True, batch_size=x.shape[0])
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.G.parameters(), lr=self.config.lr)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        update_ema(self.G_ema, self.G, self.config.ema_decay)
        self._advance_iteration()

    @torch.inference_mode()
    def generate(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        labels = self.check_labels(labels).to(self.device)
        shape = (len(labels), self.channels, self.image_size, self.image_size)
        z = torch.randn(shape, generator=generator, device=generator.device).to(self.device)
        return self.G_ema(labels, z, self.config.temperature).float()
