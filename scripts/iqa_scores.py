"""Per-sample quality scores for quality-weighted credit (valuation.quality=file, gmv-value --quality file):
a no-reference IQA model — BRISQUE via piq — on a run's generated set, one CSV row per image in order.

    pip install 'gmv[iqa]'      # piq; its SVR weights must already be in $TORCH_HOME/hub/checkpoints/
    python scripts/iqa_scores.py outputs/default/<time>/samples.npz --out quality.csv
    gmv valuation.quality=file valuation.quality_file=$PWD/quality.csv           (the same study, re-valued)
"""

import argparse
import sys

import numpy as np

from gmv.errors import GmvError
from gmv.io import write_csv
from gmv.valuation.quality import brisque_quality


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("samples", help="an .npz with `images` (uint8 N×H×W×C), e.g. a run folder's samples.npz")
    p.add_argument("--out", required=True, help="CSV to write (column `quality`: 100 − BRISQUE, higher = better)")
    args = p.parse_args(argv)
    try:
        scores = brisque_quality(np.load(args.samples)["images"])
    except GmvError as e:
        print(f"iqa_scores: error: {e}", file=sys.stderr)
        return 2
    write_csv(args.out, ["quality"], [[f"{s:.6g}"] for s in scores])
    print(f"{len(scores)} scores (100 − BRISQUE: mean {scores.mean():.2f}, min {scores.min():.2f}) → {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
