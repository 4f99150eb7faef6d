"""Embedding as a resumable, chunked stage: kill and resume, cache damage, cache keys, worker processes."""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gmv.data.stream import open_folder
from gmv.valuation.api import valuate
from gmv.valuation.embed import embed_chunks, embed_source, store_for
from gmv.valuation.embedders import ModuleEmbedder, PixelEmbedder
from gmv.valuation.resnet20_embedder import ResNet20Embedder

ROOT = Path(__file__).resolve().parents[1]


def paced_embedder(pause: float = 0.0, **kw) -> ModuleEmbedder:
    """A small seeded conv net (real float arithmetic, so batch formation matters); `pause` seconds per
    batch pace a run so that a test can kill it part-way (the pause is not part of the fingerprint)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
    emb = ModuleEmbedder(net, {"net": "paced-conv-test"}, progress=False, **kw)
    if pause:
        forward = emb.embed_batch

        def paced(pixels):
            time.sleep(pause)
            return forward(pixels)

        emb.embed_batch = paced
    return emb


def make_folders(root: Path, sizes=(("train", 48), ("held_out", 48), ("generated", 24))) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    out = {}
    for name, n in sizes:
        for i in range(n):
            d = root / name / f"c{i % 2}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(d / f"{i:03d}.png")
        out[name] = root / name
    return out


CHILD = """
import sys
sys.path.insert(0, {tests!r})
from test_embed_store import paced_embedder
from gmv.valuation.api import valuate
valuate({train!r}, {gen!r}, held_out={v2!r}, embedder=paced_embedder(0.25, batch_size=8, chunk_size=16),
        cache_dir={cache!r}, k=3)
