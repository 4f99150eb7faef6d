#!/usr/bin/env bash
# The README's main command: sets up ./.venv if needed, then runs the default study
# (`gmv` with no arguments: digits → X_v1/X_v2 → small guided diffusion model on X_v1 → samples → valuation →
# RA1–RA3; ≈ 7 min on 2 CPU cores, no download). Extra arguments are Hydra overrides, e.g.
# `bash scripts/run.sh experiment=smoke generator=stylegan2` or `hydra.run.dir=results/mine`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec "$root/.venv/bin/gmv" "$@"
