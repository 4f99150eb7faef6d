"""Synthetic image-feature-like embeddings for the scale benchmarks (numpy only).

Real CNN features of natural images are not uniform noise: they sit near a low-dimensional
subspace, group by class and sub-class, the groups differ in size and spread, and the generated
images a generator makes fall among the training images' groups. The generator here mimics that:

- 100 classes, 10 sub-classes each (1,000 Gaussian centres) in a 64-d latent space: class centres
  ~ N(0, 4²·I), sub-class centres = class centre + N(0, 1.5²·I);
- Zipf-like sub-class weights (w_j ∝ 1/(rank + 10)), per-sub-class spread σ_j log-normal
  (median 1.0, σ_log = 0.3);
- the latent points mapped into D dimensions by a fixed random orthonormal 64×D matrix, plus
  isotropic ambient noise of 0.25 per dimension (features are never exactly low-rank);
- queries ("generated points") come from the same mixture with 10% more spread.
"""

from __future__ import annotations

import numpy as np

LATENT, CLASSES, SUB = 64, 100, 10


def _mixture(d: int, seed: int):
    rng = np.random.default_rng(seed)
    classes = rng.normal(0, 4.0, (CLASSES, LATENT))
    centres = (np.repeat(classes, SUB, axis=0) + rng.normal(0, 1.5, (CLASSES * SUB, LATENT)))
    weights = 1.0 / (rng.permutation(CLASSES * SUB) + 10.0)
    weights /= weights.sum()
    spread = np.exp(rng.normal(0.0, 0.3, CLASSES * SUB))
    basis, _ = np.linalg.qr(rng.normal(size=(d, LATENT)))  # D×64, orthonormal columns
    return centres, weights, spread, basis.T.astype(np.float32)


def features(n: int, d: int = 512, seed: int = 0, mixture_seed: int = 1234, extra_spread: float = 1.0,
             chunk: int = 100_000) -> np.ndarray:
    """n×d float32 embeddings from the mixture (`mixture_seed` fixes the centres, `seed` the draw)."""
    centres, weights, spread, basis = _mixture(d, mixture_seed)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for start in range(0, n, chunk):
        c = min(chunk, n - start)
        j = rng.choice(len(centres), c, p=weights)
        z = centres[j] + rng.standard_normal((c, LATENT)) * (spread[j] * extra_spread)[:, None]
        block = out[start:start + c]
        rng.standard_normal(out=block, dtype=np.float32)
        block *= 0.25
        block += z.astype(np.float32) @ basis
    return out


def pool_and_queries(n: int, m: int, d: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The training pool (n×d) and the generated set (m×d) of one benchmark cell."""
    return features(n, d, seed=seed), features(m, d, seed=seed + 1, extra_spread=1.1)
