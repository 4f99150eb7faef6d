"""Stand-in generated sets for checking valuation without a generator.

`augmented_copies` draws m images from a set (with replacement) and applies the standard CIFAR
training augmentations: random crop after 2-pixel reflection padding, horizontal flip, and a
small brightness/contrast jitter. It imitates a generator that reproduces part of its training
data imperfectly: each copy's source is recorded, so a valuation can be checked against it.
"""

from __future__ import annotations

import numpy as np

from gmv.data.imageset import ImageSet


def augmented_copies(data: ImageSet, m: int, seed: int = 0, pad: int = 2, jitter: float = 0.1) -> ImageSet:
    rng = np.random.default_rng(seed)
    src = rng.integers(0, len(data), m)
    h, w = data.images.shape[1:3]
    padded = np.pad(data.images[src], ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    dy, dx = rng.integers(0, 2 * pad + 1, m), rng.integers(0, 2 * pad + 1, m)
    out = np.stack([padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(m)]).astype(np.float32)
    flip = rng.random(m) < 0.5
    out[flip] = out[flip, :, ::-1]
    brightness = rng.uniform(-jitter, jitter, (m, 1, 1, 1)) * 255
    contrast = rng.uniform(1 - jitter, 1 + jitter, (m, 1, 1, 1))
    mean = out.mean(axis=(1, 2, 3), keepdims=True)
    out = (out - mean) * contrast + mean + brightness
    pixels = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return ImageSet(pixels, data.labels[src], class_names=data.class_names, name=f"{data.name}_augmented",
                    extras={"source_index": src})
