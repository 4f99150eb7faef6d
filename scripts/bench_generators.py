"""Benchmark: training throughput of gmv's generators (BigGAN, StyleGAN2, CFG diffusion) per preset.

    python scripts/bench_generators.py                              # every case, on the CPU
    python scripts/bench_generators.py --only biggan-tiny --iterations 1
    python scripts/bench_generators.py --only 'stylegan2-*,diffusion-tiny'
    python scripts/bench_generators.py --device cuda                # the same on one GPU

What is timed: the real Lightning training path — the harness's own Trainer (`gmv.training.train.
build_trainer`, from the project's hardware config conf/trainer/cpu.yaml or gpu.yaml) fitting the
generator module on an `ImageSetDataModule`, with the harness's `RNGStateCallback` (a timing callback
does the job of its `IterationStop`). Only checkpoint writing, sample grids and the progress bar are
left out (they happen every `checkpoint_every`/`sample_every` iterations, not every iteration). The
timing callback stamps the wall clock each time `module.iteration` advances (after a CUDA synchronise
on a GPU), so one "iteration" is one generator iteration with everything Lightning does around it:
data loading, every real batch of the iteration (BigGAN: n_dis discriminator steps), optimiser steps,
EMA, logging. Nothing here knows a generator family: it reads the generator contract
(gmv/generators/base.py) — `parameter_counts()`, `batch_size`, `real_batches_per_iteration`,
`lazy_regularisation()`, `sampling_settings()`.

- `--warmup` untimed iterations (default 1; 0 for the published presets on the CPU, where one
  iteration takes 1–2 minutes on 2 cores and the one-time costs a fraction of a second), then
  `--iterations` timed ones (default 3 for tiny, 1 for the published presets).
- Lazy regularisation (`lazy_regularisation()`: StyleGAN2's R1 every `r1_interval` and, celeba64,
  path length every `pl_interval` iterations). Warm-ups run at iteration 0 (every regulariser), timed
  plain iterations follow, then (`--reg-iterations`, default on for tiny and on a GPU) the timing
  callback moves the iteration counter to each regulariser's interval, so that one more iteration runs
  with the regularisers due there (e.g. PL alone at 4, R1 + PL at 16); s/iteration is then the
  amortised plain + Σ extra(regulariser)/interval, each extra from those iterations (smallest interval
  first). Without them it is the plain iteration. (The counter only chooses the branch; StyleGAN2's EMA
  ramp-up is its only other use.)
- images/s = batch_size × real batches per iteration (`real_batches_per_iteration`) / s per iteration.
- Cases with a sampling batch also report sampling speed: `generate` (EMA weights, the preset's
  sampling settings — for diffusion DDIM steps and guidance w, i.e. 2 UNet passes per image and step)
  on a small batch, after one untimed call at the same batch shape.

Data: tiny presets train on scikit-learn's digits (1,797 images, 32×32×1, 10 classes); the published
presets on random uint8 images of their shape (cifar10: 32×32×3, 10 classes; celeba64: 64×64×3,
unconditional). Speed does not depend on pixel values. Writes results/bench/generators.{md,json}
(atomically, after every case, so an interrupted run keeps what it measured; `--render JSON` only
rewrites the Markdown from such a JSON).

Every case also records how much CPU the rest of the machine used meanwhile (/proc/stat minus this
process's CPU time) and flags the case ⚠ contended above 0.15 cores: on 2 cores with 2 torch
threads, one busy neighbour process made the tiny presets ~10× and the cifar10 ones ~2× slower.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # total runtime counts the imports too

import argparse
import fnmatch
import logging
import os
import platform
import shlex
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

import lightning as L
from lightning.pytorch.callbacks import Callback

from hydra.utils import get_class

from gmv.data.imageset import ImageSet
from gmv.data.sources import load_digits
from gmv.generators import GENERATORS
from gmv.io import write_json, write_text
from gmv.training.datamodule import ImageSetDataModule
from gmv.training.callbacks import RNGStateCallback
from gmv.training.train import build_trainer, quiet_fit_warnings


@dataclass(frozen=True)
class Case:
    name: str
    generator: str  # its config name, a key of gmv.generators.GENERATORS
    preset: str
    data: str  # digits | random
    image_size: int
    channels: int
    n_classes: int
    iterations: int  # default number of timed iterations (plain ones, for StyleGAN2)
    sample_batch: int = 0  # images in the timed sampling batch (0: sampling not timed)


CASES = [
    Case("biggan-tiny", "biggan", "tiny", "digits", 32, 1, 10, 3, sample_batch=8),
    Case("biggan-cifar10", "biggan", "cifar10", "random", 32, 3, 10, 1),
    Case("stylegan2-tiny", "stylegan2", "tiny", "digits", 32, 1, 10, 3, sample_batch=8),
    Case("stylegan2-cifar10", "stylegan2", "cifar10", "random", 32, 3, 10, 1),
    Case("stylegan2-celeba64", "stylegan2", "celeba64", "random", 64, 3, 1, 1),
    Case("diffusion-tiny", "cfg_diffusion", "tiny", "digits", 32, 1, 10, 3, sample_batch=8),
    Case("diffusion-cifar10", "cfg_diffusion", "cifar10", "random", 32, 3, 10, 1, sample_batch=2),
]


def registered_cases(cases: list[Case]) -> list[Case]:
    """`cases` plus, for every generator of the registry (gmv.generators.GENERATORS) without one, a default
    case: its first preset on 32×32 digits — so a new generator is benchmarked without editing this file."""
    from hydra.utils import get_class

    from gmv.generators import GENERATORS

    covered = {c.generator for c in cases}
    extra = [Case(f"{name}-{next(iter(get_class(target).presets))}", name, next(iter(get_class(target).presets)),
                  "digits", 32, 1, 10, 3, sample_batch=8)
             for name, target in GENERATORS.items() if name not in covered]
    return list(cases) + extra


# --------------------------------------------------------------------------- helpers


def fmt_params(counts: dict[str, int]) -> str:
    return " / ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items())


def make_data(case: Case, n_random: int) -> tuple[ImageSet, bool]:
    """The training set and whether to train conditionally."""
    if case.data == "digits":
        s = load_digits(image_size=case.image_size, channels=case.channels)
        return s, True
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n_random, case.image_size, case.image_size, case.channels), dtype=np.uint8)
    if case.n_classes == 1:
        return ImageSet(images, None, name=f"random{case.image_size}"), False
    labels = np.arange(n_random, dtype=np.int64) % case.n_classes
    return ImageSet(images, labels, name=f"random{case.image_size}"), True


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class LoadMeter:
    """CPU seconds the rest of the machine used while we measured (Linux /proc/stat minus this
    process's own CPU time): anything well above 0 means the timings were contended."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait (incl. steal)
        mine = os.times()
        return busy / hz, mine.user + mine.system, time.perf_counter()

    def stop(self) -> dict | None:
        end = self._read()
        if self.start is None or end is None:
            return None
        wall = end[2] - self.start[2]
        other = max(0.0, (end[0] - self.start[0]) - (end[1] - self.start[1]))
        return {"wall_s": wall, "own_cpu_s": end[1] - self.start[1], "other_cpu_s": other,
                "other_cores": other / wall if wall > 0 else 0.0}


#: average cores used by other processes above which a case is flagged as contended
CONTENDED = 0.15


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class IterationTimer(Callback):
    """Stamps the clock whenever a generator iteration ends; steers lazy regularisers (StyleGAN2's R1 and
    path length) by setting the iteration counter before chosen iterations; stops after the last planned one.

    `plan`: one (counter value the iteration runs at, kind label) per iteration, in order; kinds are
    "warm-up", "plain" and the regularisers due at that counter ("pl", "pl+r1", …). Without lazy
    regularisers the counters are the natural 0, 1, 2, … so setting them changes nothing.
    """

    def __init__(self, plan: list[tuple[int, str]], device: str):
        self.plan = plan
        self.device = device
        self.stamps: list[float] = []
        self.done = 0  # iterations finished
        self._last_it: int | None = None
        self.t_fit_start: float | None = None

    def _set_counter(self, pl_module, value: int) -> None:
        pl_module._iteration.fill_(int(value))
        self._last_it = int(value)

    def on_train_start(self, trainer, pl_module) -> None:
        self._set_counter(pl_module, self.plan[0][0])
        sync(self.device)
        self.t_fit_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        it = pl_module.iteration
        if it == self._last_it:  # a BigGAN D-only step: the iteration is not over yet
            return
        sync(self.device)
        self.stamps.append(time.perf_counter())
        self.done += 1
        if self.done >= len(self.plan):
            trainer.should_stop = True
            self._last_it = it
        else:
            self._set_counter(pl_module, self.plan[self.done][0])


def due_at(lazy: dict[str, int], iteration: int) -> list[str]:
    """The lazy regularisers that run at `iteration`."""
    return sorted(k for k, interval in lazy.items() if iteration % interval == 0)


def lazy_plan(lazy: dict[str, int], n_warmup: int, n_plain: int, regs: bool) -> list[tuple[int, str]]:
    """Counter values: warm-ups at 0 (every regulariser runs), n_plain plain iterations, then (regs) one
    iteration at each distinct interval, running the regularisers due there (kind "r1+pl" etc.)."""
    plain = next(i for i in range(1, 10_000) if not due_at(lazy, i))
    plan = [(0, "warm-up")] * n_warmup + [(plain, "plain")] * n_plain
    if regs:
        plan += [(interval, "+".join(due_at(lazy, interval))) for interval in sorted(set(lazy.values()))]
    return plan


def lazy_amortised(lazy: dict[str, int], times: dict[str, list[float]]) -> tuple[float, dict[str, float]]:
    """Plain s/iteration + Σ extra/interval, each regulariser's extra time from the iteration at its
    interval minus those of the smaller-interval regularisers due there too; regularisers sharing an
    interval are one extra ("r1+pl")."""
    plain = float(np.mean(times["plain"]))
    extra: dict[str, float] = {}
    amortised = plain
    for interval in sorted(set(lazy.values())):
        kind = "+".join(due_at(lazy, interval))
        own = "+".join(sorted(k for k, v in lazy.items() if v == interval))
        known = sum(extra[k] for k in extra if all(lazy[r] < interval for r in k.split("+"))
                    and all(r in kind.split("+") for r in k.split("+")))
        extra[own] = float(np.mean(times[kind])) - plain - known
        amortised += extra[own] / interval
    return amortised, extra


# --------------------------------------------------------------------------- one case


def run_case(case: Case, n_warmup: int, n_timed: int, regs: bool, device: str, trainer_cfg: dict,
             n_random: int, sample_batch: int | None) -> dict:
    t_case = time.perf_counter()
    meter = LoadMeter()
    L.seed_everything(0, verbose=False)
    module = get_class(GENERATORS[case.generator])(case.n_classes, case.image_size, case.channels, preset=case.preset)
    data, conditional = make_data(case, n_random)
    dm = ImageSetDataModule(data, batch_size=module.batch_size, seed=0, conditional=conditional)
    batches_per_iter = module.real_batches_per_iteration
    lazy = module.lazy_regularisation()
    regs = regs and bool(lazy)
    if lazy:
        plan = lazy_plan(lazy, n_warmup, n_timed, regs)
    else:  # natural counters 0, 1, 2, …: setting them changes nothing
        plan = [(i, "warm-up" if i < n_warmup else "plain") for i in range(n_warmup + n_timed)]

    timer = IterationTimer(plan, device)
    with tempfile.TemporaryDirectory(prefix="gmv-bench-") as tmp:
        # the harness's Trainer and RNG callback; the timer replaces its IterationStop (it knows the plan)
        trainer = build_trainer({**trainer_cfg, "enable_model_summary": False}, tmp, [RNGStateCallback(0), timer])
        with quiet_fit_warnings():
            t_fit = time.perf_counter()
            trainer.fit(module, datamodule=dm)
            fit_wall = time.perf_counter() - t_fit
    if timer.done != len(plan):
        raise RuntimeError(f"{case.name}: {timer.done} of {len(plan)} planned iterations ran")

    starts = [timer.t_fit_start] + timer.stamps[:-1]
    durations = [e - s for s, e in zip(starts, timer.stamps)]
    by_kind: dict[str, list[float]] = {}
    for (_, kind), d in zip(plan, durations):
        by_kind.setdefault(kind, []).append(d)
    warmup = by_kind.pop("warm-up", [])
    plain = by_kind["plain"]
    row = {
        "case": case.name,
        "generator": type(module).__name__,
        "preset": case.preset,
        "data": (f"digits {case.image_size}×{case.image_size}×{case.channels}" if case.data == "digits"
                 else f"random uint8 {case.image_size}×{case.image_size}×{case.channels}"),
        "n_classes": case.n_classes,
        "n_train_images": len(data),
        "params": {k: v for k, v in module.parameter_counts().items() if k != "total"},
        "batch_size": int(module.batch_size),
        "batches_per_iteration": int(batches_per_iter),
        "warmup_iterations_s": warmup,
        "timed_iterations": {k: v for k, v in by_kind.items()},
        "plain_s_per_iteration": float(np.mean(plain)),
        "fit_wall_s": fit_wall,
    }
    if lazy:
        row["regularisation"] = {f"{k}_interval": v for k, v in lazy.items()}
    if regs:
        amort, extra = lazy_amortised(lazy, by_kind)
        row["s_per_iteration"] = amort
        row["regulariser_extra_s"] = extra
        row["s_per_iteration_note"] = ("amortised: plain + Σ extra(regulariser)/interval, each from one timed "
                                       "regularised iteration")
    else:
        row["s_per_iteration"] = float(np.mean(plain))
        if lazy:
            row["s_per_iteration_note"] = "plain iterations only: lazy regularisation not timed"
    row["images_per_s"] = module.batch_size * batches_per_iter / row["s_per_iteration"]
    row["iterations_per_hour"] = 3600.0 / row["s_per_iteration"]

    if case.sample_batch:
        row["sampling"] = time_sampling(module, case, device, sample_batch or case.sample_batch)
    row["case_wall_s"] = time.perf_counter() - t_case
    row["other_load"] = meter.stop()
    row["contended"] = bool(row["other_load"] and row["other_load"]["other_cores"] > CONTENDED)
    return row


def time_sampling(module, case: Case, device: str, n: int) -> dict:
    module = module.to(device)  # Lightning hands the module back on the CPU after fit
    labels = torch.arange(n) % case.n_classes
    module.generate(labels, torch.Generator().manual_seed(1))  # warm-up at the same batch shape
    sync(device)
    t = time.perf_counter()
    x = module.generate(labels, torch.Generator().manual_seed(0))
    sync(device)
    s = time.perf_counter() - t
    assert x.shape == (n, case.channels, case.image_size, case.image_size) and torch.isfinite(x).all()
    return {"batch": n, "settings": module.sampling_settings(), "seconds": s, "images_per_s": n / s}


# --------------------------------------------------------------------------- report


def one_time_cost(r: dict) -> float | None:
    """Warm-up time minus the mean timed iteration of the same kind (StyleGAN2 warm-ups run every
    regulariser, like its r1/r1+pl iteration), or None when the run has no such pair."""
    if not r["warmup_iterations_s"]:
        return None
    t = r["timed_iterations"]
    kind = ("r1+pl" if "r1+pl" in t else "r1" if "r1" in t else None) if "regularisation" in r else "plain"
    if kind is None or kind not in t:
        return None
    return float(np.mean(r["warmup_iterations_s"]) - np.mean(t[kind]))


def g(x: float) -> str:
    """A number with 3 significant digits, no exponent for the ranges we meet."""
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def markdown(meta: dict, rows: list[dict]) -> str:
    out = [
        "# Generator training throughput",
        "",
        "```",
        meta["command"],
        "```",
        "",
        f"{meta['date_utc']} · device **{meta['device']}** ({meta['device_name']}) · torch {meta['torch']} · "
        f"lightning {meta['lightning']} · torch threads {meta['torch_threads']} · CPUs usable "
        f"{meta['cpus_usable']} of {meta['cpu_count']} · total runtime {meta['total_runtime_s']:.0f} s",
        "",
    ]
    if meta.get("partial"):
        out += ["**Partial: the run had not finished when this was written.**", ""]
    if meta["device"] == "cpu":
        why = " (this machine has no GPU)" if not meta.get("cuda_available") else ""
        out += [f"CPU only: the `--device cuda` path has **not** been run here{why}; it builds the same Trainer "
                "from conf/trainer/gpu.yaml and synchronises CUDA before each time stamp.", ""]
    out += [
        "| case | params | batch × real batches/iter | warm-up + timed iters | s / iteration | real images/s | "
        "iterations/hour | warm-up iter (s) |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        n_timed = sum(len(v) for v in r["timed_iterations"].values())
        n_warm = len(r["warmup_iterations_s"])
        mark = " \\*" if "regulariser_extra_s" in r else (" †" if "regularisation" in r else "")
        mark += " ⚠" if r.get("contended") else ""
        warm = g(float(np.mean(r["warmup_iterations_s"]))) if n_warm else "—"
        out.append(
            f"| {r['case']} | {fmt_params(r['params'])} | {r['batch_size']} × {r['batches_per_iteration']} | "
            f"{n_warm} + {n_timed} | {g(r['s_per_iteration'])}{mark} | {g(r['images_per_s'])} | "
            f"{g(r['iterations_per_hour'])} | {warm} |"
        )
    bad = [r for r in rows if r.get("contended")]
    if bad:
        out += ["", "⚠ **Contended**: other processes used CPU while these cases ran, so their times are too slow: "
                + "; ".join(f"{r['case']} (others used {r['other_load']['other_cores']:.2f} cores on average)"
                            for r in bad) + ". Rerun them on a quiet machine."]
    elif rows and all(r.get("other_load") for r in rows):
        worst = max(r["other_load"]["other_cores"] for r in rows)
        out += ["", f"Quiet machine: other processes used at most {worst:.2f} cores on average during any case "
                "(from /proc/stat minus this process's CPU time)."]
    if any(not r["warmup_iterations_s"] for r in rows):
        overhead = [f"{r['case']} {one_time_cost(r):+.2f} s" for r in rows if one_time_cost(r) is not None]
        out += ["", "No warm-up (—): the first iteration is timed, one-time costs included; at a minute or more "
                "per iteration they do not matter"
                + (" (warm-up minus timed iteration of the same kind, this run: " + "; ".join(overhead) + ")"
                   if overhead else "")
                + ". `--warmup 1` excludes them anyway."]
    plain_only = [r["case"] for r in rows if "regularisation" in r and "regulariser_extra_s" not in r]
    if plain_only:
        out += ["", f"† {', '.join(plain_only)}: plain iterations only — the lazy R1 (and PL) regularisation "
                "iterations are not timed (`--reg-iterations on` times one of each and amortises them)."]
    sg = [r for r in rows if "regulariser_extra_s" in r]
    if sg:
        out += ["", "\\* Amortised over the lazy-regularisation schedule — plain iteration time plus "
                "each regulariser's extra time divided by its interval:", "",
                "| case | plain s/iter | regularised iterations (s) | extra per regulariser (s) | intervals |",
                "|---|---:|---|---|---|"]
        for r in sg:
            reg = ", ".join(f"{k} {g(float(np.mean(v)))}" for k, v in r["timed_iterations"].items() if k != "plain")
            extra = ", ".join(f"{k} {g(v)}" for k, v in r["regulariser_extra_s"].items())
            iv = ", ".join(f"{k.split('_')[0].upper()} every {v}" for k, v in r["regularisation"].items() if v)
            out.append(f"| {r['case']} | {g(r['plain_s_per_iteration'])} | {reg} | {extra} | {iv} |")
    samp = [r for r in rows if "sampling" in r]
    if samp:
        out += ["", "Sampling (`generate` from the EMA weights with the preset's sampling settings — diffusion: "
                "DDIM, classifier-free guidance = 2 UNet passes per image and step — after an untimed call):", "",
                "| case | batch | sampling settings | seconds | images/s |",
                "|---|---:|---|---:|---:|"]
        for r in samp:
            s = r["sampling"]
            settings = s.get("settings") or {k: s[k] for k in ("ddim_steps", "guidance_w", "eta") if k in s}
            shown = ", ".join(f"{k} {v}" for k, v in settings.items())
            out.append(f"| {r['case']} | {s['batch']} | {shown} | {g(s['seconds'])} | {g(s['images_per_s'])} |")
    out += [
        "",
        "How it is measured: the real Lightning path — the training harness's Trainer (`build_trainer`, from "
        "the project's trainer config) with its `RNGStateCallback`, "
        "`trainer.fit(module, datamodule=ImageSetDataModule(...))`; no checkpoints, sample grids or progress "
        "bar (periodic in real runs). A callback stamps the clock whenever `module.iteration` advances, so an "
        "iteration includes data loading, every D step (BigGAN: n_dis real batches), optimiser steps, EMA "
        "and logging. Warm-up iterations are shown but not used. images/s = batch × "
        "real batches per iteration / s per iteration. Tiny presets train on scikit-learn digits (32×32×1), "
        "cifar10 on random uint8 32×32×3 (10 classes), celeba64 on random uint8 64×64×3 (unconditional). "
        "Few timed iterations: expect ±10% run to run; other load on the machine slows everything.",
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="", help="comma-separated case names or globs "
                   f"({', '.join(c.name for c in registered_cases(CASES))}); default all")
    p.add_argument("--iterations", type=int, default=None,
                   help="timed (plain) iterations per case (default: 3 for tiny, 1 for the published presets)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed warm-up iterations (default: 1, but 0 for the published presets on the CPU, "
                        "where one iteration takes minutes and one-time costs a fraction of a second)")
    p.add_argument("--reg-iterations", choices=["auto", "on", "off"], default="auto",
                   help="generators with lazy regularisation (StyleGAN2): also time one iteration per regulariser "
                        "interval and report the amortised "
                        "cost (auto: on for tiny and on a GPU, off for the published presets on the CPU)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--n-random", type=int, default=1024, help="random images per set for the published presets")
    p.add_argument("--sample-batch", type=int, default=None,
                   help="sampling batch for the cases that time sampling (default: 8 tiny, 2 diffusion-cifar10)")
    p.add_argument("--out", default=str(ROOT / "results" / "bench"))
    p.add_argument("--render", metavar="JSON", default=None,
                   help="only rewrite <out>/generators.md from a generators.json this script wrote (no timing)")
    a = p.parse_args()
    if a.render:
        import json

        d = json.loads(Path(a.render).read_text())
        print(f"[bench] rendered {write_text(Path(a.out) / 'generators.md', markdown(d['meta'], d['results']))}")
        return
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):  # "GPU available: …", tips
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    patterns = [s.strip() for s in a.only.split(",") if s.strip()]
    cases = [c for c in registered_cases(CASES) if not patterns or any(fnmatch.fnmatch(c.name, pt) or c.name.startswith(pt)
                                                    for pt in patterns)]
    if not cases:
        raise SystemExit(f"--only {a.only!r} matches no case; cases: {', '.join(c.name for c in registered_cases(CASES))}")

    from omegaconf import OmegaConf

    trainer_yaml = ROOT / "conf" / "trainer" / ("cpu.yaml" if a.device == "cpu" else "gpu.yaml")
    trainer_cfg = OmegaConf.to_container(OmegaConf.load(trainer_yaml))

    rows = []
    for case in cases:
        slow = case.preset != "tiny" and a.device == "cpu"  # minutes per iteration on 2 cores
        n_timed = a.iterations if a.iterations is not None else case.iterations
        n_warmup = a.warmup if a.warmup is not None else (0 if slow else 1)
        regs = a.reg_iterations == "on" or (a.reg_iterations == "auto" and not slow)  # where there are lazy ones
        if n_timed < 1 or n_warmup < 0:
            raise SystemExit("--iterations must be ≥ 1 and --warmup ≥ 0")
        print(f"[bench] {case.name}: {n_warmup} warm-up + {n_timed} timed iteration(s)"
              + (" (+ regularised ones where there are lazy regularisers)" if regs else "") + " ...", flush=True)
        row = run_case(case, n_warmup, n_timed, regs, a.device, trainer_cfg, a.n_random, a.sample_batch)
        msg = (f"[bench] {case.name}: {row['s_per_iteration']:.3f} s/iteration, {row['images_per_s']:.1f} images/s "
               f"(case {row['case_wall_s']:.1f} s)")
        if row["contended"]:
            msg += f" CONTENDED: other processes used {row['other_load']['other_cores']:.2f} cores"
        if "sampling" in row:
            s = row["sampling"]
            msg += f"; sampling {s['batch']} images: {s['seconds']:.2f} s"
        print(msg, flush=True)
        rows.append(row)
        write_results(a, rows, trainer_yaml, partial=case is not cases[-1])  # a crash keeps what ran


def write_results(a, rows: list[dict], trainer_yaml: Path, partial: bool) -> None:
    import lightning

    argv = ["python", "scripts/bench_generators.py", *sys.argv[1:]]
    meta = {
        "command": " ".join(shlex.quote(x) for x in argv),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": a.device,
        "device_name": torch.cuda.get_device_name(0) if a.device == "cuda" else cpu_name(),
        "cuda_path_tested": a.device == "cuda",
        "cuda_available": torch.cuda.is_available(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "trainer_config": str(trainer_yaml.relative_to(ROOT)),
        "total_runtime_s": time.perf_counter() - T_START,
    }
    if a.device == "cpu":
        meta["note"] = "CPU only: the --device cuda path was not run" + (
            "" if torch.cuda.is_available() else " (no GPU on this machine)")
    if partial:
        meta["partial"] = "written after each case; the run has not finished"
    out = Path(a.out)
    write_json(out / "generators.json", {"meta": meta, "results": rows})
    write_text(out / "generators.md", markdown(meta, rows))
    if not partial:
        print(markdown(meta, rows))
        print(f"[bench] wrote {out / 'generators.md'} and {out / 'generators.json'} "
              f"in {meta['total_runtime_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
