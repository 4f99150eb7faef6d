"""Class-stratified split of a dataset into X_v1 (the generator trains on it) and X_v2 (held out)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gmv.data.imageset import ImageSet
from gmv.errors import GmvError
from gmv.io import save_npz


@dataclass(frozen=True)
class Split:
    v1: np.ndarray  # int64 indices into the dataset: the generator's training half
    v2: np.ndarray  # int64 indices: held out, never seen by the generator

    def save(self, path: str | Path, **record: np.ndarray) -> Path:
        """split.npz: v1, v2 and any further arrays (a training-set edit's record, gmv.data.edit)."""
        return save_npz(path, v1=self.v1, v2=self.v2, **record)

    @classmethod
    def load(cls, path: str | Path) -> "Split":
        z = np.load(path)
        return cls(z["v1"], z["v2"])


def stratified_split(labels: np.ndarray, ratio: float = 0.5, classes: Sequence[int] | None = None,
                     seed: int = 0, per_class_limit: int | None = None) -> Split:
    """Within every class, a seeded permutation puts the first `ratio` share in v1, the rest in v2.

    The share is rounded half up, ⌊ratio·n + ½⌋ images to v1, alike for every class (Python's `round`
    rounds half to even — 2.5 → 2 but 3.5 → 4 — so odd classes tipped one way or the other by size).

    `classes` keeps only those classes; `per_class_limit` caps how many images of each class are
    used (before splitting). Disjoint by construction: each index goes to exactly one side.
    """
    if not 0.0 < ratio < 1.0:
        raise GmvError(f"split ratio must be strictly between 0 and 1, got {ratio}")
    labels = np.asarray(labels)
    present = np.unique(labels)
    wanted = present if classes is None else np.asarray(sorted(set(int(c) for c in classes)))
    if len(wanted) == 0:
        raise GmvError("no classes to split: the data has no labels" if classes is None
                       else "no classes to split: `classes` is empty")
    missing = sorted(set(wanted.tolist()) - set(present.tolist()))
    if missing:
        raise GmvError(f"classes {missing} are absent from the data (present: {present.tolist()})")
    rng = np.random.default_rng(seed)
    v1, v2 = [], []
    for c in wanted:
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        if per_class_limit is not None:
            idx = idx[:per_class_limit]
        n1 = int(np.floor(ratio * len(idx) + 0.5))
        if n1 == 0 or n1 == len(idx):
            raise GmvError(f"class {c} has {len(idx)} images: too few to split at ratio {ratio}")
        v1.append(idx[:n1])
        v2.append(idx[n1:])
    return Split(np.sort(np.concatenate(v1)).astype(np.int64), np.sort(np.concatenate(v2)).astype(np.int64))


def split_imageset(data: ImageSet, split: Split) -> tuple[ImageSet, ImageSet]:
    return data.subset(split.v1, name=f"{data.name}_v1"), data.subset(split.v2, name=f"{data.name}_v2")
