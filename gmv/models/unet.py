"""The denoiser ε_θ(x_t, t, y) of classifier-free guidance diffusion: the DDPM UNet (Ho, Jain & Abbeel
2020, "Denoising Diffusion Probabilistic Models"), as diffusers' `UNet2DModel`, with a class embedding.

    x_t  N×C×S×S ─ conv_in ─▶ N×c₀×S×S
         ─ down level 0 (c₀, S×S)  ─ … ─ down level L−1 (c_{L−1}, S/2^{L−1}) ─ mid (ResNet, attention, ResNet)
         ─ up level L−1 … up level 0 (skip connections from the down path) ─ GroupNorm ─ SiLU ─ conv_out
         ─▶ ε̂  N×C×S×S

- levels: one per entry of `block_out_channels` (c₀ … c_{L−1}); every down level but the last halves
  the resolution (a stride-2 3×3 conv after zero-padding the bottom and right edges, DDPM's layout) and
  every up level but the last doubles it (nearest ×2, 3×3 conv), so S must be divisible by 2^{L−1}.
- each down level has `layers_per_block` residual blocks, each up level one more; a level whose
  feature-map side is in `attention_resolutions` adds a self-attention layer after every residual block
  (one head over all channels, as in DDPM); the middle block has one when `mid_attention`.
- timestep t: DDPM's sinusoidal embedding (sin then cos, frequency shift 1) → MLP → added in every
  residual block; class y: a learned embedding of n_classes + 1 entries, the last one the null label ∅,
  added to the time embedding.
- GroupNorm with `norm_groups` groups (ε = 1e-6) everywhere, so every width must be divisible by it.

The DDPM CIFAR-10 network is block_out_channels (128, 256, 256, 256), 2 residual blocks per level,
attention at 16×16, dropout 0.1: 35.75M parameters with 11 class embeddings.
"""

from __future__ import annotations

from typing import Sequence


def ddpm_unet(n_classes: int, image_size: int, channels: int, block_out_channels: Sequence[int],
              layers_per_block: int, attention_resolutions: Sequence[int], mid_attention: bool,
              dropout: float, norm_groups: int):
    """ε_θ as a diffusers `UNet2DModel`: (x_t N×C×S×S, t N, class_labels N in [0, n_classes]) → ε̂ N×C×S×S."""
    from diffusers import UNet2DModel

    attention = set(int(r) for r in attention_resolutions)
    n_levels = len(block_out_channels)
    # down level i works at image_size / 2^i; up level j (diffusers' order, coarsest first) at image_size / 2^(L-1-j)
    down = tuple("AttnDownBlock2D" if image_size // 2**i in attention else "DownBlock2D" for i in range(n_levels))
    up = tuple("AttnUpBlock2D" if image_size // 2 ** (n_levels - 1 - j) in attention else "UpBlock2D"
               for j in range(n_levels))
    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        time_embedding_type="positional",  # DDPM's sinusoidal embedding …
        flip_sin_to_cos=False,  # … sin first, as in DDPM
        freq_shift=1,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        downsample_padding=0,  # DDPM's stride-2 conv downsampling
        dropout=dropout,
        attention_head_dim=None,  # one head spanning all channels
        norm_num_groups=norm_groups,
        norm_eps=1e-6,
        add_attention=mid_attention,
        num_class_embeds=n_classes + 1,  # the last embedding is the null label ∅
    )
