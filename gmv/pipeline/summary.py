"""The block a study prints when it ends: what was found, how good the samples were, where time went,
where the files are. One screen; the numbers are metrics.json's."""

from __future__ import annotations

from typing import Any

RULE = "─" * 100


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
        lines.append(summary(study.metrics, study.label))
        lines.append(quality_line(study.quality))
    elif study.cfg.get("control"):
        lines.append(f"control study ({study.cfg.control.kind}): table above, dose_response.md/.png")
    t = study.trained or {}
    if t.get("train_seconds") is not None:
        lines.append(f"generator: {t['iterations']} iterations, trained in {float(t['train_seconds']):.0f} s")
    lines.append(stage_line(clock))
    lines.append(f"results in {study.run_dir}/")
    lines.append(RULE)
    return "\n".join(lines)
