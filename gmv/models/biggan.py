"""BigGAN networks (Brock, Donahue & Simonyan 2019, "Large Scale GAN Training for High Fidelity
Natural Image Synthesis"), laid out as in StudioGAN's `big_resnet` backbone.

Generator G(z, y)
    z (N×z_dim) is split into n_blocks + 1 equal chunks ("hierarchical latent"). The first chunk
    goes through a linear layer to a 4×4 feature map; chunk k+1 is concatenated with the shared
    class embedding (N×shared_dim) and conditions the BatchNorms of up-block k:

        z₀ ─ linear ─ view ─▶ N×C₀×4×4
        ─ GBlock₁(·, [shared(y), z₁]) ─ … ─ GBlock_B(·, [shared(y), z_B]) ─▶ N×C_B×H×W
        ─ BN ─ ReLU ─ conv3×3 ─ tanh ─▶ N×channels×H×W

    with a SAGAN self-attention layer after one chosen block (`attn_block`, 1-based, 0 = none).
    GBlock: BN-ReLU-up-conv3×3-BN-ReLU-conv3×3 plus an upsampled 1×1-conv shortcut, where every BN
    is class-conditional: BN without affine, then × (1 + gain(c)) + bias(c), gain/bias linear in c.

Discriminator D(x, y)
    residual down-blocks (the first one in the "optimised" form without a leading ReLU), a
    self-attention layer after one chosen block, ReLU, global *sum* pooling to h (N×C), then

        D(x, y) = linear(h) + ⟨embed(y), h⟩        (projection discriminator, Miyato & Koyama 2018)

Every conv / linear / embedding is spectrally normalised (torch.nn.utils.parametrizations, so the
state dict holds `…parametrizations.weight.original` plus the power-iteration vectors `_u`, `_v`)
and orthogonally initialised, except G's shared class embedding, which — as in BigGAN-PyTorch and
StudioGAN — is a plain embedding (orthogonal init, no spectral norm).

Channel layouts (multiples of the width "ch"), from StudioGAN:
    G  16: 4,4,4   32: 4,4,4,4   64: 16,8,4,2,1   128: 16,16,8,4,2,1   256: 16,16,8,8,4,2,1 …
    D  16: 2,2,2 (↓ −,−)   32: 2,2,2,2 (↓ ↓,−,−)   64: 1,2,4,8,16 (↓ ↓,↓,↓,−) …
The 16-pixel layout is ours (the 32-pixel one with one up-block and one D down-block fewer).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

SN_EPS = 1e-6  # spectral-norm epsilon (BigGAN / StudioGAN)
BN_EPS = 1e-4  # BatchNorm epsilon (BigGAN / StudioGAN)
BOTTOM = 4  # side of G's first feature map

# Channel multipliers of the width, per image size: G's chain C₀ → C₁ → … → C_B (B = log2(size/4)
# up-blocks), D's block outputs, and which D blocks halve the resolution.
G_CHANNELS = {
    16: (4, 4, 4),
    32: (4, 4, 4, 4),
    64: (16, 8, 4, 2, 1),
    128: (16, 16, 8, 4, 2, 1),
    256: (16, 16, 8, 8, 4, 2, 1),
    512: (16, 16, 8, 8, 4, 2, 1, 1),
}
D_CHANNELS = {
    16: (2, 2, 2),
    32: (2, 2, 2, 2),
    64: (1, 2, 4, 8, 16),
    128: (1, 2, 4, 8, 16, 16),
    256: (1, 2, 4, 8, 8, 16, 16),
    512: (1, 1, 2, 4, 8, 8, 16, 16),
}
D_DOWNSAMPLE = {
    16: (True, False, False),
    32: (True, True, False, False),
    64: (True, True, True, True, False),
    128: (True, True, True, True, True, False),
    256: (True, True, True, True, True, True, False),
    512: (True, True, True, True, True, True, True, False),
}
IMAGE_SIZES = tuple(sorted(G_CHANNELS))


def num_g_blocks(image_size: int) -> int:
    return len(G_CHANNELS[image_size]) - 1


def num_d_blocks(image_size: int) -> int:
    return len(D_CHANNELS[image_size])


# --- spectrally normalised, orthogonally initialised layers --------------------------------------


def _sn(module: nn.Module) -> nn.Module:
    """Orthogonal init (bias 0), then wrap the weight in a spectral-norm parametrization."""
    nn.init.orthogonal_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module, eps=SN_EPS)


def sn_conv(in_ch: int, out_ch: int, kernel_size: int, bias: bool = True) -> nn.Module:
    return _sn(nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias))


def sn_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    return _sn(nn.Linear(in_features, out_features, bias=bias))


def sn_embedding(num_embeddings: int, dim: int) -> nn.Module:
    return _sn(nn.Embedding(num_embeddings, dim))


# --- shared building blocks -----------------------------------------------------------------------


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine, then per-sample gain and bias linear in a condition c.

    x: N×C×H×W, c: N×cond_dim → N×C×H×W.  out = BN(x) · (1 + gain(c)) + bias(c).
    """

    def __init__(self, num_features: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, eps=BN_EPS, momentum=0.1, affine=False)
        self.gain = sn_linear(cond_dim, num_features, bias=False)
        self.bias = sn_linear(cond_dim, num_features, bias=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gain = 1.0 + self.gain(c)[:, :, None, None]  # N×C×1×1
        bias = self.bias(c)[:, :, None, None]  # N×C×1×1
        return self.bn(x) * gain + bias


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019) as used in BigGAN.

    Queries θ and keys φ have C/8 channels, values g have C/2; keys and values are 2×2 max-pooled,
    so each of the H·W positions attends over H·W/4 pooled positions. The output is projected
    back to C channels and added with a learned scale σ that starts at 0 (identity at init).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.theta = sn_conv(channels, channels // 8, 1, bias=False)
        self.phi = sn_conv(channels, channels // 8, 1, bias=False)
        self.g = sn_conv(channels, channels // 2, 1, bias=False)
        self.o = sn_conv(channels // 2, channels, 1, bias=False)
        self.sigma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        theta = self.theta(x).view(n, c // 8, h * w)  # N×C/8×HW
        phi = F.max_pool2d(self.phi(x), 2).view(n, c // 8, h * w // 4)  # N×C/8×HW/4
        g = F.max_pool2d(self.g(x), 2).view(n, c // 2, h * w // 4)  # N×C/2×HW/4
        attention = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # N×HW×HW/4
        o = torch.bmm(g, attention.transpose(1, 2)).view(n, c // 2, h, w)  # N×C/2×H×W
        return x + self.sigma * self.o(o)


# --- generator ----------------------------------------------------------------------------------


class GBlock(nn.Module):
    """Residual up-block: N×C_in×H×W, c → N×C_out×2H×2W.

    main:     CBN → ReLU → upsample×2 → conv3×3 → CBN → ReLU → conv3×3
    shortcut: upsample×2 → conv1×1
    """

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(in_ch, cond_dim)
        self.conv1 = sn_conv(in_ch, out_ch, 3)
        self.bn2 = ConditionalBatchNorm2d(out_ch, cond_dim)
        self.conv2 = sn_conv(out_ch, out_ch, 3)
        self.conv_sc = sn_conv(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(x, c))
        h = F.interpolate(h, scale_factor=2, mode="nearest")  # N×C_in×2H×2W
        h = self.conv1(h)  # N×C_out×2H×2W
        h = F.relu(self.bn2(h, c))
        h = self.conv2(h)
        shortcut = self.conv_sc(F.interpolate(x, scale_factor=2, mode="nearest"))
        return h + shortcut


class Generator(nn.Module):
    """G(z, y): z N×z_dim, y N int64 in [0, n_classes) → images N×channels×S×S in [−1, 1]."""

    def __init__(self, n_classes: int, image_size: int, channels: int, width: int, z_dim: int,
                 shared_dim: int, attn_block: int):
        super().__init__()
        chain = [m * width for m in G_CHANNELS[image_size]]  # C₀ … C_B
        self.n_blocks = len(chain) - 1
        self.z_dim = z_dim
        self.z_chunk = z_dim // (self.n_blocks + 1)
        self.bottom_channels = chain[0]
        self.attn_block = attn_block
        cond_dim = shared_dim + self.z_chunk

        # y → N×shared_dim, one embedding shared by every block's conditional BNs
        self.shared = nn.Embedding(n_classes, shared_dim)
        nn.init.orthogonal_(self.shared.weight)
        # z₀ → N×(C₀·4·4)
        self.linear = sn_linear(self.z_chunk, chain[0] * BOTTOM * BOTTOM)
        # B up-blocks: 4×4 → 8×8 → … → S×S
        self.blocks = nn.ModuleList(GBlock(chain[i], chain[i + 1], cond_dim) for i in range(self.n_blocks))
        # self-attention on the output of block `attn_block` (1-based)
        self.attention = SelfAttention(chain[attn_block]) if attn_block else None
        # output head
        self.out_bn = nn.BatchNorm2d(chain[-1], eps=BN_EPS, momentum=0.1, affine=True)
        self.out_conv = sn_conv(chain[-1], channels, 3)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z_chunks = torch.split(z, self.z_chunk, dim=1)  # (B+1) × N×z_chunk
        shared = self.shared(y)  # N×shared_dim
        h = self.linear(z_chunks[0]).view(-1, self.bottom_channels, BOTTOM, BOTTOM)  # N×C₀×4×4
        for i, block in enumerate(self.blocks):
            c = torch.cat([shared, z_chunks[i + 1]], dim=1)  # N×(shared_dim + z_chunk)
            h = block(h, c)  # N×C_{i+1}×2H×2W
            if i + 1 == self.attn_block:
                h = self.attention(h)
        h = F.relu(self.out_bn(h))  # N×C_B×S×S
        return torch.tanh(self.out_conv(h))  # N×channels×S×S


# --- discriminator ------------------------------------------------------------------------------


class DBlockOptimized(nn.Module):
    """D's first block, on raw pixels (no leading ReLU): N×C_in×H×W → N×C_out×H/2×W/2.

    main:     conv3×3 → ReLU → conv3×3 → avgpool2
    shortcut: avgpool2 → conv1×1
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = sn_conv(in_ch, out_ch, 3)
        self.conv2 = sn_conv(out_ch, out_ch, 3)
        self.conv_sc = sn_conv(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(x)))
        h = F.avg_pool2d(h, 2)
        shortcut = self.conv_sc(F.avg_pool2d(x, 2))
        return h + shortcut


class DBlock(nn.Module):
    """Pre-activation residual block: N×C_in×H×W → N×C_out×H'×W' (H' = H/2 if downsample).

    main:     ReLU → conv3×3 → ReLU → conv3×3 → (avgpool2)
    shortcut: conv1×1 → (avgpool2)   — identity when neither channels nor size change
    """

    def __init__(self, in_ch: int, out_ch: int, downsample: bool):
        super().__init__()
        self.downsample = downsample
        self.conv1 = sn_conv(in_ch, out_ch, 3)
        self.conv2 = sn_conv(out_ch, out_ch, 3)
        self.conv_sc = sn_conv(in_ch, out_ch, 1) if (downsample or in_ch != out_ch) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(x))
        h = self.conv2(F.relu(h))
        shortcut = x if self.conv_sc is None else self.conv_sc(x)
        if self.downsample:
            h, shortcut = F.avg_pool2d(h, 2), F.avg_pool2d(shortcut, 2)
        return h + shortcut


class Discriminator(nn.Module):
    """D(x, y): x N×channels×S×S, y N int64 → logits N (hinge loss; > 0 means "real")."""

    def __init__(self, n_classes: int, image_size: int, channels: int, width: int, attn_block: int):
        super().__init__()
        outs = [m * width for m in D_CHANNELS[image_size]]
        downs = D_DOWNSAMPLE[image_size]
        self.attn_block = attn_block
        blocks: list[nn.Module] = [DBlockOptimized(channels, outs[0])]  # S → S/2
        blocks += [DBlock(outs[i - 1], outs[i], downs[i]) for i in range(1, len(outs))]
        self.blocks = nn.ModuleList(blocks)
        # self-attention on the output of block `attn_block` (1-based)
        self.attention = SelfAttention(outs[attn_block - 1]) if attn_block else None
        self.linear = sn_linear(outs[-1], 1)  # unconditional score ψ(h)
        self.embed = sn_embedding(n_classes, outs[-1])  # projection: ⟨embed(y), h⟩

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i + 1 == self.attn_block:
                h = self.attention(h)
        h = F.relu(h).sum(dim=(2, 3))  # N×C, global sum pooling
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)  # N
