"""Atomic file writes: a crash never leaves a half-written artifact behind."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's 0600 would hide results from others


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    return Path(path)


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object stops numpy appending a second ".npz"
            np.savez(f, **arrays)
    return Path(path)


def save_npz_streamed(path: str | os.PathLike, name: str, shape: Sequence[int], dtype, pieces: Iterator[np.ndarray],
                      **arrays: np.ndarray) -> Path:
    """An uncompressed `.npz` like `np.savez` whose member `name` (`shape`, `dtype`) is written from
    `pieces` (consecutive C-order blocks along the first axis), so it is never held whole in memory;
    the small `arrays` are stored beside it. Readable by `np.load` and streamed in place by
    gmv.data.npz_stream."""
    import zipfile

    dtype, shape = np.dtype(dtype), tuple(int(n) for n in shape)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        rows = 0
        with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, header)
            for piece in pieces:
                piece = np.ascontiguousarray(piece, dtype=dtype)
                if piece.shape[1:] != shape[1:]:
                    raise ValueError(f"{name}: a piece of shape {piece.shape} does not fit {shape}")
                f.write(piece.tobytes())
                rows += len(piece)
        if rows != shape[0]:
            raise ValueError(f"{name}: the pieces hold {rows} rows, the header says {shape[0]}")
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return Path(path)


def save_figure(path: str | os.PathLike, fig) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=fig.dpi, bbox_inches="tight")
    return Path(path)


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Put `src`'s bytes at `dst` — a hard link where the file system allows, else a copy — replacing
    `dst` atomically."""
    import shutil

    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and os.path.samefile(src, dst):
        return dst  # already a link to src (a rerun): rename() onto the same file would leave the temp link behind
    tmp = dst.with_name(f".{dst.name}.tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return dst


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Write a whole output folder beside `target`, then put it in `target`'s place.

    Yields an empty sibling folder (`.<name>.partial-<pid>`). When the block ends normally, an existing
    `target` is moved aside, the new folder renamed into place and the old one deleted — a reader sees
    the old folder or the new one, never a mix of their files. When the block raises, the partial folder
    is removed and `target` is left as it was. (A process killed in the instant between the two renames
    leaves the old results at `.<name>.old-<pid>`, which the next call restores if `target` is missing.)
    """
    import shutil

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():  # a swap cut short: put the newest old folder back before anything else
        old = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if old:
            old[-1].rename(target)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    aside = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.rename(aside)
    staging.rename(target)
    shutil.rmtree(aside, ignore_errors=True)
    for stale in target.parent.glob(f".{target.name}.partial-*"):  # left by killed runs
        shutil.rmtree(stale, ignore_errors=True)
