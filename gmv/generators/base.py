"""The contract every generator (BigGAN, StyleGAN2, classifier-free guidance diffusion) follows.

A generator is a `lightning.LightningModule` built from a named preset plus explicit overrides:

    module = BigGAN(n_classes=10, image_size=32, channels=3, preset="cifar10", n_dis=4)

- Training batches are `(x, y)`: x float32 N×C×H×W in [−1, 1], y int64 class ids in [0, n_classes).
  Unconditional use is n_classes = 1 (every y is 0).
- `self.iteration` counts *generator* iterations (one G update, or one denoiser update), is
  saved in checkpoints, and is what `max_iterations` in the training harness refers to. Do not
  use `trainer.global_step` for schedules: with manual optimisation it counts every optimiser step.
- `generate(labels, generator)` draws images from the EMA weights: float N×C×H×W in [−1, 1],
  deterministic for a given `torch.Generator` state, under `torch.inference_mode`.
- Bad settings raise `GmvError` in `__init__` (before any training).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

import lightning as L
import torch

from gmv.errors import GmvError

C = TypeVar("C")


def resolve_preset(name: str, presets: Mapping[str, C], overrides: Mapping[str, Any], what: str) -> C:
    """The preset `name` with `overrides` applied; unknown names or fields raise GmvError.

    An override of None means "the preset's value" (the Hydra configs list every field as null)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if name not in presets:
        raise GmvError(f"unknown {what} preset {name!r}; choose one of {', '.join(sorted(presets))}")
    base = presets[name]
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise GmvError(f"unknown {what} setting(s) {unknown}; valid settings: {', '.join(sorted(fields))}")
    return dataclasses.replace(base, **dict(overrides))


class GeneratorModule(L.LightningModule):
    """Base class: holds the data shape, the iteration counter and the sampling entry point."""

    def __init__(self, n_classes: int, image_size: int, channels: int):
        super().__init__()
        if n_classes < 1:
            raise GmvError(f"n_classes must be ≥ 1, got {n_classes}")
        if channels not in (1, 3):
            raise GmvError(f"channels must be 1 or 3, got {channels}")
        self.n_classes = int(n_classes)
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.register_buffer("_iteration", torch.zeros((), dtype=torch.long), persistent=True)

    @property
    def iteration(self) -> int:
        return int(self._iteration.item())

    def _advance_iteration(self) -> None:
        self._iteration += 1

    @torch.inference_mode()
    def generate(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Images float N×C×H×W in [−1, 1] for the given class ids, from the EMA weights."""
        raise NotImplementedError
