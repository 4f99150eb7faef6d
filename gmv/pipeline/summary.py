"""The block a study prints when it ends: what was found, how good the samples were, where time went,
where the files are. One screen; the numbers are metrics.json's."""

from __future__ import annotations

import bisect
from typing import Any

RULE = "─" * 100

#: FD / floor edges of results/fd_floor/relation.md (scripts/fd_floor_relation.py)
FD_FLOOR_BINS = (1.5, 2.5, 4.0)
#: what that file measured in each bin, every committed probe and study: (points, share with p < 0.01,
#: median AUROC). tests/test_summary.py checks these against results/fd_floor/relation.json.
FD_FLOOR_READING = ((256, 0.66, 0.6587), (56, 0.464, 0.5771), (44, 0.318, 0.5371), (57, 0.0, 0.4983))
#: the same per generator family (relation.json's by_family; None: no point in that bin). A family's own row is
#: quoted where it has at least MIN_FAMILY_POINTS points in the bin, the pooled row otherwise.
FD_FLOOR_READING_BY_FAMILY: dict[str, tuple] = {
    "cfg_diffusion": ((52, 0.962, 0.8698), (5, 0.4, 0.6825), (3, 0.0, 0.6191), (5, 0.0, 0.5469)),
    "stylegan2": ((101, 0.426, 0.602), (21, 0.429, 0.5827), (8, 0.125, 0.5273), (17, 0.0, 0.5083)),
    "biggan": ((103, 0.738, 0.6563), (30, 0.5, 0.5603), (33, 0.394, 0.5323), (35, 0.0, 0.4915)),
}
MIN_FAMILY_POINTS = 10


def _reading(i: int, family: str | None) -> tuple[tuple[int, float, float], str]:
    own = FD_FLOOR_READING_BY_FAMILY.get(family or "")
    if own and own[i] and own[i][0] >= MIN_FAMILY_POINTS:
        return own[i], f"{family} "
    return FD_FLOOR_READING[i], ""


def fd_floor_line(q: dict[str, Any], family: str | None = None) -> str | None:
    """FD / floor of a study's samples and one sentence on how to read it beside RA2, from the relation
    measured across every committed run (results/fd_floor/relation.md) — of the study's generator `family`
    (metrics.json's "generator") where that family has enough points at this FD / floor. None without a floor."""
    floor = q.get("fd_embedding_v2_vs_v1")
    if not floor or q.get("fd_embedding") is None:
        return None
    ratio = q["fd_embedding"] / floor
    i = bisect.bisect_right(FD_FLOOR_BINS, ratio)
    (n, share, median), whose = _reading(i, family)
    where = (f"below {FD_FLOOR_BINS[0]:g}" if i == 0 else f"above {FD_FLOOR_BINS[-1]:g}" if i == len(FD_FLOOR_BINS)
             else f"{FD_FLOOR_BINS[i - 1]:g}–{FD_FLOOR_BINS[i]:g}")
    line = (f"FD / floor {ratio:.2f} (X̂'s FD to X_v1 over held-out X_v2's; 1 = as close as fresh images): of {n} "
            f"committed {whose}runs and probes at FD / floor {where}, {f'{share:.0%}' if share else 'none'} reached "
            f"p < 0.01 (median AUROC {median:.2f})")
    if share >= 0.8:
        return line + "; at this level a missing signal is the exception, not the rule"
    if share < 0.1 and i >= 2:
        return line + ("; the samples are far from the training images, so no signal says more about the "
                       "generator than about the valuation")
    return line


def quality_line(q: dict[str, Any]) -> str:
    line = f"sample quality: FD in the {q['fd_embedder']} embedding {q['fd_embedding']:.4g}"
    if "fd_embedding_v2_vs_v1" in q:
        floor = q["fd_embedding_v2_vs_v1"]
        line += f" (X_v2 vs X_v1, the floor: {floor:.4g}; ratio {q['fd_embedding'] / floor:.2f})" if floor else ""
    line += f", FID {q['fid']:.2f}" if q.get("fid") is not None else ", FID: not available offline"
    return line


def stage_line(clock) -> str:
    parts = []
    for name, st in clock.stages.items():
        mark = {True: " (reused)", False: "", None: ""}[st["reused"]]
        parts.append(f"{name} {st['seconds']:.1f} s{mark}")
    return "stages: " + " · ".join(parts)


def closing_summary(study, clock) -> str:
    """The closing block of a study (or a control study) run."""
    from gmv.analysis.report import summary

    lines = ["", RULE, study.label]
    if study.quality is not None:
        lines.append(summary(study.metrics, study.label,
                             after_ra2=fd_floor_line(study.quality, study.metrics.get("generator"))))
        lines.append(quality_line(study.quality))
    elif study.cfg.get("control"):
        from gmv.pipeline.controls import REPORTS

        kind = study.cfg.control.kind
        lines.append(f"control study (model_output): {study.metrics['n_targets']} target outputs in outputs.npz"
                     if kind == "model_output" else f"control study ({kind}): table above, {REPORTS[kind]}.md/.png")
    t = study.trained or {}
    if t.get("train_seconds") is not None:
        since = t.get("train_seconds_from_iteration") or 0
        span = f" (the time of iterations {since}–{t['iterations']})" if since else ""
        lines.append(f"generator: {t['iterations']} iterations, trained in {float(t['train_seconds']):.0f} s{span}")
    lines.append(stage_line(clock))
    lines.append(f"results in {study.run_dir}/")
    lines.append(RULE)
    return "\n".join(lines)


def show_closing_summary(study, clock) -> None:
    """Print the closing block and keep it as the run folder's summary.txt (the console's reading of the
    run, beside metrics.json's numbers; Hydra's main.log stays empty, as gmv prints rather than logs)."""
    from gmv.io import write_text

    text = closing_summary(study, clock)
    write_text(study.run_dir / "summary.txt", text.strip("\n") + "\n")
    print(text)
