"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The discriminator sees every image, real or generated, through the same random, differentiable
augmentations, so gradients flow through them back to the generator and the discriminator
cannot memorise a small training set. Three families, named in a policy string:

    color        random brightness (± 0.5), saturation (× 0–2) and contrast (× 0.5–1.5)
    translation  shift by up to 1/8 of the image side, the uncovered border filled with 0
    cutout       zero one square of half the image side at a random position

`diff_augment(x, "color,translation,cutout")` applies them in that order; "" applies none.
Inputs are float N×C×H×W (gmv's [−1, 1] range); every image draws its own parameters from
torch's global RNG, so a saved/restored RNG state reproduces the augmentations exactly.
"""

from __future__ import annotations

import torch

from gmv.errors import GmvError

TRANSLATION_RATIO = 0.125  # largest shift, as a fraction of the image side
CUTOUT_RATIO = 0.5  # side of the cut-out square, as a fraction of the image side


def rand_brightness(x: torch.Tensor) -> torch.Tensor:
    """Add one offset in [−0.5, 0.5) per image."""
    offset = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5
    return x + offset


def rand_saturation(x: torch.Tensor) -> torch.Tensor:
    """Scale each pixel's deviation from its channel mean by a factor in [0, 2) per image."""
    grey = x.mean(dim=1, keepdim=True)  # N×1×H×W
    factor = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) * 2.0
    return (x - grey) * factor + grey


def rand_contrast(x: torch.Tensor) -> torch.Tensor:
    """Scale each image's deviation from its overall mean by a factor in [0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # N×1×1×1
    factor = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5
    return (x - mean) * factor + mean


def rand_translation(x: torch.Tensor, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image by a whole number of pixels in [−ratio·side, ratio·side], zero-filled."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=x.device)
    # output pixel (i, j) reads input pixel (i − dy, j − dx); outside the image it is 0
    src_rows = torch.arange(h, device=x.device).view(1, h, 1) - dy  # N×H×1
    src_cols = torch.arange(w, device=x.device).view(1, 1, w) - dx  # N×1×W
    inside = (src_rows >= 0) & (src_rows < h) & (src_cols >= 0) & (src_cols < w)  # N×H×W
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    shifted = x.permute(0, 2, 3, 1)[batch, src_rows.clamp(0, h - 1), src_cols.clamp(0, w - 1)]  # N×H×W×C
    shifted = shifted * inside.unsqueeze(-1).to(x.dtype)
    return shifted.permute(0, 3, 1, 2).contiguous()


def rand_cutout(x: torch.Tensor, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero a (ratio·H)×(ratio·W) square per image, centred anywhere (it may be clipped by the border)."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    centre_y = torch.randint(0, h + (1 - size_h % 2), (n, 1, 1), device=x.device)
    centre_x = torch.randint(0, w + (1 - size_w % 2), (n, 1, 1), device=x.device)
    top, left = centre_y - size_h // 2, centre_x - size_w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)  # N×H×W
    return x * (~hole).unsqueeze(1).to(x.dtype)


AUGMENTATIONS = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color, translation' → ('color', 'translation'); unknown names raise GmvError."""
    names = tuple(p.strip() for p in str(policy or "").split(",") if p.strip())
    unknown = [p for p in names if p not in AUGMENTATIONS]
    if unknown:
        raise GmvError(
            f"unknown DiffAugment policy {unknown}; use a comma-separated subset of "
            f"{', '.join(AUGMENTATIONS)} (e.g. 'color,translation,cutout'), or '' for none"
        )
    return names


def policy_problems(policy: str) -> list[str]:
    """[] for a valid policy, else [the one-line reason] — for a generator's `check_settings`."""
    try:
        parse_policy(policy)
    except GmvError as e:
        return [str(e)]
    return []


def diff_augment(x: torch.Tensor, policy: str | tuple[str, ...]) -> torch.Tensor:
    """Apply the policy's augmentations in order (none: x itself); differentiable with respect to x."""
    names = parse_policy(policy) if isinstance(policy, str) else policy
    for name in names:
        for augment in AUGMENTATIONS[name]:
            x = augment(x)
    return x
