"""Training-set edits: what X_v1 loses (`data.subset`) and gains (`data.addition`) before the generator
trains on it — one mechanism for the data-addition experiments and for counterfactual retraining.

Removals (`data.subset`, applied first), one of:

    keep: [dataset indices]      train on these X_v1 images only
    drop: [dataset indices]      train on X_v1 without these
    ranking: PATH                drop `r` X_v1 images chosen by `rule` — top (the highest `column` values of a
    column: value                values.csv of a study on the same split: `value`, or a baseline's column),
    rule: top | bottom | random  bottom (the lowest), random (a seeded draw; `ranking` may then be omitted)
    r: N                         ties are broken by X_v1 order
    seed: S
    target: J                    with `ranking` the folder of a finished run: rank by generated image J's
                                 attributions under the method `column` (value: the run's main method) — the
                                 per-target counterfactual (gmv/valuation/run_attributions.py)

The removed images leave X_v1 and the valued pool; split.npz records them (`dropped`). X̂'s class mix
keeps following the X_v1 before removals, so models retrained on different subsets are asked for the same
labels with the same noise — sample j of one and sample j of another are paired.

Additions (`data.addition`):

Each addition is one kind, a size and a seed (the Hydra group `addition` holds ready-made lists):

    kind       what joins X_v1                                                  its label
    duplicate  exact copies of X_v1 images (copy and original are both valued)  the original's
    near_copy  augmented copies of X_v1 images (gmv.data.augment.near_copies)  the original's
    clean      further images of X_v1's classes from the study's data, in       their own
               neither X_v1 nor X_v2 (the control: should behave like X_v1)
    ood        images of another source — `source` (a data source: name, .npz,   a random X_v1 class
               folder), or with no source the study's own images of classes
               outside X_v1's — relabelled into X_v1's classes
    corrupt    further in-distribution images (as `clean`) damaged by heavy      their own
               Gaussian noise, blur or JPEG compression (`corruption`: noise |
               blur | jpeg | mixed — the three in turn)
    mislabel   further in-distribution images (as `clean`) with another class    a wrong one
    noise      uniform noise pixels                                              a random X_v1 class

    size: `fraction` of the original X_v1 (rounded half up, at least 1) or `count` images.

The edited X_v1 is the original rows first, then the added rows in the order of the list; its pixels
and labels are what the train stage's cache key digests, so an edited X_v1 is cached by content like
any other. Every added row is recorded (kind, source, index into that source, its true label) in
split.npz and as columns of values.csv. Images taken from outside the split (clean, corrupt,
mislabel, own-data ood) are drawn without overlap and are kept out of the reference set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from gmv.data.imageset import ImageSet, concat
from gmv.data.split import Split
from gmv.data.subset import Subset, parse_subset, subset_rows  # noqa: F401  (parse_subset: re-exported)
from gmv.errors import GmvError

KINDS = ("duplicate", "near_copy", "clean", "ood", "corrupt", "mislabel", "noise")
CORRUPTIONS = ("noise", "blur", "jpeg")
#: kinds drawn from the study's data outside the split (in X_v1's classes)
FROM_OUTSIDE = ("clean", "corrupt", "mislabel")
#: heavy damage: Gaussian noise σ (of 255), blur σ as a share of the image side, JPEG quality
NOISE_SIGMA, BLUR_SHARE, JPEG_QUALITY = 80.0, 1 / 8, 5


@dataclass(frozen=True)
class Addition:
    kind: str
    fraction: float | None = None  # share of the original X_v1
    count: int | None = None  # or a number of images
    seed: int = 0
    source: str | None = None  # ood: a data source; None = the study's images of other classes
    corruption: str = "mixed"  # corrupt: noise | blur | jpeg | mixed

    def size(self, n_v1: int) -> int:
        if self.count is not None:
            return self.count
        return max(1, int(np.floor(self.fraction * n_v1 + 0.5)))


def parse_additions(spec: Sequence[Mapping[str, Any]] | None, default_seed: int = 0) -> tuple[Addition, ...]:
    """`data.addition` → Additions, judged before any data is loaded: one line per mistake."""
    if not spec:
        return ()
    out = []
    for i, item in enumerate(spec):
        where = f"data.addition[{i}]"
        if not hasattr(item, "get"):
            raise GmvError(f"{where} must be a mapping such as {{kind: duplicate, fraction: 0.1}}, got {item!r}")
        unknown = sorted(set(item) - {"kind", "fraction", "count", "seed", "source", "corruption"})
        if unknown:
            raise GmvError(f"{where}: unknown setting(s) {unknown}; valid: kind, fraction, count, seed, source, "
                           "corruption")
        kind = item.get("kind")
        if kind not in KINDS:
            raise GmvError(f"{where}: unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        fraction, count = item.get("fraction"), item.get("count")
        if (fraction is None) == (count is None):
            raise GmvError(f"{where} ({kind}): give exactly one of fraction (a share of X_v1) or count")
        if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                                     or not 0 < fraction <= 1):
            raise GmvError(f"{where} ({kind}): fraction must be a share of X_v1 in (0, 1], got {fraction!r}")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise GmvError(f"{where} ({kind}): count must be an integer ≥ 1, got {count!r}")
        corruption = item.get("corruption") or "mixed"
        if corruption not in (*CORRUPTIONS, "mixed"):
            raise GmvError(f"{where} ({kind}): corruption must be one of {', '.join(CORRUPTIONS)} or mixed, "
                           f"got {corruption!r}")
        if item.get("source") is not None and kind != "ood":
            raise GmvError(f"{where} ({kind}): `source` applies to kind ood only")
        seed = item.get("seed")
        out.append(Addition(kind, None if fraction is None else float(fraction), count,
                            int(default_seed if seed is None else seed), item.get("source"), corruption))
    return tuple(out)


@dataclass
class EditedTrainingSet:
    """X_v1 after the edit, and where each of its rows came from."""

    v1: ImageSet  # the original X_v1 rows, then the added rows
    kind: np.ndarray  # str per row: "" for an original image, else the addition's kind
    source: np.ndarray  # str per row: the data source an added image came from ("" for originals)
    source_index: np.ndarray  # int64 per row: index into that source (−1: none, e.g. noise)
    true_label: np.ndarray  # int64 per row: the image's own label (−1 where it has none)
    outside: np.ndarray  # int64: the study's data indices taken from outside the split
    dropped: np.ndarray  # int64: dataset indices of the X_v1 images a subset removed
    sampling_labels: np.ndarray  # int64: labels whose class mix X̂ follows (X_v1 before removals, with additions)

    @property
    def added(self) -> np.ndarray:
        return self.kind != ""

    def record(self) -> dict[str, np.ndarray]:
        """split.npz's arrays for the added rows (in X_v1's row order after the originals)."""
        a = self.added
        return {"added_kind": self.kind[a], "added_source": self.source[a], "added_index": self.source_index[a],
                "added_label": self.v1.labels[a], "added_true_label": self.true_label[a], "dropped": self.dropped}

    def pool_columns(self, n_v2: int) -> dict[str, np.ndarray]:
        """values.csv's provenance columns for the pool X_v1 (edited) ∪ X_v2."""
        pad = np.full(n_v2, "", dtype=object)
        return {"added": np.concatenate([self.kind.astype(object), pad]),
                "added_source": np.concatenate([self.source.astype(object), pad]),
                "added_index": np.concatenate([np.where(self.added, self.source_index, -1),
                                               np.full(n_v2, -1)]).astype(np.int64)}


