"""Write X_v1, X_v2 and a stand-in X̂ (augmented copies of X_v1) for one class of a dataset.

    python scripts/make_planted_sets.py --data ../shared/data/cifar10_train_2000pc.npz --classes 3 \
        --per-class 2000 --m 1000 --out /tmp/cifar_cat

Writes v1.npz, v2.npz, generated.npz and split.npz (indices into --data) for `gmv-value`.
"""

import argparse
from pathlib import Path

from gmv.data import load_images, split_imageset, stratified_split
from gmv.data.augment import augmented_copies


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset name, .npz or folder")
    p.add_argument("--classes", type=int, nargs="*", help="classes to keep (default: all)")
    p.add_argument("--per-class", type=int, help="use at most this many images per class")
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--m", type=int, default=1000, help="number of augmented copies of X_v1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    data = load_images(a.data)
    split = stratified_split(data.labels, a.ratio, a.classes, a.seed, a.per_class)
    v1, v2 = split_imageset(data, split)
    out = Path(a.out)
    split.save(out / "split.npz")
    v1.save_npz(out / "v1.npz")
    v2.save_npz(out / "v2.npz")
    augmented_copies(v1, a.m, seed=a.seed).save_npz(out / "generated.npz")
    print(f"wrote {out}: X_v1 {len(v1)}, X_v2 {len(v2)}, X̂ {a.m} augmented copies of X_v1")


if __name__ == "__main__":
    main()
