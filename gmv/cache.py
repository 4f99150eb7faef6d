"""The cache: every stage output (a trained generator, a sample set, an embedding) lives in one entry,
`<cache_dir>/<stage>/<key>/`, where `key` digests everything that determines the output.

No workflow engine, three rules:

- **A finished entry says so, and what it holds.** `done.json` is written last (atomically) and
  records, besides the stage's own facts, the size and SHA-256 of every output file. Reuse checks them,
  so a missing, truncated or corrupt file is found before anything reads it; the entry is then reported
  in one line, cleared and recomputed (`CacheEntry.check`, `CacheEntry.discard`). Files over 256 MiB are
  hashed on 64 sampled blocks plus both ends, not whole (a truncation is still caught by the size).
- **One writer per entry.** `CacheEntry.lock()` takes an exclusive `fcntl` lock on
  `<cache_dir>/.locks/<stage>-<key>.lock` (kept apart, so a stage's folder lists only entries); a second run on the same cache waits (and says so), then finds the entry finished and
  reuses it.
- **Keys are digests of plain data** (`key_of`, `array_digest`) and of the code that makes the output
  (`gmv.code_fingerprint.code_digest`: editing a generator retrains it); `CACHE_VERSION` is bumped when an
  output's format changes, so old entries are never reused. Deleting an entry (or pointing
  `cache_dir` elsewhere) recomputes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from gmv.io import write_json

#: bump when a stage's output format or semantics change, so old cache entries are not reused
CACHE_VERSION = 3

_FULL_HASH_LIMIT = 256 << 20  # bytes hashed whole; larger files are hashed on sampled blocks
_BLOCK = 1 << 16
_SAMPLED_BLOCKS = 64


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


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file: whole up to 256 MiB, else of its size, both ends and 64 evenly spaced blocks."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= _FULL_HASH_LIMIT:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:
            h.update(str(size).encode())
            offsets = [0, size - _BLOCK] + [int(i * (size - _BLOCK) / (_SAMPLED_BLOCKS + 1))
                                          for i in range(1, _SAMPLED_BLOCKS + 1)]
            for offset in offsets:
                f.seek(offset)
                h.update(f.read(_BLOCK))
    return h.hexdigest()


def say(message: str) -> None:
    """One cache line on the console (stderr, so results on stdout stay clean)."""
    print(f"[gmv] cache: {message}", file=sys.stderr, flush=True)


class CacheEntry:
    """One stage output: the folder `<root>/<stage>/<key>/` and its `done.json`."""

    def __init__(self, root: str | Path, stage: str, key: str):
        self.root, self.stage, self.key = Path(root), str(stage), str(key)
        self.folder = self.root / self.stage / self.key
        self.name = f"{self.stage} {self.key}"

    def __repr__(self) -> str:
        return f"CacheEntry({self.folder})"

    @property
    def done_path(self) -> Path:
        return self.folder / "done.json"

    # ---- state

    def is_complete(self) -> bool:
        return self.done_path.is_file()

    def info(self) -> dict[str, Any]:
        """The stage's own facts recorded at completion ({} when unfinished or unreadable)."""
        record = self._record()
        return dict(record.get("info", {})) if record else {}

    def _record(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.done_path.read_text())
        except (OSError, ValueError):
            return None

    def check(self) -> str | None:
        """None when the finished entry is intact, else what is wrong with it (one phrase)."""
        record = self._record()
        if record is None:
            return "done.json is missing or unreadable"
        if record.get("version") != CACHE_VERSION:
            return f"written by cache version {record.get('version')}, this is {CACHE_VERSION}"
        for rel, want in record.get("files", {}).items():
            path = self.folder / rel
            if not path.is_file():
                return f"{rel} is missing"
            size = path.stat().st_size
            if size != want["size"]:
                return f"{rel} has {size} bytes, {want['size']} were written"
            if file_digest(path) != want["sha256"]:
                return f"{rel} does not match its checksum"
        return None

    def intact_files(self) -> list[str]:
        """The recorded output files that still match their size and checksum."""
        record = self._record() or {}
        intact = []
        for rel, want in record.get("files", {}).items():
            path = self.folder / rel
            if path.is_file() and path.stat().st_size == want["size"] and file_digest(path) == want["sha256"]:
                intact.append(rel)
        return intact

    def usable(self) -> bool:
        """A finished, intact entry. A damaged one is reported in one line and cleared (→ recompute)."""
        if not self.is_complete():
            return False
        problem = self.check()
        if problem is None:
            return True
        self.discard(problem)
        return False

    # ---- writing

    def complete(self, files: Iterable[str | Path], **info: Any) -> None:
        """Mark the entry finished: record `files` (relative to the folder) with size and checksum,
        and the stage's facts `info`. Written last, atomically."""
        record_files = {}
        for rel in sorted({str(Path(f)) for f in files}):
            path = self.folder / rel
            if not path.is_file():
                raise FileNotFoundError(f"cache entry {self.name}: output {rel} was not written")
            record_files[rel] = {"size": path.stat().st_size, "sha256": file_digest(path)}
        write_json(self.done_path, {"version": CACHE_VERSION, "stage": self.stage, "key": self.key,
                                    "files": record_files, "info": _canonical(info)})

    def discard(self, reason: str) -> None:
        """Report the entry damaged and clear it for recomputation. Its intact recorded files stay (a
        stage may resume from them, e.g. training from an intact earlier checkpoint); the rest goes."""
        say(f"{self.name} is damaged ({reason}) — recomputing it")
        self.clear(keep=self.intact_files())

    def clear(self, keep: Iterable[str | Path] = ()) -> None:
        """Remove done.json and every file of the entry except those in `keep` (relative paths)."""
        kept = {str(Path(k)) for k in keep}
        self.done_path.unlink(missing_ok=True)
        if not self.folder.is_dir():
            return
        for path in self.folder.rglob("*"):
            if not path.is_dir() and str(path.relative_to(self.folder)) not in kept:
                path.unlink(missing_ok=True)
        for path in sorted((p for p in self.folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()  # only empty folders go

    @contextlib.contextmanager
    def lock(self) -> Iterator["CacheEntry"]:
        """Exclusive use of the entry across processes; waits (and says so) while another run holds it."""
        lock_path = self.root / ".locks" / f"{self.stage.replace('/', '-')}-{self.key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say(f"{self.name} is being written by another run — waiting for it")
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
