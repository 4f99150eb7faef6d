"""Stage cache: a stage's output lives in `<cache_dir>/<stage>/<key>/`, where `key` is a digest of
everything that determines that output (the upstream keys and the stage's own settings).

No workflow engine: a key is a hash of plain data, a finished stage is a folder with a `done.json`
written last (atomically), and training's own resume point is Lightning's `last.ckpt`. Deleting a
folder (or pointing `cache_dir` elsewhere) recomputes that stage.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from gmv.io import write_json

#: bump when a stage's output format or semantics change, so old cache entries are not reused
CACHE_VERSION = 2


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def key_of(*parts: Any) -> str:
    """A 16-hex-digit digest of plain data (dicts, lists, numbers, strings, other keys)."""
    text = json.dumps(_canonical([CACHE_VERSION, *parts]), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def array_digest(*arrays: np.ndarray | None) -> str:
    """A digest of array contents (shape, dtype and bytes) — the identity of a data set."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.data)
    return h.hexdigest()[:16]


def stage_dir(cache_dir: str | Path, stage: str, key: str) -> Path:
    return Path(cache_dir) / stage / key


def is_done(folder: Path) -> bool:
    return (folder / "done.json").is_file()


def read_done(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "done.json").read_text())


def mark_done(folder: Path, info: dict[str, Any]) -> None:
    """Written after every other file of the stage: its presence means the stage finished."""
    write_json(folder / "done.json", info)
