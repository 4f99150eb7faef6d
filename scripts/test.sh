#!/usr/bin/env bash
# The test command of the README: sets up ./.venv if needed, then runs the fast test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
export WANDB_MODE="${WANDB_MODE:-disabled}" WANDB_SILENT=true
exec "$root/.venv/bin/python" -m pytest "$@"
