"""Collect an exploration — every configuration tried, each a `gmv` run folder with a trajectory.csv
(gmv-trajectory) — into one table: the run's overrides, then per probed iteration Welch t, p,
AUROC, Cohen's d and FD / floor, with the training wall time the run took to reach that iteration.

    python scripts/exploration_table.py RUN_DIR [RUN_DIR ...] --out results/exploration/digits --title "…"
    python scripts/exploration_table.py NEW_RUN --keep results/exploration/cifar10/exploration.csv --out …

`--keep CSV` puts the rows of an earlier table first (runs whose folders are no longer at hand), so an
exploration that grows over several sessions stays one table of every configuration tried.

Writes OUT/exploration.csv (every row), OUT/exploration.md, and per run OUT/<run folder name>.png (its
trajectory plot) and OUT/<run folder name>.yaml (its resolved config).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import yaml

from gmv.analysis.tables import markdown_table
from gmv.training.trajectory_files import read_trajectory
from gmv.io import write_csv, write_text

IGNORED = ("study=", "logger.", "cache_dir=", "hydra.", "train.checkpoint_every=", "train.sample_every=",
           "data.source=", "embedder.weights=")
COLUMNS = ["configuration", "n_v1", "iteration", "train_seconds_to_here", "t_statistic", "p_value", "auroc",
           "cohens_d", "fd_ratio", "m", "k", "tau_used"]


def configuration(run: Path) -> str:
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text()) or []
    return " ".join(o for o in overrides if not o.startswith(IGNORED))


def rows_of(run: Path, continued_from: int = 0, timed_from: int | None = None) -> list[dict]:
    """A run stopped before it finished has no metrics.json: its rows carry no training time, and n_v1
    comes from its split.npz. A run that continued a shorter run's first iterations (metrics.json's
    train_continued_from, or `continued_from`) timed only the rest: its rows start after them, their time counted
    from there (the shorter run's probes are that run's rows). Training time covers iterations from
    `train_seconds_from_iteration` on (older metrics: from the continued iteration); a row before it — a run
    resumed from a checkpoint of a part whose time was not recorded — has none."""
    start = continued_from
    if (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text())
        start = int(metrics.get("train_continued_from") or continued_from)
        timed_from = metrics.get("train_seconds_from_iteration", timed_from)
        timed_from = start if timed_from is None else int(timed_from)  # older metrics: timed from `start`
        per_iteration = float(metrics["train_seconds"]) / (float(metrics["train_iterations"]) - timed_from)
    else:
        import numpy as np

        metrics = {"n_v1": int(len(np.load(run / "split.npz")["v1"]))}
        per_iteration = None
    probed = read_trajectory(run / "trajectory.csv")  # gmv's own reader (numbers parsed, the file checked)
    name = configuration(run)
    return [{"configuration": name, "n_v1": metrics["n_v1"], "iteration": r["iteration"],
             "train_seconds_to_here": (
                 None if per_iteration is None or (timed_from > 0 and r["iteration"] <= timed_from)
                 else round(per_iteration * (r["iteration"] - timed_from))),
             **{k: float(r[k]) for k in ("t_statistic", "p_value", "auroc", "cohens_d", "fd_ratio", "tau_used")},
             "m": int(r["m"]), "k": int(r["k"])} for r in probed if r["iteration"] > start]


def kept_rows(path: Path) -> list[dict]:
    """The rows of an earlier exploration.csv, typed as rows_of makes them."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    ints, floats = ("n_v1", "iteration", "m", "k"), ("t_statistic", "p_value", "auroc", "cohens_d", "fd_ratio",
                                                    "tau_used")
    return [{**r, **{k: int(r[k]) for k in ints}, **{k: float(r[k]) for k in floats},
             "train_seconds_to_here": int(r["train_seconds_to_here"]) if r["train_seconds_to_here"] else None}
            for r in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--keep", type=Path, help="an earlier exploration.csv whose rows come first")
    p.add_argument("--title", default="Exploration")
    p.add_argument("--note", default="", help="a paragraph placed under the title (what was explored and why)")
    p.add_argument("--continued-from", type=int, default=0,
                   help="the runs continued a shorter run's first N iterations (for runs whose metrics.json predates "
                        "train_continued_from)")
    p.add_argument("--timed-from", type=int, default=None,
                   help="the runs' training time covers iterations from N on (for runs resumed from a checkpoint "
                        "whose metrics.json predates train_seconds_from_iteration)")
    a = p.parse_args(argv)
    rows = (kept_rows(a.keep) if a.keep else []) + [r for run in a.runs
                                                     for r in rows_of(run, a.continued_from, a.timed_from)]
    a.out.mkdir(parents=True, exist_ok=True)
    for run in a.runs:
        for src, suffix in ((run / "trajectory.png", ".png"), (run / "config.yaml", ".yaml")):
            if src.is_file():
                shutil.copyfile(src, a.out / f"{run.name}{suffix}")
    write_csv(a.out / "exploration.csv", COLUMNS, [[r[c] for c in COLUMNS] for r in rows])
    header = ["configuration", "n_v1", "iteration",
              "≈ train s (run total × iteration / total; a continued run's from where it continued)", "t", "p", "AUROC",
              "Cohen's d", "FD / floor"]
    body = [[f"`{r['configuration']}`", str(r["n_v1"]), str(r["iteration"]),
             "–" if r["train_seconds_to_here"] is None else str(r["train_seconds_to_here"]),
             f"{r['t_statistic']:.2f}", f"{r['p_value']:.2g}", f"{r['auroc']:.3f}", f"{r['cohens_d']:.2f}",
             f"{r['fd_ratio']:.2f}"] for r in rows]
    text = f"# {a.title}\n\n{a.note}\n\n" + markdown_table(header, body, [False] + [True] * 8)
    write_text(a.out / "exploration.md", text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
