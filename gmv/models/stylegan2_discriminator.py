"""StyleGAN2's residual discriminator (config F), conditional by projection: image → logit.

    x ─FromRGB─▶ DiscriminatorBlock × (log2(size) − 2) ─▶ DiscriminatorEpilogue (minibatch std, conv, fc) ─▶ logit
                                                                   ⟨·, embed(class)⟩ when conditional
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gmv.models.stylegan2 import MappingNetwork, channels_per_resolution  # D maps the class as G does
from gmv.models.stylegan2_layers import (EqualizedConv2d, EqualizedLinear)


# ────────────────────────────────────────── discriminator ───────────────────────────────────────────


class MinibatchStdLayer(nn.Module):
    """Appends one feature map: the std over groups of `group_size` samples, averaged over C, H, W.

    N×C×H×W → N×(C+1)×H×W. The group size is the largest divisor of N not above `group_size`.
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = max(d for d in range(1, min(self.group_size, n) + 1) if n % d == 0)
        y = x.reshape(g, n // g, c, h, w)  # G×M×C×H×W, sample m of each group
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # M×C×H×W std over the group
        y = y.mean(dim=[1, 2, 3])  # M
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)  # N×1×H×W
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Resolution R → R/2: conv 3×3 → conv 3×3 ↓2 (+ 1×1 ↓2 skip, both ×1/√2, for 'resnet').

    The first block also holds fromRGB (1×1 conv, lrelu). N×C_in×R×R → N×C_out×R/2×R/2.
    """

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 architecture: str = "resnet", first: bool = False):
        super().__init__()
        self.architecture = architecture
        self.fromrgb = EqualizedConv2d(img_channels, tmp_channels, 1, activation="lrelu") if first else None
        gain = math.sqrt(0.5) if architecture == "resnet" else 1.0
        self.conv0 = EqualizedConv2d(tmp_channels, tmp_channels, 3, activation="lrelu")
        self.conv1 = EqualizedConv2d(tmp_channels, out_channels, 3, activation="lrelu", down=2, out_gain=gain)
        self.skip = (EqualizedConv2d(tmp_channels, out_channels, 1, bias=False, down=2, out_gain=gain)
                     if architecture == "resnet" else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)  # N×tmp×R×R
        if self.skip is not None:
            y = self.skip(x)  # N×out×R/2×R/2
            x = self.conv1(self.conv0(x))
            return y + x
        return self.conv1(self.conv0(x))


class DiscriminatorEpilogue(nn.Module):
    """4×4 head: minibatch std → conv 3×3 → dense (C·16 → C) → dense (C → cmap_dim, or 1)."""

    def __init__(self, in_channels: int, cmap_dim: int, mbstd_group_size: int):
        super().__init__()
        self.mbstd = MinibatchStdLayer(mbstd_group_size)
        self.conv = EqualizedConv2d(in_channels + 1, in_channels, 3, activation="lrelu")
        self.fc = EqualizedLinear(in_channels * 16, in_channels, activation="lrelu")
        self.out = EqualizedLinear(in_channels, max(cmap_dim, 1))
        self.cmap_dim = cmap_dim

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(self.mbstd(x))  # N×C×4×4
        x = self.out(self.fc(x.flatten(1)))  # N×cmap_dim
        if cmap is not None:  # projection: ⟨out, embed(class)⟩ / √cmap_dim
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x[:, 0]  # N


class Discriminator(nn.Module):
    """image N×C×R×R, labels (N,) → logit (N,).

    Conditional output by projection (StyleGAN2-ADA's `cmap`): the class goes through a mapping
    network (embedding + `mapping_layers` dense layers, lr_mul 0.01) to a cmap_dim vector, and the
    logit is its scaled dot product with the epilogue's output.
    """

    def __init__(self, n_classes: int, image_size: int, img_channels: int, channel_base: int,
                 channel_max: int, architecture: str = "resnet", mbstd_group_size: int = 4,
                 mapping_layers: int = 8):
        super().__init__()
        self.channels = channels_per_resolution(image_size, channel_base, channel_max)
        self.blocks = nn.ModuleList()
        for r in sorted(self.channels, reverse=True)[:-1]:  # image_size, …, 8
            ch = self.channels[r]
            self.blocks.append(DiscriminatorBlock(ch, ch, self.channels[r // 2], img_channels,
                                                  architecture, first=(r == image_size)))
        self.conditional = n_classes > 1
        cmap_dim = self.channels[4] if self.conditional else 0
        self.mapping = (MappingNetwork(0, n_classes, cmap_dim, mapping_layers, w_avg_beta=0.0)
                        if self.conditional else None)
        self.epilogue = DiscriminatorEpilogue(self.channels[4], cmap_dim, mbstd_group_size)

    def forward(self, img: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = img
        for block in self.blocks:
            x = block(x)  # halves the resolution down to 4×4
        cmap = self.mapping(None, labels) if self.mapping is not None else None
        return self.epilogue(x, cmap)
