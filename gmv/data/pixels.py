"""Pixel sources: uint8 N×H×W×C image collections that read only the images asked for.

A `PixelSource` is indexable like the array it stands for — `shape` (N, H, W, C), `dtype` uint8,
`ndim` 4, `len()`, and `src[i]` (H×W×C), `src[a:b]`, `src[index_array]` (n×H×W×C) read just those
images — so code written for arrays (RA3's galleries index `images[idx]`) works on it unchanged.
`np.asarray(src)` reads everything: the one way to materialise a source on purpose.

- `ArrayPixels`   an array already in memory.
- `FilePixels`    C-order uint8 rows at a byte offset of a file (an `.npy` payload, a stored npz member),
                  read with `os.pread` (no memory map, so reading a batch never grows the resident set
                  beyond the batch).
- `FolderPixels`  one image file per row, decoded with PIL on read.
- `ConcatPixels`, `SubsetPixels`, `TransformedPixels` (resize / channel conversion per batch).

`fingerprint()` names the pixels for cache keys: a content digest for arrays and files (equal for
equal pixels, whichever of the two holds them), relative paths + sizes + mtimes for folders
(see `FolderPixels`). `streams` says whether reading costs I/O or decoding (worth DataLoader workers).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from gmv.errors import GmvError

READ_BLOCK = 1 << 24  # bytes per pread when hashing or copying


def digest_start(shape: tuple, dtype) -> "hashlib._Hash":
    return hashlib.sha256(str((tuple(shape), str(np.dtype(dtype)))).encode())


def images_digest(images: np.ndarray) -> str:
    """Content digest of an array (shape, dtype and bytes)."""
    h = digest_start(images.shape, images.dtype)
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()[:24]


def _combine(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class PixelSource:
    """Base: subclasses set `shape` and implement `read(index)` (int64 indices in [0, N))."""

    dtype = np.dtype(np.uint8)
    ndim = 4
    streams = False
    shape: tuple[int, int, int, int]

    def __len__(self) -> int:
        return int(self.shape[0])

    def read(self, index: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def read_range(self, start: int, stop: int) -> np.ndarray:
        return self.read(np.arange(start, stop, dtype=np.int64))

    def fingerprint(self) -> str:
        raise NotImplementedError

    def __getitem__(self, key):
        n = len(self)
        if isinstance(key, (int, np.integer)):
            i = int(key) + (n if int(key) < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"index {int(key)} is out of bounds for {n} images")
            return self.read(np.array([i], np.int64))[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                return self.read_range(start, max(start, stop))
            return self.read(np.arange(start, stop, step, dtype=np.int64))
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"boolean index of shape {idx.shape} for {n} images")
            idx = np.flatnonzero(idx)
        if not np.issubdtype(idx.dtype, np.integer):
            raise IndexError(f"images can be indexed by integers, slices or boolean masks, not {idx.dtype}")
        flat = idx.astype(np.int64).ravel()
        flat = np.where(flat < 0, flat + n, flat)
        if flat.size and (flat.min() < 0 or flat.max() >= n):
            raise IndexError(f"index out of bounds for {n} images")
        return self.read(flat).reshape(idx.shape + tuple(self.shape[1:]))

    def __array__(self, dtype=None, copy=None):
        a = self.read_range(0, len(self))
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape})"


class ArrayPixels(PixelSource):
    def __init__(self, array: np.ndarray):
        self.array = array
        self.shape = tuple(array.shape)
        self._fp = None

    def read(self, index):
        return self.array[index]

    def read_range(self, start, stop):
        return self.array[start:stop]

    def fingerprint(self):
        if self._fp is None:
            self._fp = images_digest(self.array)
        return self._fp


class FilePixels(PixelSource):
    """Rows of `shape[1:]` uint8 pixels stored contiguously from byte `offset` of `path`."""

    streams = True

    def __init__(self, path: str | Path, offset: int, shape: Sequence[int], digest: str | None = None):
        self.path, self.offset, self.shape = str(path), int(offset), tuple(int(s) for s in shape)
        self.row = int(np.prod(self.shape[1:]))
        self._fd: tuple[int, int] | None = None  # (pid, fd): a forked worker opens its own
        self._fp = digest

    def __getstate__(self):
        return {**self.__dict__, "_fd": None}

    def _file(self) -> int:
        if self._fd is None or self._fd[0] != os.getpid():
            self._fd = (os.getpid(), os.open(self.path, os.O_RDONLY))
        return self._fd[1]

    def read_range(self, start, stop):
        out = np.empty((stop - start, *self.shape[1:]), np.uint8)
        view, pos, want = memoryview(out).cast("B"), 0, (stop - start) * self.row
        while pos < want:
            got = os.preadv(self._file(), [view[pos:want]], self.offset + start * self.row + pos)
            if got <= 0:
                raise GmvError(f"{self.path} is shorter than its header says ({self.shape[0]} images); "
                               "the file is truncated — write it again")
            pos += got
        return out

    def read(self, index):
        out = np.empty((len(index), *self.shape[1:]), np.uint8)
        if len(index) == 0:
            return out
        order = np.argsort(index, kind="stable")
        sorted_idx = index[order]
        runs = np.flatnonzero(np.diff(sorted_idx) != 1) + 1  # contiguous runs → one pread each
        for run in np.split(np.arange(len(index)), runs):
            first, last = int(sorted_idx[run[0]]), int(sorted_idx[run[-1]])
            out[order[run]] = self.read_range(first, last + 1)
        return out

    def fingerprint(self):
        if self._fp is None:
            h = digest_start(self.shape, np.uint8)
            for start in range(0, len(self), max(1, READ_BLOCK // self.row)):
                h.update(self.read_range(start, min(len(self), start + max(1, READ_BLOCK // self.row))).data)
            self._fp = h.hexdigest()[:24]
        return self._fp


GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # PIL modes decoded as one channel
#: in folder fingerprints: 2 = resized like in-memory sources (torch, antialiased), 1 = PIL bilinear (before)
DECODE_VERSION = 2


def decode_image(path: Path, mode: str, image_size: int | None) -> np.ndarray:
    """One image file → uint8 H×W×1 (mode "L") or H×W×3 (mode "RGB"), resized to image_size² when given.

    The pixels are those an in-memory source gives for the same images (`gmv.data.sources._finish`):
    the file's own channels resized with `gmv.data.sources.resize` (antialiased bilinear), then converted
    with `gmv.data.sources.to_channels` — one resize and one grey conversion for every source."""
    from PIL import Image, UnidentifiedImageError

    from gmv.data.sources import resize, to_channels

    try:
        with Image.open(path) as im:
            arr = np.array(im.convert("L" if im.mode in GREY_MODES else "RGB"), dtype=np.uint8)  # writable
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise GmvError(f"unreadable image {path}: {e}") from None
    arr = arr[..., None] if arr.ndim == 2 else arr
    return to_channels(resize(arr[None], image_size), 1 if mode == "L" else 3)[0]


class FolderPixels(PixelSource):
    """One file per image under `root` (`files` relative to it), decoded on read.

    Fingerprint: the relative paths, sizes and modification times (ns) of the files plus the decode
    settings — a stat per file, not a read: hashing 100k files' contents would cost as much I/O as
    decoding them. Moving the folder keeps the key; touching or copying files (new mtimes) changes it
    (a recompute, never a stale reuse); an in-place edit that keeps both size and mtime is not seen.
    """

    streams = True

    def __init__(self, root: Path, files: list[str], channels: int, image_size: int | None,
                 image_shape: tuple[int, int], stats: list[tuple[int, int]]):
        self.root, self.files, self.stats = Path(root), files, stats
        self.mode = "L" if channels == 1 else "RGB"
        self.image_size = image_size
        self.shape = (len(files), *image_shape, channels)

    def read(self, index):
        out = np.empty((len(index), *self.shape[1:]), np.uint8)
        for j, i in enumerate(index):
            arr = decode_image(self.root / self.files[int(i)], self.mode, self.image_size)
            if arr.shape != self.shape[1:]:
                raise GmvError(f"images in {self.root} have different sizes ({self.files[int(i)]} is "
                               f"{arr.shape[0]}×{arr.shape[1]}×{arr.shape[2]}, {self.files[0]} "
                               f"{'×'.join(map(str, self.shape[1:]))}); pass an image size (e.g. --image-size 32) "
                               "to resize them to one")
            out[j] = arr
        return out

    def fingerprint(self):
        return _combine("folder", DECODE_VERSION, self.mode, self.image_size, self.shape,
                        hashlib.sha256(json.dumps([self.files, self.stats]).encode()).hexdigest())


class ConcatPixels(PixelSource):
    def __init__(self, parts: Sequence[PixelSource]):
        shapes = {tuple(p.shape[1:]) for p in parts}
        if len(shapes) != 1:
            raise GmvError(f"cannot combine image sets of different shapes {sorted(shapes)}: resize them to one "
                           "size first (e.g. the data source's `image_size` option)")
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.starts[-1]), *self.parts[0].shape[1:])
        self.streams = any(p.streams for p in parts)

    def read(self, index):
        out = np.empty((len(index), *self.shape[1:]), np.uint8)
        which = np.searchsorted(self.starts, index, side="right") - 1
        for k, part in enumerate(self.parts):
            sel = np.flatnonzero(which == k)
            if sel.size:
                out[sel] = part.read(index[sel] - self.starts[k])
        return out

    def read_range(self, start, stop):
        pieces = []
        for k, part in enumerate(self.parts):
            a, b = max(start, self.starts[k]), min(stop, self.starts[k + 1])
            if a < b:
                pieces.append(part.read_range(int(a - self.starts[k]), int(b - self.starts[k])))
        if not pieces:
            return np.empty((0, *self.shape[1:]), np.uint8)
        return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]

    def fingerprint(self):
        return _combine("concat", [p.fingerprint() for p in self.parts])


class SubsetPixels(PixelSource):
    def __init__(self, base: PixelSource, index: np.ndarray):
        self.base, self.index = base, np.asarray(index, np.int64)
        self.shape = (len(self.index), *base.shape[1:])
        self.streams = base.streams

    def read(self, index):
        return self.base.read(self.index[index])

    def read_range(self, start, stop):
        idx = self.index[start:stop]
        if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and (np.diff(idx) == 1).all():
            return self.base.read_range(int(idx[0]), int(idx[-1]) + 1)
        return self.base.read(idx)

    def fingerprint(self):
        return _combine("subset", self.base.fingerprint(), hashlib.sha256(self.index.tobytes()).hexdigest())


class TransformedPixels(PixelSource):
    """`base` resized to image_size² (gmv.data.sources.resize) and/or converted to `channels`, per batch."""

    def __init__(self, base: PixelSource, image_size: int | None, channels: int | None):
        self.base, self.image_size, self.channels = base, image_size, channels
        h, w, c = base.shape[1:]
        if image_size is not None:
            h = w = image_size
        self.shape = (len(base), h, w, channels or c)
        self.streams = base.streams

    def _apply(self, x):
        from gmv.data.sources import resize, to_channels

        return to_channels(resize(x, self.image_size), self.channels)

    def read(self, index):
        return self._apply(self.base.read(index))

    def read_range(self, start, stop):
        return self._apply(self.base.read_range(start, stop))

    def fingerprint(self):
        return _combine("transform", self.base.fingerprint(), self.image_size, self.channels)


def as_pixels(images) -> PixelSource:
    """A PixelSource for an array, an ImageSet/LazyImageSet (its `.images`) or a source itself."""
    images = getattr(images, "images", images)
    if isinstance(images, PixelSource):
        return images
    a = np.asarray(images)
    if a.ndim != 4 or a.dtype != np.uint8:
        raise GmvError(f"images must be uint8 N×H×W×C, got {a.dtype} {a.shape}")
    return ArrayPixels(a)
