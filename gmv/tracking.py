"""Tracker: the one thin wrapper over Weights & Biases that every stage logs through.

    with Tracker(mode="offline", dir="results/run1", config=cfg) as tr:
        tr.log_metrics({"nn_share_v1": 0.71})
        tr.log_table("ra2_table", rows)
        tr.log_image("ra1_tsne", "results/run1/ra1_tsne.png")
        tr.log_artifact("values", "valuation", ["results/run1/values.npz"])

Modes: ``"online"`` syncs to the W&B server, ``"offline"`` writes the run under
``<dir>/wandb/`` (upload later with ``wandb sync``), ``"disabled"`` does nothing at
all — wandb is not even imported and no file is written.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from gmv.errors import GmvError

MODES = ("offline", "online", "disabled")


def _scalar(v: Any) -> Any:
    """A plain Python scalar for numpy scalars; everything else unchanged."""
    return v.item() if isinstance(v, np.generic) else v


class Tracker:
    """A W&B run, or nothing when ``mode="disabled"``.

    ``dir`` is where W&B puts its ``wandb/`` folder (created if missing; default: the
    current directory). ``name``, ``group``, ``config``, ``job_type`` and ``tags``
    go to ``wandb.init`` unchanged. W&B's console output is silenced and it does not
    capture stdout/stderr unless ``capture_console=True``.
    """

    def __init__(
        self,
        mode: str = "offline",
        project: str = "gmv",
        dir: str | os.PathLike | None = None,
        name: str | None = None,
        group: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        job_type: str | None = None,
        tags: Iterable[str] | None = None,
        capture_console: bool = False,
    ):
        if mode not in MODES:
            raise GmvError(f"unknown tracking mode {mode!r}; use one of {', '.join(MODES)}")
        self.mode = mode
        self._run = None
        if mode == "disabled":
            return

        import wandb  # only here: disabled mode must not import it

        if dir is not None:
            Path(dir).mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(silent=True, quiet=True, console="auto" if capture_console else "off")
        self._run = wandb.init(
            project=project,
            dir=None if dir is None else str(dir),
            name=name,
            group=group,
            job_type=job_type,
            tags=None if tags is None else list(tags),
            config=dict(config) if config is not None else None,
            mode=mode,
            settings=settings,
            reinit="create_new",  # several trackers in one process are separate runs
        )

    # ------------------------------------------------------------ state

    @property
    def enabled(self) -> bool:
        """True while a W&B run is open."""
        return self._run is not None

    @property
    def run(self):
        """The underlying ``wandb`` run (None when disabled or finished)."""
        return self._run

    @property
    def run_dir(self) -> Path | None:
        """The run's local folder (``<dir>/wandb/<run>/files``), or None when disabled."""
        return None if self._run is None else Path(self._run.dir)

    # ------------------------------------------------------------ logging

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalar metrics (numbers, bools, strings; numpy scalars converted).

        Other values (lists, arrays, dicts) are left out: log those with
        :meth:`log_table` or as an artifact.
        """
        if self._run is None:
            return
        clean = {}
        for k, v in metrics.items():
            v = _scalar(v)
            if isinstance(v, (bool, int, float, str)):
                clean[str(k)] = v
        if clean:
            self._run.log(clean, step=step)

    def log_table(self, name: str, rows: list[Mapping[str, Any]]) -> None:
        """Log rows of dicts as a ``wandb.Table``; columns are the keys in first-seen order.

        A row missing a column gets None there; tuples and other non-scalars are
        written as their string form. An empty `rows` logs nothing.
        """
        if self._run is None or not rows:
            return
        import wandb

        columns: list[str] = []
        for r in rows:
            columns += [str(k) for k in r if str(k) not in columns]
        data = []
        for r in rows:
            cells = {str(k): _scalar(v) for k, v in r.items()}
            data.append([_cell(cells.get(c)) for c in columns])
        self._run.log({name: wandb.Table(columns=columns, data=data, allow_mixed_types=True)})

    def log_image(self, name: str, path: str | os.PathLike, caption: str | None = None) -> None:
        """Log an image file (a figure PNG) under `name`."""
        if self._run is None:
            return
        import wandb

        path = Path(path)
        if not path.is_file():
            raise GmvError(f"cannot log image {name!r}: no file at {path}")
        self._run.log({name: wandb.Image(str(path), caption=caption)})

    def log_artifact(self, name: str, type: str, paths: Iterable[str | os.PathLike]) -> None:
        """Log files and folders as one versioned artifact.

        Characters W&B does not allow in artifact names (anything but letters, digits,
        ``-``, ``_`` and ``.``) are replaced by ``-``.
        """
        if self._run is None:
            return
        import wandb

        paths = [Path(p) for p in paths]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise GmvError(f"cannot log artifact {name!r}: missing {', '.join(missing)}")
        artifact = wandb.Artifact(re.sub(r"[^A-Za-z0-9_.-]", "-", name), type=type)
        for p in paths:
            files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
            for f in files:  # file by file: add_dir prints progress even when silenced
                artifact.add_file(str(f), name=(Path(p.name) / f.relative_to(p)).as_posix() if p.is_dir() else p.name)
        self._run.log_artifact(artifact)

    def finish(self, exit_code: int | None = None) -> None:
        """Close the run (idempotent); a non-zero `exit_code` marks it failed."""
        if self._run is not None:
            run, self._run = self._run, None
            run.finish(exit_code=exit_code)

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(exit_code=1 if exc_type is not None else None)


def _cell(v: Any) -> Any:
    """A value a wandb.Table column accepts: scalars as is, NaN kept, others as strings."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if not math.isinf(v) else str(v)
    return str(v)
