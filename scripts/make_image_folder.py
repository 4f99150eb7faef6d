"""Write image folders (PNG files in class sub-folders) for the streaming benchmarks — under /tmp, never committed.

    # the CIFAR-10 subset as 20,000 PNG files, as stored (bench_embedders.py decodes them)
    python scripts/make_image_folder.py --data ../shared/data/cifar10_train_2000pc.npz --out /tmp/gmv_png20k

    # ≥ 100k 64×64 images: near-copies (crop, flip, jitter, noise) of half the CelebA + CIFAR-10 bases as
    # X_v1, of the other half as X_v2, and a stand-in X̂ drawn from X_v1's bases (folder_100k.md)
    python scripts/make_image_folder.py --size 64 --data ../shared/data/celeba_100ids_64px.npz \
        ../shared/data/cifar10_train_2000pc.npz --sets train=100000 held_out=20000 generated=5000 --out /tmp/gmv_100k
"""

from __future__ import annotations

import argparse
from multiprocessing import Pool
from pathlib import Path

import numpy as np


from gmv.data.augment import near_copies
from gmv.data.imageset import ImageSet
from gmv.data.sources import load_npz, resize

BLOCK = 4000  # images per worker task


def bases(paths: list[str], size: int | None) -> tuple[ImageSet, list[str]]:
    """Every input set resized to one size; one class folder per CIFAR class, one for all of CelebA."""
    images, labels, names = [], [], []
    for p in paths:
        s = load_npz(p)
        if s.attributes is not None:  # CelebA: identities are not classes here
            lab, cls = np.zeros(len(s), np.int64), [Path(p).stem.split("_")[0]]
        else:
            lab, cls = s.labels, list(s.class_names or [str(c) for c in np.unique(s.labels)])
        images.append(resize(s.images, size))
        labels.append(lab + len(names))
        names += cls
    return ImageSet(np.concatenate(images), np.concatenate(labels), class_names=names, name="bases"), names


def write_block(task) -> int:
    from PIL import Image

    out, start, images, labels, names = task
    for j, (img, lab) in enumerate(zip(images, labels)):
        d = out / names[lab]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{start + j:06d}.png", compress_level=1)
    return len(images)


def tasks_for(out: Path, data: ImageSet, n: int | None, seed: int, names: list[str]):
    if n is None:  # as stored
        for start in range(0, len(data), BLOCK):
            yield out, start, data.images[start:start + BLOCK], data.labels[start:start + BLOCK], names
        return
    for b, start in enumerate(range(0, n, BLOCK)):
        c = near_copies(data, min(BLOCK, n - start), seed=seed * 1000 + b)
        yield out, start, c.images, c.labels, names


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True, help="gmv .npz files (the bases)")
    p.add_argument("--size", type=int, help="resize the bases to size×size")
    p.add_argument("--sets", nargs="*", help="name=count: near-copies (train, generated: of one half of the bases; "
                                             "held_out: of the other half); none: write the bases as stored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    data, names = bases(a.data, a.size)
    out = Path(a.out)
    jobs = []
    if not a.sets:
        jobs.append((out, data, None, 0))
    else:
        half = np.random.default_rng(a.seed).permutation(len(data))
        members, others = data.subset(np.sort(half[: len(data) // 2])), data.subset(np.sort(half[len(data) // 2:]))
        for i, spec in enumerate(a.sets):
            name, count = spec.split("=")
            jobs.append((out / name, others if name == "held_out" else members, int(count), a.seed + 1 + i))
    with Pool(a.workers) as pool:
        for folder, source, n, seed in jobs:
            done = sum(pool.imap_unordered(write_block, tasks_for(folder, source, n, seed, names)))
            print(f"wrote {done} PNG files ({source.shape[0]}×{source.shape[1]}) under {folder}", flush=True)


if __name__ == "__main__":
    main()
