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


# ── progress ─────────────────────────────────────────────────────────────────────────────────────────

LOG_BAR_FORMAT = "{desc}: {percentage:3.0f}% ({n_fmt}/{total_fmt} {unit}) {elapsed} elapsed, {remaining} left{postfix}"


def _log_progress_class():
    from tqdm.std import tqdm as std_tqdm

    class LogProgress(std_tqdm):
        """tqdm for a log file (output that is not a terminal): one whole line at the start and at every
        further 10% of the total (the last at 100%), nothing in between — no carriage returns, so a
        log shows each line once. Unknown totals print at start and end only."""

        def __init__(self, *args, **kwargs):
            self._printed_step = -1
            # leave=False: close() then only asks display() to clear the line (a no-op here), so it
            # writes neither a repeated line nor the "\r" / "\n" a terminal bar ends with
            kwargs.update(mininterval=0, miniters=1, dynamic_ncols=False, ascii=True, leave=False)
            kwargs.setdefault("bar_format", LOG_BAR_FORMAT)
            super().__init__(*args, **kwargs)

        def display(self, msg=None, pos=None):
            if msg is not None:  # close() clearing the bar: nothing to erase in a log (False: no "\r" either)
                return False
            step = int(10 * self.n / self.total) if self.total else (0 if self.n == 0 else 10)
            if step <= self._printed_step:
                return True
            self._printed_step = step
            self.fp.write(self.format_meter(**self.format_dict).rstrip() + "\n")
            self.fp.flush()
            return True

    return LogProgress


def is_terminal(stream=None) -> bool:
    """Whether `stream` (default stderr, where gmv's bars go) is an interactive terminal."""
    import sys

    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(iterable=None, **kwargs):
    """gmv's progress bar: tqdm (`tqdm.auto`) in a terminal; in a log file (stderr redirected: CI, `nohup`,
    a cluster job) one line per 10% (:func:`_log_progress_class`). Takes tqdm's arguments."""
    import sys

    kwargs.setdefault("file", sys.stderr)
    if is_terminal(kwargs["file"]):
        from tqdm.auto import tqdm

        return tqdm(iterable, **kwargs)
    return _log_progress_class()(iterable, **kwargs)
