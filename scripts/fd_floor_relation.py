"""How sample quality (FD / floor) relates to the membership signal (AUROC, p) across every committed run.

    python scripts/fd_floor_relation.py [--out results/fd_floor]

FD / floor = the Fréchet distance of X̂ to X_v1 divided by that of the held-out X_v2 to X_v1, in the
study's own embedding (1 = the samples are as close to the training half as fresh images of the same
distribution are). Read from what results/ already holds:

* every probe of the committed explorations (results/exploration/*/exploration.csv) and every committed
  training trajectory (results/**/trajectory.csv);
* every committed study whose metrics.json has both FDs (results/**/metrics.json), one row per distinct
  generator state (a sweep that values one generator many ways counts once, with its first run); the
  counterfactual retrains (trained without some X_v1 images: `n_removed` in metrics.json) are left out — 121
  near-copies of one digits study would outweigh every protocol.

Writes relation.csv (every point, with its source), relation.md / relation.json (the points binned by
FD / floor: how many, median and largest AUROC, share with p < 0.01) and relation.png (AUROC against
FD / floor, log scale, marker by generator family). gmv's console sentence on FD / floor
(`gmv.pipeline.summary.FD_FLOOR_READING`) quotes relation.json; a test checks that they agree.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from gmv.pipeline.summary import FD_FLOOR_BINS, MIN_FAMILY_POINTS

FAMILIES = ("cfg_diffusion", "stylegan2", "biggan")


def family_of(text: str) -> str:
    """The generator family named in a command line or config (BigGAN when an experiment implies it)."""
    for f in FAMILIES:
        if f"generator={f}" in text or f"_target_: gmv.generators.{f}" in text:
            return f
    if "cfg_diffusion" in text:
        return "cfg_diffusion"
    if "stylegan2" in text:
        return "stylegan2"
    if "biggan" in text:
        return "biggan"
    return "cfg_diffusion"  # the default study's generator


def probe_rows(results: Path) -> list[dict]:
    rows = []
    for path in sorted(results.glob("exploration/*/exploration.csv")):
        for r in csv.DictReader(path.open()):
            if r.get("fd_ratio") and r.get("auroc"):
                rows.append({"source": str(path.relative_to(ROOT)), "what": f"{r['configuration']} @ {r['iteration']}",
                             "family": family_of(r["configuration"]), "kind": "probe",
                             "fd_ratio": float(r["fd_ratio"]), "auroc": float(r["auroc"]), "p_value": float(r["p_value"])})
    for path in sorted(results.glob("**/trajectory.csv")):
        if "exploration" in path.parts:
            continue
        config = (path.parent / "config.yaml").read_text() if (path.parent / "config.yaml").is_file() else str(path)
        for r in csv.DictReader(path.open()):
            rows.append({"source": str(path.relative_to(ROOT)), "what": f"iteration {r['iteration']}",
                         "family": family_of(config), "kind": "probe",
                         "fd_ratio": float(r["fd_ratio"]), "auroc": float(r["auroc"]), "p_value": float(r["p_value"])})
    return rows


def study_rows(results: Path) -> list[dict]:
    rows, seen = [], set()
    for path in sorted(results.glob("**/metrics.json")):
        m = json.loads(path.read_text())
        fd, floor = m.get("fd_embedding"), m.get("fd_embedding_v2_vs_v1")
        if not fd or not floor or m.get("auroc") is None or m.get("n_removed"):
            continue  # a retrain without some X_v1 images (counterfactual studies) is not a study of a protocol
        key = (round(fd, 9), round(floor, 9))  # one generator state (its samples) counts once
        if key in seen:
            continue
        seen.add(key)
        config = (path.parent / "config.yaml").read_text() if (path.parent / "config.yaml").is_file() else ""
        family = m.get("generator") if m.get("generator") in FAMILIES else family_of(config)
        rows.append({"source": str(path.relative_to(ROOT)), "what": "end of run", "family": family,
                     "kind": "study", "fd_ratio": fd / floor, "auroc": float(m["auroc"]), "p_value": float(m["p_value"])})
    return rows


def binned(rows: list[dict]) -> list[dict]:
    out = []
    edges = [0.0, *FD_FLOOR_BINS, float("inf")]
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = [r for r in rows if lo <= r["fd_ratio"] < hi]
        au = np.array([r["auroc"] for r in sel])
        out.append({"fd_floor_low": lo, "fd_floor_high": hi, "n": len(sel),
                    "n_studies": sum(r["kind"] == "study" for r in sel),
                    "median_auroc": float(np.median(au)) if len(sel) else None,
                    "max_auroc": float(au.max()) if len(sel) else None,
                    "share_p_below_0_01": float(np.mean([r["p_value"] < 0.01 for r in sel])) if sel else None,
                    "share_auroc_at_least_0_8": float(np.mean(au >= 0.8)) if len(sel) else None,
                    "families": sorted({r["family"] for r in sel})})
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    marks = {"cfg_diffusion": ("o", "#2ca02c", "CFG diffusion"), "biggan": ("s", "#1f77b4", "BigGAN"),
             "stylegan2": ("^", "#d62728", "StyleGAN2")}
    for fam, (mk, colour, name) in marks.items():
        for kind, filled in (("probe", False), ("study", True)):
            sel = [r for r in rows if r["family"] == fam and r["kind"] == kind]
            if sel:
                ax.scatter([r["fd_ratio"] for r in sel], [r["auroc"] for r in sel], marker=mk, s=28,
                           facecolors=colour if filled else "none", edgecolors=colour,
                           label=f"{name} ({'end of run' if filled else 'probe'}, {len(sel)})")
    for edge in FD_FLOOR_BINS:
        ax.axvline(edge, color="grey", lw=0.8, ls=":")
    ax.axhline(0.5, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("FD / floor (X̂ vs X_v1 ÷ X_v2 vs X_v1, the study's embedding)")
    ax.set_ylabel("RA2 AUROC (X_v1 vs X_v2 values)")
    ax.set_title("Sample quality and membership signal, every committed run")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def bin_rows(bins: list[dict]) -> list[str]:
    """One markdown row per bin."""
    lines = []
    for b in bins:
        hi = "∞" if b["fd_floor_high"] == float("inf") else f"{b['fd_floor_high']:g}"
        if not b["n"]:
            lines.append(f"| {b['fd_floor_low']:g} – {hi} | 0 | 0 | | | | | |")
            continue
        lines.append(f"| {b['fd_floor_low']:g} – {hi} | {b['n']} | {b['n_studies']} | {b['median_auroc']:.3f} | "
                     f"{b['max_auroc']:.3f} | {b['share_p_below_0_01']:.0%} | {b['share_auroc_at_least_0_8']:.0%} | "
                     f"{', '.join(b['families'])} |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "results" / "fd_floor")
    a = p.parse_args(argv)
    results = ROOT / "results"
    rows = probe_rows(results) + study_rows(results)
    a.out.mkdir(parents=True, exist_ok=True)
    with (a.out / "relation.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    bins = binned(rows)
    by_family = {f: binned([r for r in rows if r["family"] == f]) for f in FAMILIES
                 if any(r["family"] == f for r in rows)}
    (a.out / "relation.json").write_text(json.dumps({"command": "python scripts/fd_floor_relation.py",
                                                     "n_points": len(rows), "bins": bins, "by_family": by_family},
                                                    indent=2) + "\n")
    lines = ["# FD / floor and the membership signal, across every committed run", "",
             f"`python scripts/fd_floor_relation.py` — {len(rows)} points: "
             f"{sum(r['kind'] == 'probe' for r in rows)} training-trajectory and exploration probes, "
             f"{sum(r['kind'] == 'study' for r in rows)} end-of-run studies (one per generator state). "
             "Every point is in relation.csv with its source; relation.png plots them. Probes of one run are not "
             "independent, and the families are not spread evenly over the bins: a description of what was "
             "measured, not a calibrated law.", "",
             "| FD / floor | points | of them studies | median AUROC | largest AUROC | share p < 0.01 | share AUROC ≥ 0.8 | generators |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    lines += bin_rows(bins)
    lines += ["", "Per generator family (the console quotes a family's own row where it has at least "
              f"{MIN_FAMILY_POINTS} points in the bin, the pooled row otherwise):", "",
              "| family | FD / floor | points | of them studies | median AUROC | largest AUROC | share p < 0.01 | "
              "share AUROC ≥ 0.8 | generators |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for family, fam_bins in by_family.items():
        lines += [f"| {family} {row}" for row in bin_rows(fam_bins)]
    (a.out / "relation.md").write_text("\n".join(lines) + "\n")
    plot(rows, a.out / "relation.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
