#!/usr/bin/env bash
# Creates ./.venv on first use and (re)installs gmv into it when pyproject.toml changes.
# Sourced by scripts/run.sh and scripts/test.sh; safe to run by hand.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
# The torch/torchvision pair pinned here installs from the local wheel cache on our x86_64 image;
# override with GMV_TORCH_SPEC (e.g. a CUDA build) on other machines.
torch_spec="${GMV_TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[gmv setup] creating $venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
fi
stamp="$venv/.gmv-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1) $torch_spec"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[gmv setup] installing $torch_spec and gmv[dev,distributed,hub] into $venv (first run takes a few minutes)"
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q $torch_spec
  # dev: the test tools; distributed: Ray, so that the Ray engine's tests run in CI too; hub: timm and
  # open_clip, so that the library embedders' tests run too
  "$venv/bin/python" -m pip install -q -e "$root[dev,distributed,hub]"
  echo "$want" > "$stamp"
fi
