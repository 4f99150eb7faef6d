"""Sampling a trained generator into an ImageSet, class budgets, and preview grids.

- `class_counts(labels_or_proportions, m)`: how many of m samples each class gets (largest
  remainder rounding of the class proportions of X_v1, or everything to chosen classes).
- `class_ids_from_counts(counts)`: the per-sample class ids for those counts (class-sorted).
- `sample_imageset(module, m, class_ids, seed)`: m images from the EMA weights, deterministic for
  (seed, batch_size), labelled with the dataset's original label values.
- `save_grid(images, path, nrow)`: a PNG preview grid, written atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from gmv.console import progress_bar
from gmv.data.imageset import ImageSet
from gmv.errors import GmvError
from gmv.generators.base import check_labels
from gmv.io import atomic_path


def class_counts(labels_or_proportions, m: int, *, n_classes: int | None = None,
                 only: Iterable[int] | None = None) -> np.ndarray:
    """Split `m` samples over classes: int64 counts per class id, summing to `m`.

    `labels_or_proportions`: either integer class ids of the training set (contiguous ids
    0..K−1; their frequencies are the proportions) or non-negative per-class weights (floats,
    length K; normalised here). `n_classes` pads the label histogram to K classes. `only` keeps
    just those class ids (renormalised; an equal split if they all have weight 0), so
    `only=[c]` gives all m samples to class c. Rounding is by largest remainder: each class gets
    floor(m·p), and the leftover samples go to the largest fractional parts (ties: lower id).
    """
    m = int(m)
    if m < 0:
        raise GmvError(f"the number of samples m must be ≥ 0, got {m}")
    x = np.asarray(labels_or_proportions)
    if x.ndim != 1 or x.size == 0:
        raise GmvError("class_counts needs a non-empty 1-D array of labels or class proportions")
    if np.issubdtype(x.dtype, np.integer) or x.dtype == bool:
        if x.min() < 0:
            raise GmvError(
                "class_counts: labels must be contiguous class ids ≥ 0 (map them with the datamodule first)"
            )
        if n_classes is not None and x.max() >= n_classes:
            raise GmvError(f"class_counts: label {int(x.max())} is out of range for {n_classes} classes")
        weights = np.bincount(x.astype(np.int64), minlength=n_classes or 0).astype(np.float64)
    elif np.issubdtype(x.dtype, np.floating):
        weights = x.astype(np.float64)
        if not np.all(np.isfinite(weights)) or weights.min() < 0:
            raise GmvError("class_counts: class proportions must be finite and ≥ 0")
        if n_classes is not None and len(weights) != n_classes:
            raise GmvError(f"class_counts: {len(weights)} proportions given for {n_classes} classes")
    else:
        raise GmvError(f"class_counts: expected integer labels or float proportions, got dtype {x.dtype}")
    k = len(weights)
    if only is not None:
        chosen = np.asarray(sorted(set(int(c) for c in only)), np.int64)
        if chosen.size == 0:
            raise GmvError("class_counts: `only` names no class")
        if chosen.min() < 0 or chosen.max() >= k:
            raise GmvError(f"class_counts: chosen classes {chosen.tolist()} out of range for {k} classes")
        mask = np.zeros(k, bool)
        mask[chosen] = True
        weights = np.where(mask, weights, 0.0)
        if weights.sum() == 0:
            weights = mask.astype(np.float64)
    total = weights.sum()
    if total <= 0:
        raise GmvError("class_counts: all class proportions are zero")
    quota = weights / total * m
    counts = np.floor(quota).astype(np.int64)
    left = m - int(counts.sum())
    if left > 0:
        frac = quota - counts
        order = np.lexsort((np.arange(k), -frac))  # largest remainder first, ties → lower class id
        counts[order[:left]] += 1
    return counts


def class_ids_from_counts(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per-sample contiguous class ids for per-class counts: [0]*c0 + [1]*c1 + …"""
    counts = np.asarray(counts, np.int64)
    if counts.ndim != 1 or (counts.size and counts.min() < 0):
        raise GmvError("class counts must be a 1-D array of non-negative integers")
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def _module_training_flags(module: torch.nn.Module) -> list[tuple[torch.nn.Module, bool]]:
    return [(m, m.training) for m in module.modules()]


def _restore_training_flags(flags: list[tuple[torch.nn.Module, bool]]) -> None:
    for m, was in flags:
        m.training = was


