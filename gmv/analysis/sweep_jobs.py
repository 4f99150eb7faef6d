"""Read a Hydra multirun: its job folders, each job's overrides, metrics and values.

A multirun such as ``gmv -m valuation.k=1,5,10 matcher=pq matcher.m=8,16`` writes one
folder per job under the sweep folder (``SWEEP/0``, ``SWEEP/1``, … or deeper, e.g.
``SWEEP/<name>/0``), each with ``.hydra/overrides.yaml`` and, when the job finished,
``metrics.json`` and ``values.csv``. A job folder without ``metrics.json`` failed.

The swept parameters are the override keys whose values differ between jobs
(``hydra.*`` keys aside); their values are read back as numbers where they look like
numbers, so ``k=5`` sorts before ``k=10``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gmv.analysis.tables import is_number, param_cell
from gmv.errors import GmvError

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class Job:
    """One job of the sweep: its folder, its Hydra overrides and its metrics (empty when it failed)."""

    dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    failed: bool = False

    def name(self, sweep_dir: Path) -> str:
        """The job folder relative to the sweep folder, e.g. ``3`` or ``name/0``."""
        return self.dir.relative_to(sweep_dir).as_posix() if self.dir != sweep_dir else "."

    def generator(self) -> str | None:
        """The generator this job valued: metrics["generator"], else the ``generator`` override."""
        name = self.metrics.get("generator") or self.overrides.get("generator")
        return None if name is None else str(name)


def parse_value(text: str) -> Any:
    """An override value as written on the command line: an int or float where it looks numeric, else the text."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if _NUMBER.fullmatch(text):
        return int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
    return text


def parse_overrides(lines: list) -> dict[str, Any]:
    """``["valuation.k=5", "matcher=pq", "+x=1"]`` → ``{"valuation.k": 5, "matcher": "pq", "x": 1}``."""
    overrides = {}
    for line in lines:
        key, sep, value = str(line).partition("=")
        key = key.lstrip("+~")  # Hydra's append (+, ++) and delete (~) prefixes
        overrides[key] = parse_value(value) if sep else None
    return overrides


def _read_overrides(path: Path) -> dict[str, Any]:
    import yaml

    try:
        lines = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError) as e:
        raise GmvError(f"cannot read {path}: {e}") from e
    if not isinstance(lines, list):
        raise GmvError(f"{path}: expected a YAML list of overrides like 'valuation.k=5', got {type(lines).__name__}")
    return parse_overrides(lines)


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text())  # Python's json reads NaN and Infinity too
    except (OSError, ValueError) as e:
        raise GmvError(f"cannot read {path}: {e}") from e
    if not isinstance(metrics, dict):
        raise GmvError(f"{path}: expected a JSON object of metrics, got {type(metrics).__name__}")
    return metrics


def _overrides_file(job_dir: Path, sweep_dir: Path) -> Path | None:
    """The nearest ``.hydra/overrides.yaml`` in the job folder or a folder above it (below the sweep folder)."""
    for folder in [job_dir, *job_dir.parents]:
        if folder == sweep_dir or sweep_dir not in folder.parents:
            break
        if (folder / ".hydra" / "overrides.yaml").is_file():
            return folder / ".hydra" / "overrides.yaml"
    return None


def _natural_key(path: Path) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts]


def collect_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job below `sweep_dir`: each folder holding metrics.json, and each ``.hydra`` job without one (failed).

    Jobs come in folder order (``2`` before ``10``). Raises :class:`GmvError` when the
    folder is missing or holds no finished job.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise GmvError(f"sweep folder not found: {sweep_dir}")
    sweep_dir = sweep_dir.resolve()
    finished = sorted({p.parent for p in sweep_dir.rglob("metrics.json") if ".hydra" not in p.parts},
                      key=_natural_key)
    if not finished:
        raise GmvError(f"no job folders with metrics.json found below {sweep_dir} "
                       "(expected the output folder of a Hydra multirun, e.g. multirun/<date>/<time>)")
    jobs = []
    for job_dir in finished:
        overrides_file = _overrides_file(job_dir, sweep_dir)
        jobs.append(Job(dir=job_dir, overrides=_read_overrides(overrides_file) if overrides_file else {},
                        metrics=_read_metrics(job_dir / "metrics.json")))
    for hydra_dir in sweep_dir.rglob(".hydra"):
        job_dir = hydra_dir.parent
        if job_dir == sweep_dir or not (hydra_dir / "overrides.yaml").is_file():
            continue
        if any(job_dir == d or job_dir in d.parents for d in finished):
            continue  # finished, possibly with metrics.json in a subfolder
        jobs.append(Job(dir=job_dir, overrides=_read_overrides(hydra_dir / "overrides.yaml"), failed=True))
    return sorted(jobs, key=lambda j: _natural_key(j.dir))


def read_values(path: Path) -> dict[str, np.ndarray]:
    """A job's values.csv → {"v1": values, "v2": values}."""
    by_split: dict[str, list[float]] = {"v1": [], "v2": []}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("split") in by_split:
                    by_split[row["split"]].append(float(row["value"]))
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise GmvError(f"cannot read the values in {path} (columns index, split, label, value, n_matches): {e}") from e
    return {split: np.asarray(v, dtype=np.float64) for split, v in by_split.items()}


#: overrides that say where a job ran, not what it computed (caches are keyed by content): never a swept parameter
PLACEMENT_KEYS = ("cache_dir",)


def swept_parameters(jobs: list[Job]) -> list[str]:
    """The override keys whose values differ between jobs (``hydra.*`` and PLACEMENT_KEYS ignored), in command-line
    order."""
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys and not k.startswith("hydra.") and k not in PLACEMENT_KEYS]
    return [k for k in keys if len({repr(job.overrides.get(k)) for job in jobs}) > 1]


def sort_key(value: Any) -> tuple:
    """Numbers first (numerically), then text, then missing."""
    if value is None:
        return (2, 0, "")
    if is_number(value):
        return (0, value, "")
    return (1, 0, str(value))


def sort_jobs(jobs: list[Job], params: list[str]) -> list[Job]:
    """Jobs ordered by the swept parameters, in the order given (stable: folder order breaks ties)."""
    return sorted(jobs, key=lambda j: [sort_key(j.overrides.get(p)) for p in params])


def setting_label(job: Job, params: list[str]) -> str:
    """``k=5, matcher.m=8`` — a job's setting of the given parameters."""
    return ", ".join(f"{p}={param_cell(job.overrides.get(p))}" for p in params) or "all jobs"
