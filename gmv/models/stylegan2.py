"""StyleGAN2 networks (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN").

Pure PyTorch, no custom CUDA ops, so everything runs on CPU. Names follow the paper and the
official StyleGAN2-ADA code layout (config F / "skip" generator, "resnet" discriminator):

    z ──MappingNetwork──▶ w ──(broadcast to num_ws)──▶ SynthesisNetwork ──▶ image
                                                               │
                         image ──Discriminator──▶ logit ◀──────┘ (projection with the class)

Building blocks, top to bottom:

- `upfirdn2d`        upsample / FIR-filter / downsample with the paper's [1, 3, 3, 1] binomial filter.
- `EqualizedLinear`, `EqualizedConv2d`   equalized learning rate: weights stored as N(0, 1)/lr_mul and
                     scaled by lr_mul/√fan_in at run time (so every layer learns at the same speed).
- `modulated_conv2d` weight modulation + demodulation, grouped-convolution implementation.
- `MappingNetwork`, `SynthesisLayer`, `ToRGBLayer`, `SynthesisBlock`, `SynthesisNetwork`, `Generator`.
- `MinibatchStdLayer`, `DiscriminatorBlock`, `DiscriminatorEpilogue`, `Discriminator`
  (gmv/models/stylegan2_discriminator.py; the blocks above: gmv/models/stylegan2_layers.py).

Resampling: the paper's up-sampling is a stride-2 transposed 3×3 convolution followed by a
[1, 3, 3, 1] FIR blur. Here `SynthesisLayer(up=2)` first FIR-upsamples (zero insertion + the same
[1, 3, 3, 1] filter, gain 4) and then applies an ordinary 3×3 modulated convolution: both are linear
shift-invariant filters on the upsampled grid, so the result is the same up to image borders (it costs
more FLOPs at the higher resolution, which does not matter at 32–64 px). Away from the zero-padded
border this ×2 FIR upsampler is exactly bilinear interpolation (align_corners=False); the skip
generator's RGB images are upsampled the same way. Down-sampling in the discriminator is
blur-then-stride-2 exactly as in the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gmv.models.stylegan2_layers import (EqualizedLinear, _randn, fir_filter, lrelu_gain, modulated_conv2d, normalize_2nd_moment, upsample2d)


# ──────────────────────────────────────────── generator ─────────────────────────────────────────────


class MappingNetwork(nn.Module):
    """z (+ class) → w, an MLP with lr multiplier 0.01 (the paper's 8 layers; 2 for CIFAR).

    z is normalised to unit second moment; for the conditional case a class embedding (an equalized
    linear layer on the one-hot label, also normalised) is concatenated to it. With z_dim = 0 the
    network maps the class alone (the discriminator's projection embedding `cmap`).
    Tracks the running mean `w_avg` for the truncation trick.
    """

    def __init__(self, z_dim: int, n_classes: int, w_dim: int, num_layers: int,
                 lr_mul: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__()
        self.z_dim, self.w_dim, self.n_classes = z_dim, w_dim, n_classes
        self.conditional = n_classes > 1
        self.embed = EqualizedLinear(n_classes, w_dim) if self.conditional else None
        in_features = z_dim + (w_dim if self.conditional else 0)
        features = [in_features] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualizedLinear(features[k], features[k + 1], lr_mul=lr_mul, activation="lrelu")
            for k in range(num_layers)
        )
        self.w_avg_beta = w_avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, labels: torch.Tensor | None,
                update_w_avg: bool = False) -> torch.Tensor:
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z))  # N×z_dim
        if self.conditional:
            onehot = F.one_hot(labels.long(), self.n_classes).to(self.embed.weight.dtype)  # N×n_classes
            parts.append(normalize_2nd_moment(self.embed(onehot)))  # N×w_dim
        x = torch.cat(parts, dim=1)
        for layer in self.layers:
            x = layer(x)  # N×w_dim
        if update_w_avg:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3×3 conv → + noise·strength → + bias → lrelu·√2.  N×I×H×W → N×O×(H·up)×(W·up).

    The style is an affine map of w (bias initialised to 1, so styles start at 1). `up=2` FIR-upsamples
    before the convolution (see the module docstring). Noise: one N×1×H×W map per layer, drawn from
    `generator` (None → torch's global RNG), scaled by a learned per-layer strength (init 0).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1):
        super().__init__()
        self.resolution, self.up = resolution, up
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))  # O×I×3×3
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, generator: torch.Generator | None = None,
                fused: bool = True) -> torch.Tensor:
        styles = self.affine(w)  # N×I
        if self.up > 1:
            x = upsample2d(x, self.resample_filter)  # N×I×2H×2W
        # demodulation makes the equalized-lr weight gain irrelevant here, so it is omitted
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, padding=1, fused=fused)  # N×O×R×R
        noise = _randn((x.shape[0], 1, self.resolution, self.resolution), generator, x)
        x = x + noise * self.noise_strength
        return lrelu_gain(x + self.bias[None, :, None, None])


class ToRGBLayer(nn.Module):
    """Modulated 1×1 conv (no demodulation) + bias, linear.  N×I×R×R → N×C×R×R."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))  # C×I×1×1
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # N×I
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, padding=0, fused=fused)
        return x + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution R of the skip generator.

    R = 4:  const 4×4 → conv1 → toRGB.                       uses 2 w's (conv1, toRGB)
    R > 4:  conv0 (up ×2) → conv1 → toRGB; img = up(img) + rgb. uses 3 w's (conv0, conv1, toRGB)
    The toRGB w of one block is shared with conv0 of the next (as in the official code), so a
    network for resolution 2^k consumes num_ws = 2k − 2 w vectors.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int):
        super().__init__()
        self.resolution = resolution
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))  # C×4×4 learned constant
            self.conv0 = None
        else:
            self.const = None
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim)
        self.num_conv = 1 if resolution == 4 else 2
        self.register_buffer("resample_filter", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                generator: torch.Generator | None = None, fused: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        # ws: N×(num_conv + 1)×w_dim
        k = 0
        if self.conv0 is None:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)  # N×C×4×4
        else:
            x = self.conv0(x, ws[:, k], generator, fused)  # N×O×R×R
            k += 1
        x = self.conv1(x, ws[:, k], generator, fused)
        k += 1
        rgb = self.torgb(x, ws[:, k], fused)  # N×C_img×R×R
        img = rgb if img is None else upsample2d(img, self.resample_filter) + rgb
        return x, img


