"""The per-image files of a valuation: values.csv (one row per pool image: split, label, value, match count,
the audit's p-value and flag, every baseline's score, a training-set edit's provenance) and match_tables.npz
(the m×K tables, Eq. 5 credits, q_j), plus the attributions a method that needs the generator saved."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gmv.errors import GmvError
from gmv.io import save_npz, write_csv
from gmv.valuation.api import Valuation


def write_value_tables(val: Valuation, out_dir: Path, audit: dict | None = None,
                       pool_columns: dict[str, np.ndarray] | None = None) -> None:
    columns = {"index": np.arange(len(val.values)), "split": val.split, "label": val.pool.labels.astype(np.int64),
               "value": [f"{v:.10g}" for v in val.values], "n_matches": val.n_matches.astype(np.int64)}
    if val.ids is not None:  # precomputed embeddings' ids, image folders' file paths
        columns = {"index": columns.pop("index"), "id": val.ids, **columns}
    if audit is not None:
        columns["p_value"] = [f"{p:.6g}" for p in audit["p_value"]]
        columns["bh_flag"] = audit["bh_flag"].astype(int)
    for name, result in list(val.methods.items())[1:]:
        columns[name] = [f"{v:.8g}" for v in result.values]
    for name, column in (pool_columns or {}).items():  # e.g. a training-set edit's provenance (gmv/data/edit.py)
        if len(column) != len(val.values):
            raise GmvError(f"values.csv column {name!r} has {len(column)} rows for {len(val.values)} pool images")
        columns[name] = column
    rows = list(zip(*columns.values()))
    write_csv(out_dir / "values.csv", list(columns), rows)
    gen_ids = {} if val.generated_ids is None else {"generated_ids": val.generated_ids}
    quality = {k: val.main.arrays[k] for k in ("quality",) if k in val.main.arrays}  # q_j per generated image
    save_npz(out_dir / "match_tables.npz", distances=val.matches.distances, indices=val.matches.indices,
             credit=val.credit.astype(np.float32), **gen_ids, **quality)
    for name, result in val.methods.items():  # per-target attributions a method cannot recompute without its model
        if "attributions" in result.arrays:
            save_npz(out_dir / f"attributions_{name}.npz", attributions=result.arrays["attributions"].astype(np.float32))