def _rng(addition: Addition) -> np.random.Generator:
    return np.random.default_rng([addition.seed, KINDS.index(addition.kind)])


def corrupt(images: np.ndarray, how: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Heavy damage per image: `how[i]` of noise (Gaussian, σ = 80 of 255), blur (Gaussian, σ = an eighth of
    the side) or jpeg (quality 5)."""
    import io

    from PIL import Image
    from scipy.ndimage import gaussian_filter

    out = np.empty_like(images)
    side = images.shape[1]
    for i, (img, h) in enumerate(zip(images, how)):
        if h == "noise":
            out[i] = np.clip(np.rint(img + rng.normal(0.0, NOISE_SIGMA, img.shape)), 0, 255)
        elif h == "blur":
            blurred = gaussian_filter(img.astype(np.float32), sigma=(side * BLUR_SHARE, side * BLUR_SHARE, 0))
            out[i] = np.clip(np.rint(blurred), 0, 255)
        else:
            buf = io.BytesIO()
            Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="JPEG", quality=JPEG_QUALITY)
            back = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
            out[i] = back.reshape(img.shape)
    return out


def _pick(pool: np.ndarray, n: int, rng: np.random.Generator, what: str) -> np.ndarray:
    if len(pool) < n:
        raise GmvError(f"{what}: needs {n} images but only {len(pool)} are available; lower its fraction / count")
    return np.sort(rng.choice(pool, n, replace=False))


def apply_edit(data: ImageSet, split: Split, v1: ImageSet, additions: Sequence[Addition] = (),
               subset: Subset | None = None, *, image_size: int | None = None, conditional: bool = True,
               hflip: bool = False) -> EditedTrainingSet:
    """X_v1 without `subset`'s removals and with `additions` appended (module docstring). `image_size`: the
    data section's (an `ood` source is resized alike; with none, an ood source of another size is an error);
    `conditional`: whether the generator sees labels (mislabel needs it); `hflip`: near copies may flip when
    the study flips. Additions are drawn from the X_v1 the split made, whatever the subset removes."""
    from gmv.data.augment import near_copies
    from gmv.data.sources import load_images

    kept = np.arange(len(v1)) if subset is None else subset_rows(subset, split, v1)
    dropped = np.setdiff1d(split.v1, split.v1[kept]).astype(np.int64)
    n0 = len(v1)
    classes = np.unique(v1.labels)
    taken = np.zeros(len(data), bool)
    taken[split.v1] = taken[split.v2] = True
    parts = [v1]
    kind, source = [np.full(n0, "", dtype=object)], [np.full(n0, "", dtype=object)]
    index, true_label = [np.full(n0, -1, np.int64)], [v1.labels.astype(np.int64)]
    outside: list[np.ndarray] = []
    for i, a in enumerate(additions):
        what = f"data.addition[{i}] ({a.kind})"
        n, rng = a.size(n0), _rng(a)
        if a.kind in ("duplicate", "near_copy"):
            if a.kind == "duplicate":
                rows = rng.choice(n0, n, replace=n > n0)
                added = v1.subset(rows)
            else:
                added = near_copies(v1, n, seed=int(rng.integers(2**31)), flip=hflip)
                rows = added.extras["source_index"]
            images, labels, src, idx, own = added.images, v1.labels[rows], data.name, split.v1[rows], v1.labels[rows]
        elif a.kind in FROM_OUTSIDE:
            free = np.flatnonzero(~taken & np.isin(data.labels, classes))
            pick = _pick(free, n, rng, f"{what}: images of X_v1's classes in neither half")
            taken[pick] = True
            outside.append(pick)
            images, own = data.images[pick], data.labels[pick].astype(np.int64)
            labels, src, idx = own.copy(), data.name, pick
            if a.kind == "corrupt":
                how = CORRUPTIONS * (n // 3 + 1) if a.corruption == "mixed" else (a.corruption,) * n
                images = corrupt(images, how[:n], rng)
            elif a.kind == "mislabel":
                if len(classes) < 2:
                    raise GmvError(f"{what}: X_v1 has one class, so no label can be wrong; drop this addition")
                if not conditional:
                    raise GmvError(f"{what}: the generator is unconditional (train.conditional=false) and never "
                                   "sees labels; mislabel needs a class-conditional study")
                pos = np.searchsorted(classes, own)
                labels = classes[(pos + rng.integers(1, len(classes), n)) % len(classes)]
        elif a.kind == "ood":
            if a.source is None:
                free = np.flatnonzero(~np.isin(data.labels, classes) & ~taken)
                if len(free) == 0:
                    raise GmvError(f"{what}: X_v1 holds every class of the data, so the study's own data has no "
                                   "other class to take; give `source` (e.g. photos, or an .npz path)")
                pick = _pick(free, n, rng, f"{what}: images of classes outside X_v1")
                taken[pick] = True
                outside.append(pick)
                images, own, src, idx = data.images[pick], data.labels[pick].astype(np.int64), data.name, pick
            else:
                other = load_images(a.source, **({"image_size": image_size} if image_size else {}),
                                    channels=v1.shape[2])
                if other.shape != v1.shape:
                    raise GmvError(f"{what}: source {a.source!r} gives {'×'.join(map(str, other.shape))} images, "
                                   f"X_v1 is {'×'.join(map(str, v1.shape))}; set data.image_size so both are "
                                   "resized alike")
                pick = _pick(np.arange(len(other)), n, rng, f"{what}: source {a.source!r}")
                images, own, src, idx = other.images[pick], np.full(n, -1, np.int64), other.name, pick
            labels = rng.choice(classes, n)
        else:  # noise
            images = rng.integers(0, 256, (n, *v1.shape), dtype=np.uint8)
            labels, src, idx, own = rng.choice(classes, n), "noise", np.full(n, -1), np.full(n, -1, np.int64)
        parts.append(ImageSet(np.ascontiguousarray(images, np.uint8), np.asarray(labels, np.int64),
                              class_names=v1.class_names, name=a.kind))
        kind.append(np.full(n, a.kind, dtype=object))
        source.append(np.full(n, src, dtype=object))
        index.append(np.asarray(idx, np.int64))
        true_label.append(np.asarray(own, np.int64))
    full = concat(parts, name=v1.name)
    sampling_labels = full.labels.copy()  # before removals: retrains on different subsets stay paired
    rows = np.concatenate([kept, np.arange(n0, len(full))])
    name = v1.name + ("+added" if additions else "") + ("-subset" if subset is not None else "")
    edited = full.subset(rows, name=name)
    edited.class_names = v1.class_names
    return EditedTrainingSet(edited, np.concatenate(kind).astype(str)[rows], np.concatenate(source).astype(str)[rows],
                             np.concatenate(index)[rows], np.concatenate(true_label)[rows],
                             np.sort(np.concatenate(outside)) if outside else np.zeros(0, np.int64), dropped,
                             sampling_labels)