def channels_per_resolution(image_size: int, channel_base: int, channel_max: int) -> dict[int, int]:
    """{R: min(channel_base // R, channel_max)} for R = 4, 8, …, image_size (StyleGAN2-ADA's rule)."""
    resolutions = [2 ** k for k in range(2, int(math.log2(image_size)) + 1)]
    return {r: max(1, min(channel_base // r, channel_max)) for r in resolutions}


class SynthesisNetwork(nn.Module):
    """ws (N×num_ws×w_dim) → image N×C×R×R, skip architecture (RGB outputs upsampled and summed)."""

    def __init__(self, w_dim: int, image_size: int, img_channels: int, channels: dict[int, int]):
        super().__init__()
        self.image_size = image_size
        self.blocks = nn.ModuleList()
        self.num_ws = 0
        for r in sorted(channels):
            in_ch = channels[r // 2] if r > 4 else 0
            block = SynthesisBlock(in_ch, channels[r], w_dim, r, img_channels)
            self.blocks.append(block)
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last toRGB

    def forward(self, ws: torch.Tensor, generator: torch.Generator | None = None,
                fused: bool = True) -> torch.Tensor:
        x = img = None
        k = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, k:k + block.num_conv + 1], generator, fused)
            k += block.num_conv
        return img


class Generator(nn.Module):
    """z (N×z_dim), labels (N,) → image N×C×R×R (unbounded; ≈[−1, 1] once trained)."""

    def __init__(self, z_dim: int, w_dim: int, n_classes: int, image_size: int, img_channels: int,
                 mapping_layers: int, channel_base: int, channel_max: int, mapping_lr_mul: float = 0.01):
        super().__init__()
        self.z_dim, self.w_dim = z_dim, w_dim
        self.channels = channels_per_resolution(image_size, channel_base, channel_max)
        self.synthesis = SynthesisNetwork(w_dim, image_size, img_channels, self.channels)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, n_classes, w_dim, mapping_layers, lr_mul=mapping_lr_mul)

    def map(self, z: torch.Tensor, labels: torch.Tensor, truncation_psi: float = 1.0,
            update_w_avg: bool = False, style_mixing_prob: float = 0.0) -> torch.Tensor:
        """z → ws N×num_ws×w_dim, with truncation and (training only) style mixing."""
        w = self.mapping(z, labels, update_w_avg=update_w_avg)
        if truncation_psi != 1.0:
            w = self.mapping.w_avg.lerp(w, truncation_psi)
        ws = w[:, None].repeat(1, self.num_ws, 1)
        if style_mixing_prob > 0:
            # one crossover point per batch, from torch's global RNG (as StyleGAN2-ADA)
            cutoff = int(torch.randint(1, self.num_ws, ()).item())
            if torch.rand(()).item() < style_mixing_prob:
                w2 = self.mapping(torch.randn_like(z), labels)
                ws[:, cutoff:] = w2[:, None]
        return ws

    def forward(self, z: torch.Tensor, labels: torch.Tensor, truncation_psi: float = 1.0,
                generator: torch.Generator | None = None, update_w_avg: bool = False,
                style_mixing_prob: float = 0.0, fused_modconv: bool = True) -> torch.Tensor:
        ws = self.map(z, labels, truncation_psi, update_w_avg, style_mixing_prob)
        return self.synthesis(ws, generator, fused_modconv)