print("finished", flush=True)
"""


def test_killed_embedding_resumes_identically(tmp_path, capsys):
    dirs = make_folders(tmp_path / "data")
    cache = tmp_path / "cache"
    script = CHILD.format(tests=str(ROOT / "tests"), train=str(dirs["train"]), gen=str(dirs["generated"]),
                          v2=str(dirs["held_out"]), cache=str(cache))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunks: list[Path] = []
    deadline = time.monotonic() + 180
    while len(chunks) < 2:  # watch the chunk files: kill once two of the pool's six chunks are on disk
        assert child.poll() is None, "the run ended before it could be killed: " + child.stderr.read().decode()[-500:]
        assert time.monotonic() < deadline, "no chunk files appeared"
        chunks = sorted(cache.glob("embeddings/*/chunks/chunk-*.npy"))
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not list(cache.glob("embeddings/*/done.json")), "nothing may be complete after the kill"
    left = sorted(cache.glob("embeddings/*/chunks/chunk-*.npy"))
    assert 2 <= len(left) < 6
    part = left[0].parent
    first_chunks = {p.name: p.read_bytes() for p in left}

    capsys.readouterr()
    resumed = valuate(str(dirs["train"]), str(dirs["generated"]), held_out=str(dirs["held_out"]),
                      embedder=paced_embedder(batch_size=8, chunk_size=16), cache_dir=cache, k=3)
    out = capsys.readouterr().out
    assert "of 6 chunks" in out and "resuming" in out and "damaged" not in out
    assert not part.exists() and resumed.reused == {"pool_embedding": False, "generated_embedding": False}

    fresh = valuate(str(dirs["train"]), str(dirs["generated"]), held_out=str(dirs["held_out"]),
                    embedder=paced_embedder(batch_size=8, chunk_size=16), cache_dir=tmp_path / "fresh", k=3)
    np.testing.assert_array_equal(resumed.pool_emb, fresh.pool_emb)
    np.testing.assert_array_equal(resumed.gen_emb, fresh.gen_emb)
    np.testing.assert_array_equal(resumed.values, fresh.values)
    np.testing.assert_array_equal(resumed.matches.indices, fresh.matches.indices)
    for name, data in first_chunks.items():  # the killed run's chunks are the uninterrupted run's rows
        i = int(name.split("-")[1].split(".")[0])
        np.testing.assert_array_equal(np.load(io.BytesIO(data)), fresh.pool_emb[16 * i:16 * (i + 1)])
    assert resumed.values.sum() == pytest.approx(24)


def rng_images(n, h=8, w=8, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "delete_npy", "delete_record", "garbage_record"])
def test_damaged_cache_is_reported_in_one_line_and_recomputed(tmp_path, capsys, damage):
    pool, gen = rng_images(40), rng_images(12, seed=5)
    emb = lambda: PixelEmbedder(progress=False, chunk_size=16, batch_size=8)  # noqa: E731
    first = valuate(pool, gen, embedder=emb(), cache_dir=tmp_path, k=4)
    first_values = first.values
    first_emb = np.array(first.pool_emb)  # a copy: the damage below rewrites the file under its memory map
    again = valuate(pool, gen, embedder=emb(), cache_dir=tmp_path, k=4)
    assert all(again.reused.values())
    del first, again
    target = max((tmp_path / "embeddings").glob("*/embeddings.npy"), key=lambda p: p.stat().st_size)  # the pool's
    record = target.parent / "done.json"
    if damage == "truncate":
        with open(target, "r+b") as f:
            f.truncate(target.stat().st_size // 2)
    elif damage == "flip_byte":
        data = bytearray(target.read_bytes())
        data[-5] ^= 0x40
        target.write_bytes(bytes(data))
    elif damage == "delete_npy":
        target.unlink()
    elif damage == "delete_record":
        record.unlink()
    else:
        record.write_text("{not json")
    capsys.readouterr()
    second = valuate(pool, gen, embedder=emb(), cache_dir=tmp_path, k=4)
    captured = capsys.readouterr()
    lines = [ln for ln in (captured.out + captured.err).splitlines() if "cache:" in ln]
    assert len(lines) == 1 and lines[0].startswith(f"[gmv] cache: embeddings {target.parent.name} is damaged (")
    assert lines[0].endswith("— recomputing it") and "Traceback" not in captured.err
    assert second.reused == {"pool_embedding": False, "generated_embedding": True}
    np.testing.assert_array_equal(second.pool_emb, first_emb)
    np.testing.assert_array_equal(second.values, first_values)
    third = valuate(pool, gen, embedder=emb(), cache_dir=tmp_path, k=4)  # repaired: reused, silently
    assert all(third.reused.values()) and "damaged" not in capsys.readouterr().out


def test_cache_key_follows_pixels_embedder_and_weights(tmp_path, shared_data):
    images = rng_images(6)
    key = lambda emb, x: store_for(emb, x, tmp_path).stem  # noqa: E731
    px = PixelEmbedder(progress=False)
    assert key(px, images) == key(PixelEmbedder(batch_size=3, num_workers=2, progress=False), images.copy())
    changed = images.copy()
    changed[4, 1, 2, 0] ^= 1
    assert key(px, changed) != key(px, images)
    assert key(px, images[:5]) != key(px, images)
    # the embedder's settings and precision, and its weights: one weight changed is another entry
    weights = shared_data / "cifar10_resnet20-12fca82f.th"
    net = lambda w=weights, **kw: ResNet20Embedder(weights=str(w), progress=False, **kw)  # noqa: E731
    assert key(net(), images) != key(px, images)
    assert key(net(), images) != key(net(precision="bf16"), images)
    assert key(net(), images) != key(net(image_size=16), images)
    assert key(net(), images) == key(net(channels_last=False, batch_size=2), images)  # same features
    state = torch.load(weights, weights_only=True, map_location="cpu")
    name = next(k for k in state["state_dict"] if k.endswith("linear.bias"))
    state["state_dict"][name] = state["state_dict"][name] + 1e-3
    torch.save(state, tmp_path / "changed.th")
    assert key(net(), images) != key(net(tmp_path / "changed.th"), images)


def test_folder_key_follows_files_not_location(tmp_path):
    dirs = make_folders(tmp_path / "a", sizes=(("set", 6),))
    px = PixelEmbedder(progress=False)
    key = lambda d: store_for(px, open_folder(d), tmp_path / "c").stem  # noqa: E731
    before = key(dirs["set"])
    shutil.copytree(dirs["set"], tmp_path / "moved", copy_function=shutil.copy2)  # same names, sizes, mtimes
    assert key(tmp_path / "moved") == before
    f = next((tmp_path / "moved").rglob("*.png"))
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000))
    assert key(tmp_path / "moved") != before  # a touched file: recomputed, never a stale reuse
    assert store_for(px, open_folder(dirs["set"], image_size=4), tmp_path).stem != before


def test_chunks_from_a_worker_process_and_a_changed_chunk_size(tmp_path):
    """A separate process (spawned, its arguments pickled, as a Ray task's are) computes some chunks of an
    entry, this process the rest; the finished entry equals the one-process result."""
    dirs = make_folders(tmp_path / "d", sizes=(("set", 40),))
    source = open_folder(dirs["set"])
    emb = paced_embedder(batch_size=4, chunk_size=8)
    store = store_for(emb, source, tmp_path / "cache")
    store.set_dim(emb.dim(source.shape))
    assert store.begin() == set() and store.n_chunks == 5
    worker = mp.get_context("spawn").Process(target=embed_chunks, args=(emb, source, store),
                                             kwargs={"chunks": [1, 3]})
    worker.start()
    worker.join(120)
    assert worker.exitcode == 0 and store.done_chunks() == {1, 3}
    assert embed_chunks(emb, source, store) == [0, 2, 4]
    feats = store.finish()
    assert isinstance(feats, np.memmap) and not feats.flags.writeable
    np.testing.assert_array_equal(feats, emb(source))
    # an interrupted entry with another chunk size starts afresh instead of mixing chunk layouts
    other = paced_embedder(batch_size=4, chunk_size=12)
    s2 = store_for(other, source, tmp_path / "c2")
    s2.set_dim(24)
    s2.begin()
    embed_chunks(other, source, s2, chunks=[0])
    s3 = store_for(paced_embedder(batch_size=4, chunk_size=8), source, tmp_path / "c2")
    s3.set_dim(24)
    assert s3.stem == s2.stem and s3.begin() == set()
    f, reused = embed_source(paced_embedder(batch_size=4, chunk_size=8), source, tmp_path / "c2")
    assert not reused
    np.testing.assert_array_equal(f, feats)
