"""What the console shows: gmv's own lines, progress bars and the summary — not third-party chatter.

`quiet_third_party(verbose=False)` lowers precisely the loggers that print setup noise on every run:
FAISS's loader (which SIMD build it loaded), Lightning's rank-zero banners (GPU/TPU availability, a
"litlogger" tip) and its model summary. Under Hydra, Lightning's messages also reached the console
twice (its own handler plus Hydra's root handler); they now stay with Lightning's handler. Warnings
and errors from every library still show. `verbose=True` leaves everything as it was.
"""

from __future__ import annotations

import logging

NOISY_INFO_LOGGERS = (
    "faiss.loader",  # "Loading faiss with AVX512 support." …
    "lightning.pytorch.utilities.rank_zero",  # GPU/TPU available, the litlogger tip
    "lightning.pytorch.callbacks.model_summary",  # the parameter table (counts are in metrics.json)
    "lightning.fabric.utilities.seed",  # "Seed set to …"
)


def quiet_third_party(verbose: bool = False) -> None:
    if verbose:
        return
    for name in NOISY_INFO_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).propagate = False  # one copy (Lightning's handler), not two
