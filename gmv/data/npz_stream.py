"""Streaming `.npz` files (gmv's format): `images` read on demand, the small arrays held in memory.

A *stored* (uncompressed, `np.savez`) `images` member is read in place at its byte offset in the zip
file. A *deflated* one (`np.savez_compressed`) cannot be read in parts — `np.load` decompresses a member
whole — so it is decompressed once, streamed in 16 MiB pieces, into `<cache_dir>/decoded/` (keyed by the
file's path, size, mtime and the member's CRC) and read from there; without a cache dir it is
decompressed into memory, as `np.load` does.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np

from gmv.data.imageset import ImageSet
from gmv.data.pixels import ArrayPixels, FilePixels, PixelSource, SubsetPixels, TransformedPixels, _combine
from gmv.data.stream import LazyImageSet
from gmv.errors import GmvError


def _npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def _stored_member_offset(path: Path, info: zipfile.ZipInfo) -> int:
    """Byte offset of a stored member's data: after its local header, whose name/extra lengths may differ
    from the central directory's."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise GmvError(f"{path}: damaged zip archive (no local header for {info.filename})")
        return info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")


def _extract_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, cache_dir: Path) -> Path:
    """Decompress a deflated member once (streamed) into cache_dir/decoded/; reused while the npz is unchanged."""
    st = path.stat()
    key = _combine("npz-member", str(path.resolve()), st.st_size, st.st_mtime_ns, info.filename, info.CRC)
    target = Path(cache_dir) / "decoded" / f"{path.stem}-{key}.npy"
    if target.is_file() and target.stat().st_size == info.file_size:
        return target
    from gmv.io import atomic_path

    print(f"[gmv] {path.name}: decompressing {info.filename} once ({info.file_size / 2**20:.0f} MiB) into "
          f"{target.parent} for streamed reads", flush=True)
    with atomic_path(target) as tmp, zf.open(info) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 24)
    return target


def _npz_arrays(path: Path):
    if not path.is_file():
        raise GmvError(f"npz file not found: {path}")
    if not zipfile.is_zipfile(path):
        try:
            np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input error
            raise GmvError(f"cannot read {path} as .npz: {e}") from None
        raise GmvError(f"{path} is a single .npy array, not an .npz archive; gmv's npz format needs "
                       "`images` uint8 N×H×W×C and optional `labels` (save with ImageSet.save_npz)")
    z = np.load(path, allow_pickle=False)
    if "images" not in z.files:
        raise GmvError(f"{path} has no `images` array (found: {', '.join(z.files) or 'nothing'}); "
                       "gmv's npz format needs `images` uint8 N×H×W×C and optional `labels`")
    return z


def _npz_pixels(path: Path, z, cache_dir) -> PixelSource:
    zf = z.zip
    info = zf.getinfo("images.npy")
    eager = lambda: ArrayPixels(ImageSet(z["images"], None, name=path.stem).images)  # noqa: E731  (checks, N×H×W → ×1)
    with zf.open(info) as f:
        shape, fortran, dtype = _npy_header(f)
        header = f.tell()
    if dtype != np.uint8:
        hint = " (ImageSet.from_float converts a generator's output)" if np.issubdtype(dtype, np.floating) else ""
        raise GmvError(f"{path}: `images` must be uint8 pixels 0–255, got {dtype}{hint}")
    if fortran or len(shape) not in (3, 4) or (info.compress_type != zipfile.ZIP_STORED and cache_dir is None):
        return eager()  # compressed without a cache dir, or an unusual layout: read whole, ImageSet checks it
    shape = shape if len(shape) == 4 else (*shape, 1)
    if info.compress_type == zipfile.ZIP_STORED:
        return FilePixels(path, _stored_member_offset(path, info) + header, shape)
    return FilePixels(_extract_member(path, zf, info, cache_dir), header, shape)


def open_npz(path: str | Path, image_size: int | None = None, channels: int | None = None,
             limit: int | None = None, cache_dir: str | Path | None = None) -> LazyImageSet:
    """gmv's npz format with `images` read on demand (see the module docstring for compressed files)."""
    path = Path(path)
    z = _npz_arrays(path)
    pixels = _npz_pixels(path, z, cache_dir)
    labels = z["labels"] if "labels" in z.files else None
    extras = {k: z[k] for k in ("identity", "index_within_class", "filenames") if k in z.files}
    attributes = z["attributes"] if "attributes" in z.files else None
    n = len(pixels)
    if limit is not None and limit < n:
        pixels = SubsetPixels(pixels, np.arange(limit))
        labels = None if labels is None else labels[:limit]
        attributes = None if attributes is None else attributes[:limit]
        extras = {k: v[:limit] for k, v in extras.items()}
    if image_size is not None and tuple(pixels.shape[1:3]) != (image_size, image_size) or (
            channels is not None and pixels.shape[-1] != channels):
        pixels = TransformedPixels(pixels, image_size, channels)
    return LazyImageSet(
        pixels, labels, class_names=[str(c) for c in z["class_names"]] if "class_names" in z.files else None,
        attributes=attributes, attr_names=[str(c) for c in z["attr_names"]] if "attr_names" in z.files else None,
        name=path.stem, extras=extras)
