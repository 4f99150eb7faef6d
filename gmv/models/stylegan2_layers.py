"""StyleGAN2's building blocks (Karras et al. 2020): FIR resampling, equalized-learning-rate layers and the
modulated convolution. The networks that use them: gmv/models/stylegan2.py (mapping + synthesis, the
generator) and gmv/models/stylegan2_discriminator.py (the residual discriminator); the design notes
(resampling, equalized learning rate) are in gmv/models/stylegan2.py's docstring.
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
