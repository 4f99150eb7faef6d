#!/usr/bin/env bash
# The counterfactual study of issue 18 (conf/experiment/counterfactual/digits.yaml), resumable across machines:
# every retrain is one run named by its removal, and what is finished is kept in results/counterfactual/ (each
# retrain's small files and its reading, counterfactual_job.npz, without its samples), so a new machine runs only
# what is missing.
#   bash scripts/counterfactual_study.sh list             the 2 base runs and 121 retrains, one per line, each marked
#                                                         kept (in results/counterfactual) or todo
#   bash scripts/counterfactual_study.sh run [WORK]       run what results/counterfactual lacks, two at a time (one
#                                                         per core) in WORK (default /tmp/gmv_counterfactual)
#   bash scripts/counterfactual_study.sh collect [WORK]   read WORK's finished retrains against their bases and copy
#                                                         each one's small files and reading into results/
#   bash scripts/counterfactual_study.sh report           the report of every kept retrain (+ the LDS report)
#   bash scripts/counterfactual_study.sh scope [WORK]     hypothesis 5b's 6 retrains (GMValuator ranked on D-TRAK's
#                                                         200 targets), run and kept in results/counterfactual/scope
# Order: base 1, seed 0's ranked and random removals, base 2, seeds 1 and 2, then the per-target removals (seed 0).
# A retrain of seed 1 or 2 waits for its base (kept in results/counterfactual/base_S when it finishes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
res="$root/results/counterfactual"
work="${2:-/tmp/gmv_counterfactual}"
base_of() { if [ "$1" = 0 ]; then echo "$root/results/lds/digits_base"; else echo "$res/base_$1"; fi; }

jobs() {  # folder<TAB>overrides
  printf 'base_1\texperiment=lds/digits_base seed=1 ~valuation.baselines.trak\n'
  for s in 0 1 2; do
    [ "$s" = 1 ] && printf 'base_2\texperiment=lds/digits_base seed=2 ~valuation.baselines.trak\n'
    for r in 5 10 20; do
      printf 'retrains/random_%s/random_r%s\tseed=%s data.subset.rule=random data.subset.ranking=null data.subset.r=%s\n' \
        "$s" "$r" "$s" "$r"
    done
    for c in value knn_count gan_leaks d_trak; do for rule in top bottom; do for r in 5 10 20; do
      printf 'retrains/ranked_%s/%s_%s_r%s\tseed=%s data.subset.ranking=%s/values.csv data.subset.column=%s ' \
        "$s" "$c" "$rule" "$r" "$s" "$(base_of "$s")" "$c"
      printf 'data.subset.rule=%s data.subset.r=%s\n' "$rule" "$r"
    done; done; done
  done
  for c in value d_trak; do for t in $(seq 0 19); do
    printf 'retrains/target_0/%s_t%s\tseed=0 data.subset.ranking=%s data.subset.column=%s data.subset.target=%s data.subset.r=5\n' \
      "$c" "$t" "$(base_of 0)" "$c" "$t"
  done; done
}

scope_jobs() {  # hypothesis 5b: GMValuator's top r by its credit from D-TRAK's 200 targets (the generated 0s and 1s)
  for s in 0 1 2; do for r in 5 10; do
    printf 'scope/scope_%s/value_targets200_top_r%s\tseed=%s data.subset.ranking=%s/scope/rankings/base_%s.csv ' \
      "$s" "$r" "$s" "$res" "$s"
    printf 'data.subset.column=value_targets200 data.subset.rule=top data.subset.r=%s\n' "$r"
  done; done
}

kept() { [ -f "$res/$1/metrics.json" ]; }

stream() {  # take the next unclaimed job of list $1 (mkdir is the claim) until none is left
  local folder overrides seed
  while IFS=$'\t' read -r folder overrides; do
    kept "$folder" && continue
    mkdir -p "$work/claims/$(dirname "$folder")"
    mkdir "$work/claims/$folder" 2>/dev/null || continue
    if [[ $folder == base_* ]]; then
      "$root/.venv/bin/gmv" $overrides cache_dir="$work/cache" hydra.run.dir="$work/$folder" </dev/null \
        >"$work/logs/${folder//\//_}.log" 2>&1 || { echo "failed: $folder (log in $work/logs)"; continue; }
      mkdir -p "$res/$folder.tmp"
      (cd "$work/$folder" && tar cf - --exclude=wandb .) | (cd "$res/$folder.tmp" && tar xf -)
      mv "$res/$folder.tmp" "$res/$folder"
    else
      seed=${overrides#seed=}; seed=${seed%% *}
      until [ "$seed" = 0 ] || kept "base_$seed"; do sleep 30; done
      "$root/.venv/bin/gmv" experiment=counterfactual/digits $overrides cache_dir="$work/cache" \
        hydra.run.dir="$work/$folder" </dev/null >"$work/logs/${folder//\//_}.log" 2>&1 \
        || echo "failed: $folder (log in $work/logs)"
    fi
    echo "$(date -u +%FT%TZ) finished $folder"
  done < <("$1")
}

collect() {  # the finished runs under WORK/retrains and WORK/scope, read and kept
  local bases job dir n=0
  bases=$(base_of 0)
  for s in 1 2; do kept "base_$s" && bases="$bases,$(base_of "$s")"; done
  for dir in retrains scope; do
    compgen -G "$work/$dir/*/*/metrics.json" >/dev/null || continue  # nothing finished there yet
    WANDB_MODE=disabled "$root/.venv/bin/gmv-report" "$work/$dir" --base "$bases" --out "$work/report_$dir" >/dev/null
    for job in $(cd "$work" && ls -d "$dir"/*/*/); do
      job=${job%/}
      [ -f "$work/$job/metrics.json" ] && [ -f "$work/$job/counterfactual_job.npz" ] || continue
      mkdir -p "$res/$job/.hydra"
      for f in config.yaml split.npz metrics.json manifest.json stages.json ra2_table.csv counterfactual_job.npz; do
        cp "$work/$job/$f" "$res/$job/$f"
      done
      cp "$work/$job/.hydra/overrides.yaml" "$work/$job/.hydra/config.yaml" "$res/$job/.hydra/"
      n=$((n + 1))
    done
  done
  echo "kept $n runs in $res ($(find "$res/retrains" -name metrics.json | wc -l) of $(jobs | grep -c '^retrains/')" \
    "retrains in all)"
}

prepare() {  # the environment; WORK without an earlier run's claims (its unfinished jobs resume from checkpoints)
  bash "$root/scripts/setup.sh"
  mkdir -p "$work/logs"
  rm -rf "$work/claims"
}

case "${1:-}" in
  list)
    { jobs; scope_jobs; } | while IFS=$'\t' read -r folder overrides; do
      if kept "$folder"; then printf 'kept\t%s\t%s\n' "$folder" "$overrides"; else printf 'todo\t%s\t%s\n' "$folder" "$overrides"; fi
    done ;;
  run)
    prepare
    stream jobs & stream jobs & wait ;;
  scope)
    prepare
    "$root/.venv/bin/python" "$root/scripts/counterfactual_by_class.py" --rankings
    stream scope_jobs & stream scope_jobs & wait
    collect ;;
  collect) collect ;;
  report)
    WANDB_MODE=disabled "$root/.venv/bin/gmv-report" "$res/retrains" --out "$res" --lds "$root/results/lds/digits" \
      --base "$(base_of 0),$(base_of 1),$(base_of 2)" ;;
  *) sed -n 2,16p "$0" >&2; exit 2 ;;
esac
