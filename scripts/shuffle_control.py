"""The shuffled-split negative control as a distribution: for each run's values.csv, the share of 1,000
random relabellings of X_v1 / X_v2 whose one-sided Welch p is below 0.01 (≈ 0.01 when the test is
calibrated) and their median p. A study's `control_shuffled_p_value` is one such draw.

    python scripts/shuffle_control.py RUN/values.csv [RUN/values.csv ...]
"""

import csv
import sys

import numpy as np

from gmv.analysis.ra2 import welch_one_sided


def main(paths: list[str]) -> int:
    for path in paths:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        values = np.array([float(r["value"]) for r in rows])
        split = np.array([r["split"] for r in rows])
        rng = np.random.default_rng(0)
        ps = np.array([welch_one_sided(values[s == "v1"], values[s == "v2"])[1]
                       for s in (rng.permutation(split) for _ in range(1000))])
        print(f"{path}: share p<0.01 over 1000 shuffles: {np.mean(ps < 0.01):.3f}, median p {np.median(ps):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
