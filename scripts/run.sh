#!/usr/bin/env bash
# The README's main command: sets up ./.venv if needed, then runs the default study.
# Until the generator pipeline lands (issue 4), the default study is the default valuation:
# scikit-learn's digits (no download) split in class-stratified halves X_v1 / X_v2, a stand-in X̂ of
# augmented copies of X_v1, valued with gmv-value; RA1–RA3 tables and figures in outputs/default/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
out="${GMV_OUT:-outputs/default}"
py="$root/.venv/bin/python"
"$py" scripts/make_planted_sets.py --data digits --m 900 --out "$out/sets"
exec "$root/.venv/bin/gmv-value" --train "$out/sets/v1.npz" --held-out "$out/sets/v2.npz" \
  --generated "$out/sets/generated.npz" --k 10 --index pq --rerank 100 \
  --label "digits: augmented X_v1" --out "$out" "$@"