def generate_uint8(module, class_ids: torch.Tensor, generator: torch.Generator) -> np.ndarray:
    """One `generate` call → uint8 N×H×W×C, with shape and finiteness checks."""
    out = module.generate(class_ids, generator)
    if not isinstance(out, torch.Tensor) or out.ndim != 4 or out.shape[0] != len(class_ids):
        raise GmvError(
            f"{type(module).__name__}.generate must return float N×C×H×W for N={len(class_ids)} labels, "
            f"got {getattr(out, 'shape', type(out))}"
        )
    out = out.detach().float().cpu()
    if not torch.isfinite(out).all():
        raise GmvError(
            f"{type(module).__name__} generated non-finite pixels (NaN/inf): training has diverged; "
            "use an earlier checkpoint or a lower learning rate"
        )
    return ImageSet.from_float(out.numpy()).images


def sample_imageset(module, m: int, class_ids: np.ndarray | None, seed: int, batch_size: int = 256,
                    label_values: np.ndarray | Sequence[int] | None = None,
                    class_names: list[str] | None = None, name: str = "generated",
                    progress: bool = True, generator: torch.Generator | None = None) -> ImageSet:
    """Draw `m` images from a GeneratorModule (its EMA weights) as a uint8 ImageSet.

    `class_ids`: the contiguous class id of every sample (length m; None → all class 0, the
    unconditional case). `label_values[k]` is the original label of class id k (the datamodule's
    `class_ids`); the returned labels are mapped through it (unmapped ids when None).
    Deterministic for (seed, batch_size): one CPU `torch.Generator` seeded with `seed` feeds the
    batches in order, so the same call gives bit-identical images on the same device. `generator`: use
    this (already seeded) generator instead, and leave it advanced — so that consecutive calls on batch
    boundaries draw exactly what one call would (resumable sampling, gmv/pipeline/sample_stage.py).
    """
    m = int(m)
    if m < 1:
        raise GmvError(f"the number of samples m must be ≥ 1, got {m}")
    if batch_size < 1:
        raise GmvError(f"batch_size must be ≥ 1, got {batch_size}")
    n_classes = int(getattr(module, "n_classes", 1))
    ids = np.zeros(m, np.int64) if class_ids is None else np.asarray(class_ids).astype(np.int64, copy=False)
    if ids.shape != (m,):
        raise GmvError(f"sample_imageset: {ids.size} class ids given for m={m} samples")
    check_labels(ids, n_classes)
    if label_values is not None:
        label_values = np.asarray(label_values, np.int64)
        if label_values.ndim != 1 or len(label_values) < n_classes:
            raise GmvError(
                f"sample_imageset: label_values needs one original label per class id ({n_classes}), "
                f"got {label_values.shape}"
            )
        labels = label_values[ids]
    else:
        labels = ids.copy()

    device = getattr(module, "device", torch.device("cpu"))
    if generator is None:
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
    flags = _module_training_flags(module)
    module.eval()
    chunks = []
    try:
        with torch.inference_mode(), progress_bar(total=m, unit="img", desc=f"sampling {name}",
                                          disable=not progress, leave=False) as bar:
            for start in range(0, m, batch_size):
                y = torch.from_numpy(ids[start:start + batch_size]).to(device)
                chunks.append(generate_uint8(module, y, generator))
                bar.update(len(y))
    finally:
        _restore_training_flags(flags)
    return ImageSet(np.concatenate(chunks), labels, class_names=class_names, name=name)


def save_grid(images: np.ndarray | ImageSet, path: str | Path, nrow: int = 8, padding: int = 2) -> Path:
    """Write uint8 N×H×W×C images as one PNG grid (`nrow` images per row), atomically."""
    from PIL import Image
    from torchvision.utils import make_grid

    if isinstance(images, ImageSet):
        images = images.images
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8 or len(images) == 0:
        raise GmvError(
            f"save_grid needs uint8 N×H×W×C images with C = 1 or 3, got {images.dtype} {images.shape}"
        )
    if nrow < 1:
        raise GmvError(f"nrow must be ≥ 1, got {nrow}")
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    grid = make_grid(x, nrow=int(nrow), padding=int(padding), pad_value=255)  # C×H×W, 3 channels
    arr = grid.permute(1, 2, 0).contiguous().numpy()
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    return path
