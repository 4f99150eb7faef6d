"""The cache entry: completion records, damage detection, healing and the per-entry lock."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from gmv.cache import CACHE_VERSION, CacheEntry, array_digest, file_digest, key_of


def _entry(tmp_path, files=None) -> CacheEntry:
    entry = CacheEntry(tmp_path, "stage", "abc123")
    entry.folder.mkdir(parents=True)
    files = files or {"a.bin": b"x" * 1000, "sub/b.txt": b"hello"}
    for rel, data in files.items():
        (entry.folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (entry.folder / rel).write_bytes(data)
    entry.complete(files, seconds=1.5)
    return entry


def test_complete_records_size_and_checksum(tmp_path):
    import hashlib

    entry = _entry(tmp_path)
    record = json.loads(entry.done_path.read_text())
    assert record["version"] == CACHE_VERSION and record["info"] == {"seconds": 1.5}
    assert record["files"]["a.bin"] == {"size": 1000, "sha256": hashlib.sha256(b"x" * 1000).hexdigest()}
    assert entry.is_complete() and entry.check() is None and entry.usable()
    assert entry.info() == {"seconds": 1.5}


@pytest.mark.parametrize("damage, phrase", [
    (lambda p: p.unlink(), "a.bin is missing"),
    (lambda p: p.write_bytes(b"x" * 10), "a.bin has 10 bytes, 1000 were written"),
    (lambda p: p.write_bytes(b"y" + b"x" * 999), "a.bin does not match its checksum"),
])
def test_damage_is_named_and_cleared(tmp_path, capsys, damage, phrase):
    entry = _entry(tmp_path)
    damage(entry.folder / "a.bin")
    assert entry.check() == phrase
    assert not entry.usable()  # reported and cleared
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and phrase in err and "recomputing" in err
    assert not entry.is_complete() and not (entry.folder / "a.bin").exists()
    assert (entry.folder / "sub" / "b.txt").read_bytes() == b"hello"  # intact outputs stay


def test_unreadable_record_and_old_version_are_damage(tmp_path):
    entry = _entry(tmp_path)
    entry.done_path.write_text("{trunc")
    assert entry.check() == "done.json is missing or unreadable"
    entry = _entry(tmp_path / "2")
    record = json.loads(entry.done_path.read_text())
    record["version"] = CACHE_VERSION - 1
    entry.done_path.write_text(json.dumps(record))
    assert "cache version" in entry.check()


def test_complete_refuses_a_missing_output(tmp_path):
    entry = CacheEntry(tmp_path, "stage", "k")
    entry.folder.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="nope.npz was not written"):
        entry.complete(["nope.npz"])
    assert not entry.is_complete()


def test_large_files_are_hashed_on_sampled_blocks(tmp_path, monkeypatch):
    import gmv.cache as cache

    monkeypatch.setattr(cache, "_FULL_HASH_LIMIT", 1 << 16)
    path = tmp_path / "big.bin"
    data = bytearray(np.random.default_rng(0).integers(0, 256, 1 << 22, dtype=np.uint8).tobytes())
    path.write_bytes(bytes(data))
    before = file_digest(path)
    data[0] ^= 1  # the first and last blocks are always read
    path.write_bytes(bytes(data))
    assert file_digest(path) != before
    path.write_bytes(bytes(data[:-1]))
    assert file_digest(path) != before


def test_keys_follow_content():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert array_digest(a) == array_digest(a.copy()) != array_digest(a[::-1])
    assert array_digest(a) != array_digest(a.astype(np.int16))
    assert key_of({"b": 1, "a": [1, 2]}) == key_of({"a": [1, 2], "b": 1}) != key_of({"a": [2, 1], "b": 1})


def test_second_process_waits_for_the_lock(tmp_path):
    """A second run on the same entry waits for the first (and says so), then sees it finished."""
    script = textwrap.dedent(f"""
        import sys, time
        from gmv.cache import CacheEntry
        e = CacheEntry({str(tmp_path)!r}, "train", "k1")
        with e.lock():
            if e.usable():
                print("reused", flush=True)
            else:
                e.folder.mkdir(parents=True, exist_ok=True)
                print("computing", flush=True)
                time.sleep(1.5)
                (e.folder / "out.txt").write_text("done")
                e.complete(["out.txt"])
    """)
    first = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "computing"
    t0 = time.perf_counter()
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    first.wait(timeout=60)
    assert first.returncode == 0 and second.returncode == 0
    assert second.stdout.strip() == "reused"
    assert "being written by another run — waiting" in second.stderr
    assert time.perf_counter() - t0 > 0.5


def test_link_or_copy_twice_leaves_no_temporary_file(tmp_path):
    """A rerun links the cached file into the run folder again: the second link must not leave
    `.name.tmp` behind (rename() onto a hard link of the same file does nothing)."""
    from gmv.io import link_or_copy

    src = tmp_path / "cache" / "samples.npz"
    src.parent.mkdir()
    src.write_bytes(b"abc")
    run = tmp_path / "run"
    for _ in range(2):
        link_or_copy(src, run / "samples.npz")
        assert (run / "samples.npz").read_bytes() == b"abc" and sorted(p.name for p in run.iterdir()) == ["samples.npz"]
    src2 = tmp_path / "cache" / "other.npz"
    src2.write_bytes(b"new")
    link_or_copy(src2, run / "samples.npz")  # another source replaces it
    assert (run / "samples.npz").read_bytes() == b"new" and sorted(p.name for p in run.iterdir()) == ["samples.npz"]
