#!/usr/bin/env bash
# One short GPU check (≤ 8 minutes on a CUDA machine) of everything gmv's GPU forms need, written to
# results/bench/gpu.md (+ gpu.json):
#   1. each generator's smoke study on `cuda` (trainer=gpu), end to end;
#   2. training iterations of the published presets (BigGAN and StyleGAN2 `cifar10`, CFG diffusion `cifar10`)
#      timed through the training harness, with the extrapolated time of their published schedules;
#   3. VGG-16 fc7 embedding at 224 px (images/s) and FAISS exact search at N = 100k, M = 10k, D = 4096.
#
#   bash scripts/gpu_check.sh                 # on a CUDA machine
#   GMV_TORCH_SPEC="torch==… --index-url …" bash scripts/gpu_check.sh   # installs a CUDA torch into ./.venv first
#   GMV_PYTHON=python3 bash scripts/gpu_check.sh   # use a Python that already has a CUDA torch (+ gmv's needs,
#                                             #   e.g. from wheels: GMV_WHEELS=DIR installs DIR/*.whl first)
#   bash scripts/gpu_check.sh --cpu OUT.md    # the CPU fallback: the same steps at toy sizes (tests run this)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

mode="gpu"
out="$root/results/bench/gpu.md"
if [ "${1:-}" = "--cpu" ]; then
  mode="cpu"
  out="${2:-$root/results/bench/gpu_cpu_fallback.md}"
fi

if [ -n "${GMV_PYTHON:-}" ]; then
  python="$GMV_PYTHON"
  if [ -n "${GMV_WHEELS:-}" ]; then
    "$python" -m pip install -q --no-index --no-deps --target /tmp/gmv-site "$GMV_WHEELS"/*.whl
    export PYTHONPATH="/tmp/gmv-site:$root${PYTHONPATH:+:$PYTHONPATH}"
  else
    export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
  fi
else
  bash "$root/scripts/setup.sh"
  python="$root/.venv/bin/python"
fi

if [ "$mode" = "gpu" ] && ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device visible to $python (torch $("$python" -c 'import torch; print(torch.__version__)'))." >&2
  echo "  Install a CUDA build (GMV_TORCH_SPEC) or point GMV_PYTHON at one; 'bash scripts/gpu_check.sh --cpu' runs the CPU fallback." >&2
  exit 2
fi

export WANDB_MODE=disabled WANDB_SILENT=true PYTHONUNBUFFERED=1
# the whole check stays inside 8 minutes: each step has its own budget (seconds) in gpu_check.py
exec timeout 480 "$python" "$root/scripts/gpu_check.py" --mode "$mode" --out "$out"
