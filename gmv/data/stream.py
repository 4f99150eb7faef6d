"""Streaming image sets: ImageSet's interface over pixels that are read only when needed.

    s = open_images("X_v1.npz")            # or an image folder; dataset names load eagerly (ImageSet)
    len(s), s.shape, s.labels              # (H, W, C); labels are small and held in memory
    s[idx]                                 # uint8 n×H×W×C for just those images (s.images[idx] too)
    for start, batch in iter_batches(s.images, batch_size=256, num_workers=4): ...

- folders: one file per image, decoded by PIL in `torch.utils.data.DataLoader` worker processes
  (`num_workers`; 0 decodes in the calling process and works everywhere). Opening lists and stats the
  files and, without `image_size`, reads every header (a PNG's first 24 bytes; other formats through PIL)
  so that mixed sizes stop before any work; a file unreadable past its header stops the run with one
  line naming it when it is decoded.
- `.npz`: gmv/data/npz_stream.py (a stored member is read in place, a compressed one decompressed once
  into the cache dir).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from gmv.data.imageset import ImageSet, PixelAccess, checked_labels, concat, concat_extras
from gmv.data.pixels import ConcatPixels, FolderPixels, PixelSource, SubsetPixels, as_pixels
from gmv.errors import GmvError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class LazyImageSet(PixelAccess):
    """An ImageSet whose `images` is a PixelSource (indexable like the uint8 N×H×W×C array)."""

    images: PixelSource
    labels: np.ndarray | None
    class_names: list[str] | None = None
    attributes: np.ndarray | None = None
    attr_names: list[str] | None = None
    name: str = "images"
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    ids: np.ndarray | None = None  # one id per image (a folder's relative file paths), or None

    def __post_init__(self):
        self.labels = checked_labels(self.name, tuple(self.images.shape), self.labels, self.attributes)

    def subset(self, index, name: str | None = None) -> "LazyImageSet":
        index = np.asarray(index, np.int64)
        return LazyImageSet(SubsetPixels(self.images, index), self.labels[index], self.class_names,
                            None if self.attributes is None else self.attributes[index], self.attr_names,
                            name or self.name, {k: v[index] for k, v in self.extras.items()},
                            None if self.ids is None else self.ids[index])

    def load(self) -> ImageSet:
        """Read every image into an in-memory ImageSet."""
        return ImageSet(self.images.read_range(0, len(self)), self.labels, class_names=self.class_names,
                        attributes=self.attributes, attr_names=self.attr_names, name=self.name,
                        extras=dict(self.extras))


def set_ids(s) -> np.ndarray | None:
    return getattr(s, "ids", None)


def concat_sets(sets: Sequence, name: str):
    """train ∪ held-out: an ImageSet when every part is in memory, else a LazyImageSet over the parts."""
    if all(isinstance(s, ImageSet) for s in sets):
        return concat(list(sets), name=name)
    pixels = ConcatPixels([as_pixels(s.images) for s in sets])
    attrs = None
    if all(s.attributes is not None for s in sets):
        attrs = np.concatenate([s.attributes for s in sets])
    ids = None
    if any(set_ids(s) is not None for s in sets):
        ids = np.concatenate([np.asarray(set_ids(s) if set_ids(s) is not None else np.arange(len(s))).astype(str)
                              for s in sets])
    return LazyImageSet(pixels, np.concatenate([s.labels for s in sets]), sets[0].class_names, attrs,
                        sets[0].attr_names if attrs is not None else None, name, concat_extras(sets), ids=ids)


# --- folders -------------------------------------------------------------------------------------


def list_image_files(root: Path) -> tuple[list[str], np.ndarray, list[str] | None]:
    """Image files of `root` (relative paths, sorted) with labels by sorted class sub-folder (−1 without)."""
    if not root.is_dir():
        raise GmvError(f"image folder not found: {root}")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    is_image = lambda p: p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")  # noqa: E731
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and is_image(p))
    if subdirs and loose:
        shown = ", ".join(loose[:5]) + (f" and {len(loose) - 5} more" if len(loose) > 5 else "")
        raise GmvError(f"{root} has class sub-folders ({', '.join(d.name for d in subdirs[:5])}"
                       f"{', …' if len(subdirs) > 5 else ''}) and also {len(loose)} image file(s) at its top level "
                       f"({shown}), which belong to no class: move them into a class folder or remove them")
    groups = list(enumerate(subdirs)) if subdirs else [(-1, root)]
    files, labels = [], []
    for label, d in groups:
        names = sorted(e.name for e in os.scandir(d) if e.is_file() and is_image(Path(e.name)))
        prefix = "" if d == root else d.name + "/"
        files += [prefix + n for n in names]
        labels += [label] * len(names)
    if not files:
        raise GmvError(f"no images found in {root} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}"
                       f"{' in its sub-folders' if subdirs else ''})")
    return files, np.asarray(labels, np.int64), [d.name for d in subdirs] or None


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(head: bytes) -> tuple[int, int] | None:
    if head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR":
        return int.from_bytes(head[20:24], "big"), int.from_bytes(head[16:20], "big")
    return None


def _header_size(path: Path, head: bytes) -> tuple[int, int]:
    """(H, W) from a file's header: a PNG's IHDR directly, other formats through PIL."""
    from PIL import Image, UnidentifiedImageError

    size = _png_size(head)
    if size is not None:
        return size
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise GmvError(f"unreadable image {path}: {e}") from None


def _scan(root: Path, files: list[str], sizes: bool) -> tuple[list[tuple[int, int]], tuple[int, int] | None]:
    """(size, mtime_ns) of every file and, when `sizes`, the (H, W) they all share — from one open, fstat and
    24-byte read per file; mixed sizes stop here, before any work."""
    stats, seen = [], {}
    for f in files:
        fd = os.open(root / f, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            head = os.read(fd, 24) if sizes else b""
        finally:
            os.close(fd)
        stats.append((st.st_size, st.st_mtime_ns))
        if sizes:
            seen.setdefault(_header_size(root / f, head), f)
    if len(seen) > 1:
        listing = "; ".join(f"{h}×{w} e.g. {f}" for (h, w), f in list(seen.items())[:3])
        raise GmvError(f"images in {root} have different sizes ({listing}); "
                       "pass an image size (e.g. --image-size 32) to resize them to one")
    return stats, next(iter(seen)) if seen else None


def open_folder(path: str | Path, image_size: int | None = None, channels: int | None = None,
                limit: int | None = None) -> LazyImageSet:
    """A folder of images (class sub-folders optional), decoded on read. ids = paths relative to it."""
    root = Path(path)
    files, labels, class_names = list_image_files(root)
    if limit is not None:
        files, labels = files[:limit], labels[:limit]
    stats, hw = _scan(root, files, sizes=image_size is None)
    hw = (image_size, image_size) if image_size is not None else hw
    pixels = FolderPixels(root, files, 1 if channels == 1 else 3, image_size, hw, stats)
    return LazyImageSet(pixels, labels, class_names=class_names, name=root.name, ids=np.asarray(files))


def open_images(spec, cache_dir: str | Path | None = None, **options):
    """Like `load_images`, but `.npz` files and folders stream (a LazyImageSet); ImageSets and lazy sets
    pass through; dataset names load eagerly."""
    from gmv.data.sources import SOURCES, load_images

    if isinstance(spec, (ImageSet, LazyImageSet)):
        return spec
    spec_str = str(spec)
    path = Path(spec_str)
    if spec_str not in SOURCES and path.suffix == ".npz":
        from gmv.data.npz_stream import open_npz

        return open_npz(path, cache_dir=cache_dir, **options)
    if spec_str not in SOURCES and path.is_dir():
        return open_folder(path, **options)
    return load_images(spec, **options)


# --- batches -------------------------------------------------------------------------------------


class _RangeReader:
    """A map-style dataset of row ranges (a DataLoader with batch_size=None reads one range per item)."""

    def __init__(self, pixels: PixelSource, ranges: Sequence[tuple[int, int]]):
        self.pixels, self.ranges = pixels, list(ranges)

    def __len__(self):
        return len(self.ranges)

    def __getitem__(self, i):
        a, b = self.ranges[i]
        try:
            return a, np.ascontiguousarray(self.pixels.read_range(a, b))
        except GmvError as e:  # travels back as a value: one clean line in the main process
            return a, str(e)


def batch_ranges(start: int, stop: int, batch_size: int) -> list[tuple[int, int]]:
    return [(a, min(stop, a + batch_size)) for a in range(start, stop, batch_size)]


def iter_batches(images, batch_size: int = 256, start: int = 0, stop: int | None = None, num_workers: int = 0,
                 ranges: Sequence[tuple[int, int]] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, uint8 b×H×W×C) for consecutive batches of rows [start, stop) — or the given `ranges` —
    read by a DataLoader with `num_workers` processes when the source streams (folders, files)."""
    pixels = as_pixels(images)
    stop = len(pixels) if stop is None else stop
    ranges = batch_ranges(start, stop, batch_size) if ranges is None else list(ranges)
    if not pixels.streams:
        for a, b in ranges:
            yield a, pixels.read_range(a, b)
        return
    from torch.utils.data import DataLoader

    workers = max(0, int(num_workers or 0))
    loader = DataLoader(_RangeReader(pixels, ranges), batch_size=None, shuffle=False, num_workers=workers,
                        prefetch_factor=4 if workers else None)
    for a, batch in loader:
        if isinstance(batch, str):
            raise GmvError(batch)
        yield int(a), batch.numpy()
