"""How a valuation's credit is spread over the training images: a generator that replicates a few of
them and one that draws on nearly all give different findings, even at the same AUROC (issue 16).

`credit_spread(values, split)` → plain numbers and one sentence:

* ``credit_share_v1`` — X_v1's share of all the credit (the pool's total);
* ``credit_half_count_v1`` — the fewest X_v1 images that together hold half of X_v1's credit, and
  ``credit_half_share_v1`` — that count over |X_v1|;
* ``credit_none_share_v1`` / ``credit_none_share_v2`` — share of each half that receives almost nothing:
  less than `NONE_FRACTION` (10%) of a pool image's mean value (with m = 1,000 samples over a pool of
  200 images, less than half a sample's credit);
* ``credit_sentence`` — which of the two patterns it is, by the share of X_v1 left (almost) uncredited:
  at most `BROAD` (10%): the generator draws on nearly all of X_v1; at least `SUBSET` (25%): it replicates
  part of X_v1 and ignores the rest, which caps the AUROC (the images it never matches look held out).
  The limits come from the committed studies: the guided-diffusion seeds leave 0–3% of X_v1 uncredited,
  the BigGAN exploration runs on the same split 27–64% (results/exploration/gan/README.md).
"""

from __future__ import annotations

import numpy as np

from gmv.errors import GmvError

NONE_FRACTION = 0.1  # "almost nothing": below this fraction of a pool image's mean value
BROAD = 0.10  # at most this share of X_v1 uncredited: credit on nearly all of X_v1
SUBSET = 0.25  # at least this share uncredited: a replicated subset


def credit_spread(values, split) -> dict:
    v = np.asarray(values, dtype=np.float64).ravel()
    s = np.asarray(split).astype(str).ravel()
    if v.shape != s.shape:
        raise GmvError(f"values ({v.size}) and split ({s.size}) must have one entry per image")
    v1, v2 = v[s == "v1"], v[s == "v2"]
    if not len(v1):
        raise GmvError("credit_spread needs training (v1) images")
    total, total_v1 = float(v.sum()), float(v1.sum())
    ranked = np.sort(v1)[::-1]
    half = int(np.searchsorted(np.cumsum(ranked), total_v1 / 2.0) + 1) if total_v1 > 0 else 0
    floor = NONE_FRACTION * total / len(v) if total > 0 else 0.0
    none_v1 = float(np.mean(v1 < floor)) if total > 0 else 1.0
    out = {
        "credit_share_v1": total_v1 / total if total > 0 else float("nan"),
        "credit_half_count_v1": half,
        "credit_half_share_v1": half / len(v1),
        "credit_none_share_v1": none_v1,
        "credit_none_share_v2": float(np.mean(v2 < floor)) if len(v2) and total > 0 else float("nan"),
    }
    head = (f"{half} of {len(v1)} X_v1 images hold half of X_v1's credit; {none_v1:.0%} of X_v1 get almost none"
            + (f" ({out['credit_none_share_v2']:.0%} of X_v2)" if len(v2) else ""))
    if none_v1 <= BROAD:
        out["credit_sentence"] = head + " — the generator draws on nearly all of its training images"
    elif none_v1 >= SUBSET:
        out["credit_sentence"] = head + (" — the generator replicates part of its training set and ignores the "
                                         "rest (the unmatched images look held out, which caps the AUROC)")
    else:
        out["credit_sentence"] = head + " — between broad coverage and a replicated subset"
    return out
