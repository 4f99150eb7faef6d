"""Stand-in generated sets for checking valuation without a generator.

`augmented_copies` draws m images from a set (with replacement) and applies the standard CIFAR
training augmentations: random crop after 2-pixel reflection padding, horizontal flip, and a
small brightness/contrast jitter. It imitates a generator that reproduces part of its training
data imperfectly: each copy's source is recorded, so a valuation can be checked against it.
"""

from __future__ import annotations

import numpy as np

from gmv.data.imageset import ImageSet


def augmented_copies(data: ImageSet, m: int, seed: int = 0, pad: int = 2, jitter: float = 0.1,
                     flip: bool = True) -> ImageSet:
    rng = np.random.default_rng(seed)
    src = rng.integers(0, len(data), m)
    h, w = data.images.shape[1:3]
    padded = np.pad(data.images[src], ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    dy, dx = rng.integers(0, 2 * pad + 1, m), rng.integers(0, 2 * pad + 1, m)
    out = np.stack([padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(m)]).astype(np.float32)
    flipped = (rng.random(m) < 0.5) & flip  # drawn either way: the other draws do not depend on `flip`
    out[flipped] = out[flipped, :, ::-1]
    brightness = rng.uniform(-jitter, jitter, (m, 1, 1, 1)) * 255
    contrast = rng.uniform(1 - jitter, 1 + jitter, (m, 1, 1, 1))
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    out = (out - mean) * contrast + mean + brightness
    pixels = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return ImageSet(pixels, data.labels[src], class_names=data.class_names, name=f"{data.name}_augmented",
                    extras={"source_index": src})


def near_copies(data: ImageSet, m: int, seed: int = 0, flip: bool = True, pad: int | None = None,
                jitter: float = 0.1, colour: float = 0.05, noise: float = 0.03) -> ImageSet:
    """m near-copies of random images of `data` (drawn with replacement, sources recorded): a random crop
    after `pad`-pixel reflection padding (default: 1/16 of the image side — 2 pixels at 32×32, as CIFAR's
    standard augmentation; none at 8×8, where one pixel is an eighth of a digit), a horizontal flip (when `flip`; off for data without that
    symmetry, such as digits), brightness/contrast jitter (±`jitter`), a per-channel colour gain
    (±`colour`, RGB only) and Gaussian pixel noise (σ = `noise` of the 0–255 range). What a generator
    that copies its training data imperfectly would emit: the positive control of the dose-response study."""
    rng = np.random.default_rng([seed, 1])
    pad = data.images.shape[1] // 16 if pad is None else pad
    base = augmented_copies(data, m, seed=seed, pad=pad, jitter=jitter, flip=flip)
    src = base.extras["source_index"]
    out = base.images.astype(np.float32)
    if out.shape[-1] == 3 and colour > 0:
        out *= rng.uniform(1 - colour, 1 + colour, (m, 1, 1, 3))
    if noise > 0:
        out += rng.normal(0.0, noise * 255, out.shape)
    pixels = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return ImageSet(pixels, data.labels[src], class_names=data.class_names, name=f"{data.name}_near_copies",
                    extras={"source_index": src})

