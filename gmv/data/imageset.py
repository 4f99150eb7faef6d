"""ImageSet: the one in-memory form of every image collection gmv handles.

Pixels are uint8, N×H×W×C (C = 1 or 3), labels int64 (−1 where unknown), exactly the
layout of the shared `.npz` format, so a set round-trips through `save_npz`/`load_npz`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gmv.errors import GmvError
from gmv.io import save_npz


def checked_labels(name: str, shape: tuple[int, ...], labels, attributes) -> np.ndarray:
    """The per-image labels (−1 when none) of an image set of `shape` N×H×W×C, after checking the shape,
    the labels and the attribute rows (the checks ImageSet and the streamed LazyImageSet share)."""
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise GmvError(f"{name}: images must be N×H×W×C with C = 1 or 3, got shape {shape}")
    n = shape[0]
    if n == 0:
        raise GmvError(f"{name}: the image set is empty")
    labels = np.full(n, -1, np.int64) if labels is None else np.asarray(labels, np.int64)
    if labels.shape != (n,):
        raise GmvError(f"{name}: {len(labels)} labels for {n} images")
    if attributes is not None and len(attributes) != n:
        raise GmvError(f"{name}: {len(attributes)} attribute rows for {n} images")
    return labels


class PixelAccess:
    """What ImageSet and the streamed gmv.data.stream.LazyImageSet share: length, (H, W, C), indexing."""

    images: Any

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C)."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def __getitem__(self, index) -> np.ndarray:
        """The pixels of the images at `index` (uint8 n×H×W×C; a LazyImageSet reads just those)."""
        return self.images[index]


@dataclass
class ImageSet(PixelAccess):
    images: np.ndarray  # uint8 N×H×W×C
    labels: np.ndarray  # int64 N, −1 where unknown
    class_names: list[str] | None = None
    attributes: np.ndarray | None = None  # uint8 N×A in {0, 1} (CelebA)
    attr_names: list[str] | None = None
    name: str = "images"
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # other per-image arrays (identity, …)

    def __post_init__(self):
        images = np.asarray(self.images)
        if images.ndim == 3:  # N×H×W grey
            images = images[..., None]
        self.labels = checked_labels(self.name, tuple(images.shape), self.labels, self.attributes)
        if images.dtype != np.uint8:
            raise GmvError(f"{self.name}: images must be uint8 pixels 0–255, got {images.dtype}")
        self.images = images

    def subset(self, index: np.ndarray, name: str | None = None) -> "ImageSet":
        index = np.asarray(index)
        return replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            attributes=None if self.attributes is None else self.attributes[index],
            extras={k: v[index] for k, v in self.extras.items()},
            name=name or self.name,
        )

    def to_float(self) -> np.ndarray:
        """float32 N×C×H×W in [−1, 1], the generators' input range."""
        return self.images.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0

    @classmethod
    def from_float(cls, x: np.ndarray, labels: np.ndarray | None = None, name: str = "generated") -> "ImageSet":
        """From float N×C×H×W in [−1, 1] (a generator's output)."""
        x = np.asarray(x, dtype=np.float32)
        pixels = np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return cls(pixels, labels, name=name)

    def save_npz(self, path: str | Path) -> Path:
        arrays = {"images": self.images, "labels": self.labels, **self.extras}
        if self.class_names is not None:
            arrays["class_names"] = np.asarray(self.class_names)
        if self.attributes is not None:
            arrays["attributes"] = self.attributes
            if self.attr_names is not None:  # np.asarray(None) is an object array load_npz cannot read
                arrays["attr_names"] = np.asarray(self.attr_names)
        return save_npz(path, **arrays)


def concat(sets: list[ImageSet], name: str) -> ImageSet:
    """Stack image sets of one shape into one (attributes and extras kept only when all have them)."""
    shapes = {s.shape for s in sets}
    if len(shapes) != 1:
        raise GmvError(
            f"cannot combine image sets of different shapes {sorted(shapes)}: "
            "resize them to one size first (e.g. the data source's `image_size` option)"
        )
    attrs = None
    if all(s.attributes is not None for s in sets):
        attrs = np.concatenate([s.attributes for s in sets])
    return ImageSet(
        np.concatenate([s.images for s in sets]),
        np.concatenate([s.labels for s in sets]),
        class_names=sets[0].class_names,
        attributes=attrs,
        attr_names=sets[0].attr_names if attrs is not None else None,
        name=name,
        extras=concat_extras(sets),
    )


def concat_extras(sets) -> dict[str, np.ndarray]:
    """The per-image extras (identity, …) that every set has, stacked in the sets' order."""
    shared = set.intersection(*(set(s.extras) for s in sets))
    return {k: np.concatenate([s.extras[k] for s in sets]) for k in sorted(shared)}
