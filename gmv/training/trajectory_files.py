"""A trajectory's files: `trajectory.csv` (one row per probed iteration), `trajectory.png` (t, AUROC and
FD / floor against iterations) and a small text table."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from gmv.errors import GmvError
from gmv.io import save_figure, write_csv
from gmv.training.trajectory_probe import ALPHA, COLUMNS

CSV_NAME = "trajectory.csv"
PNG_NAME = "trajectory.png"


# --------------------------------------------------------------------------- files


def _parse(value: str) -> Any:
    if value == "":
        return math.nan
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_trajectory(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a trajectory CSV (numbers parsed), or [] when there is none."""
    path = Path(path)
    if path.is_dir():
        path = path / CSV_NAME
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [{k: _parse(v) for k, v in r.items() if k is not None} for r in csv.DictReader(f)]
    for r in rows:
        if not isinstance(r.get("iteration"), int):
            raise GmvError(f"{path}: a row has no integer `iteration` ({r.get('iteration')!r}); not a trajectory CSV")
    return rows


def write_trajectory(rows: Iterable[Mapping[str, Any]], out_dir: str | Path,
                     title: str | None = None) -> tuple[Path, Path]:
    """Write rows (sorted by iteration) to `out_dir/trajectory.csv` and redraw `trajectory.png`, atomically."""
    rows = sorted(rows, key=lambda r: int(r["iteration"]))
    out_dir = Path(out_dir)
    csv_path = write_csv(out_dir / CSV_NAME, COLUMNS, [[r.get(c, "") for c in COLUMNS] for r in rows])
    png_path = plot_trajectory(rows, out_dir / PNG_NAME, title=title)
    return csv_path, png_path


def _numbers(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    out = []
    for r in rows:
        try:
            out.append(float(r.get(key, math.nan)))
        except (TypeError, ValueError):
            out.append(math.nan)
    return np.asarray(out, dtype=np.float64)


def plot_trajectory(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None) -> Path:
    """Three panels against generator iterations: Welch t (with the p = 0.01 line), AUROC (0.5 line),
    FD / floor (1.0 line)."""
    from matplotlib.figure import Figure

    rows = sorted(rows, key=lambda r: int(r["iteration"]))
    it = _numbers(rows, "iteration")
    fig = Figure(figsize=(12, 3.6), dpi=120)
    axes = fig.subplots(1, 3)
    style = dict(marker="o", ms=3.5, lw=1.4, color="tab:blue")

    ax = axes[0]
    ax.plot(it, _numbers(rows, "t_statistic"), label="Welch t (X_v1 > X_v2)", **style)
    crit = _numbers(rows, "t_critical")
    if np.isfinite(crit).any():
        ax.plot(it, crit, ls="--", lw=1.1, color="tab:red", drawstyle="steps-mid",
                label=f"critical t, one-sided p = {ALPHA:g}")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_title("Membership test: Welch t")
    ax.set_ylabel("t statistic")

    ax = axes[1]
    ax.plot(it, _numbers(rows, "auroc"), label="AUROC of φ (X_v1 vs X_v2)", **style)
    ax.axhline(0.5, ls="--", lw=1.1, color="tab:red", label="0.5 = no signal")
    ax.set_ylim(0.0, 1.0)
    ax.set_title("Membership signal: AUROC")
    ax.set_ylabel("AUROC")

    ax = axes[2]
    ratio = _numbers(rows, "fd_ratio")
    ax.plot(it, ratio, label="FD(X̂, X_v1) / FD(X_v2, X_v1)", **style)
    ax.axhline(1.0, ls="--", lw=1.1, color="tab:red", label="1.0 = held-out real data")
    finite = ratio[np.isfinite(ratio) & (ratio > 0)]
    if finite.size and finite.max() / max(finite.min(), 1e-12) > 20:
        ax.set_yscale("log")
    ax.set_title("Sample quality: FD / floor")
    ax.set_ylabel("Fréchet distance ratio")

    for ax in axes:
        ax.set_xlabel("generator iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(path, fig)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A small text table: iteration, t (critical t), p, AUROC, FD/floor."""
    lines = [f"{'iteration':>9}  {'t':>8}  {'t_crit':>6}  {'p':>9}  {'AUROC':>6}  {'FD/floor':>9}"]
    for r in sorted(rows, key=lambda r: int(r["iteration"])):
        lines.append(f"{int(r['iteration']):>9}  {float(r['t_statistic']):>8.3f}  {float(r['t_critical']):>6.3f}  "
                     f"{float(r['p_value']):>9.2e}  {float(r['auroc']):>6.3f}  {float(r['fd_ratio']):>9.3g}")
    return "\n".join(lines)
