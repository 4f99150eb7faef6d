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
- `MinibatchStdLayer`, `DiscriminatorBlock`, `DiscriminatorEpilogue`, `Discriminator`.

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

SQRT2 = math.sqrt(2.0)


# ──────────────────────────────────────────── resampling ────────────────────────────────────────────


def fir_filter(taps=(1.0, 3.0, 3.0, 1.0)) -> torch.Tensor:
    """Separable 2-D low-pass filter, outer product of `taps`, normalised to sum 1.  k×k."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f[:, None] * f[None, :]
    return f / f.sum()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve depthwise with FIR filter `f`, downsample by striding.

    x: N×C×H×W, f: k×k (symmetric). pad = (before, after) on both spatial axes.
    Output: N×C×H' ×W' with H' = (H·up + before + after − k + 1) / down.
    """
    n, c, h, w = x.shape
    if up > 1:  # N×C×H×W → N×C×(H·up)×(W·up), zeros between samples
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = (f * gain).to(x.dtype).flip([0, 1])[None, None].repeat(c, 1, 1, 1)  # C×1×k×k
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """×2 FIR upsampling (gain 4 keeps the mean).  N×C×H×W → N×C×2H×2W."""
    k = f.shape[0]
    return upfirdn2d(x, f, up=2, pad=((k + 1) // 2, (k - 2) // 2), gain=4.0)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """×½ FIR downsampling.  N×C×H×W → N×C×H/2×W/2."""
    k = f.shape[0]
    return upfirdn2d(x, f, down=2, pad=((k - 1) // 2, (k - 2) // 2))


def lrelu_gain(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU(0.2) scaled by √2 to keep unit variance (the paper's 'lrelu' with its gain)."""
    return F.leaky_relu(x, 0.2) * SQRT2


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _randn(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """N(0, 1) noise from `generator` (on its own device, then moved) or torch's global RNG."""
    if generator is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    return torch.randn(shape, generator=generator, device=generator.device).to(like.device, like.dtype)


# ──────────────────────────────────────── equalized layers ──────────────────────────────────────────


class EqualizedLinear(nn.Module):
    """Fully-connected layer with equalized learning rate.

    weight (stored) ~ N(0, 1)/lr_mul, used as weight·lr_mul/√in_features; bias used as bias·lr_mul.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: str = "linear"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)  # O×I
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N×I → N×O
        b = None if self.bias is None else self.bias * self.bias_gain
        x = F.linear(x, self.weight * self.weight_gain, b)
        return lrelu_gain(x) if self.activation == "lrelu" else x


class EqualizedConv2d(nn.Module):
    """Convolution with equalized learning rate (discriminator layers), optional FIR downsampling.

    down=2: blur with [1, 3, 3, 1] then stride-2 convolution (the paper's order).
    `out_gain` multiplies the output after the activation (1/√2 for the residual branches).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: int = 1, out_gain: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))  # O×I×k×k
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.activation = activation
        self.down = down
        self.out_gain = out_gain
        self.kernel_size = kernel_size
        self.register_buffer("resample_filter", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # N×I×H×W → N×O×(H/down)×(W/down)
        w = self.weight * self.weight_gain
        k = self.kernel_size
        if self.down > 1:
            fk = self.resample_filter.shape[0]
            p = (fk - self.down) + (k - 1)  # total padding so that the strided conv gives H/2
            x = upfirdn2d(x, self.resample_filter, pad=((p + 1) // 2, p // 2))
            x = F.conv2d(x, w, stride=self.down)
        else:
            x = F.conv2d(x, w, padding=k // 2)
        if self.bias is not None:
            x = x + self.bias[None, :, None, None]
        if self.activation == "lrelu":
            x = lrelu_gain(x)
        return x * self.out_gain if self.out_gain != 1.0 else x


# ─────────────────────────────────────── modulated convolution ──────────────────────────────────────


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     demodulate: bool = True, padding: int = 1, fused: bool = True,
                     eps: float = 1e-8) -> torch.Tensor:
    """Weight (de)modulation, §2.2 of the paper.

    x: N×I×H×W, weight: O×I×k×k, styles: N×I (one scale per input channel and sample).
    w'_{n,o,i} = s_{n,i}·w_{o,i};  with demodulation  w''_{n,o,i} = w'_{n,o,i} / √(Σ_{i,k} w'²_{n,o,i} + ε),
    so a unit-variance input gives (about) unit-variance output per output channel.

    fused=True: the per-sample weights w'' as one grouped convolution over the batch (groups = N).
    fused=False: the same maths with the shared weight — scale the input by s, convolve, scale the
    output by the demodulation coefficients (what StyleGAN2-ADA does while training; often faster).
    Returns N×O×H'×W'.
    """
    n, i, h, w_ = x.shape
    o, _, kh, kw = weight.shape
    d = None
    if demodulate:  # Σ_{i,k} (s_i·w_{o,i,k})² = Σ_i s_i² · Σ_k w²_{o,i,k}
        d = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + eps).rsqrt()  # N×O
    if not fused:
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=padding)  # N×O×H'×W'
        return x * d[:, :, None, None] if d is not None else x
    w = weight[None] * styles[:, None, :, None, None]  # N×O×I×k×k  (modulation)
    if d is not None:
        w = w * d[:, :, None, None, None]  # (demodulation)
    # one group per sample: 1×(N·I)×H×W convolved with (N·O)×I×k×k
    x = x.reshape(1, n * i, h, w_)
    w = w.reshape(n * o, i, kh, kw)
    x = F.conv2d(x, w, padding=padding, groups=n)
    return x.reshape(n, o, x.shape[2], x.shape[3])


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


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
