"""What the console shows: gmv's own lines, progress bars and the summary — not third-party chatter.

`quiet_third_party(verbose=False)` lowers precisely the loggers that print setup noise on every run:
FAISS's loader (which SIMD build it loaded), Lightning's rank-zero banners (GPU/TPU availability, a
"litlogger" tip) and its model summary. Under Hydra, Lightning's messages also reached the console
twice (its own handler plus Hydra's root handler); they now stay with Lightning's handler. Warnings
and errors from every library still show. `verbose=True` leaves everything as it was; `quiet=True`
(`gmv -q`) drops the progress bars and gmv's stage lines too, leaving warnings, errors and the summary.
"""


from __future__ import annotations

import logging
import os

NOISY_INFO_LOGGERS = (
    "faiss.loader",  # "Loading faiss with AVX512 support." …
    "lightning.pytorch.utilities.rank_zero",  # GPU/TPU available, the litlogger tip
    "lightning.pytorch.callbacks.model_summary",  # the parameter table (counts are in metrics.json)
    "lightning.fabric.utilities.seed",  # "Seed set to …"
)


def quiet_third_party(verbose: bool = False, quiet: bool = False) -> None:
    """Filter third-party setup noise (unless `verbose`); with `quiet`, also the progress bars (gmv's own
    through `show_progress`, the training bar through the harness, others through tqdm's `TQDM_DISABLE`)
    and gmv's own stage lines (`note`)."""
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"  # bars that leave `disable` at its default
        os.environ["GMV_QUIET"] = "1"  # gmv's own bars and lines (show_progress, note)
    if verbose:
        return
    for name in NOISY_INFO_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).propagate = False  # one copy (Lightning's handler), not two


def show_progress() -> bool:
    """Whether gmv draws progress bars (not under `quiet`)."""
    return not os.environ.get("GMV_QUIET")


def note(message: str) -> None:
    """One of gmv's own progress lines (stdout), silent under `quiet`."""
    if not os.environ.get("GMV_QUIET"):
        print(message, flush=True)
