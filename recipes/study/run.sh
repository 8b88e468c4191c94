#!/usr/bin/env bash
# Transfer study: arms x data budgets with the same steps and seeds; RESULTS.md, CSVs and plots.
# Usage: recipes/study/run.sh [options]   (relative paths are taken from the current directory;
#        paths inside a study config from the config file)
#   Stage 0: run the study (data, budgets, every run, evaluation, introspection, report)
#   Stage 1: copy RESULTS.md, the CSVs and the plots to --publish (when given)
set -euo pipefail
. "$(dirname "$0")/../lib/stages.sh"
option config "$repo/recipes/study/conf/de_synthetic.yaml" "study config"
option publish "" "folder to copy the results to, e.g. docs/results/NAME"
option overrides "" "study config overrides, e.g. \"steps=40 out_dir=exp/study/quick\""
parse_options "$@"
# shellcheck disable=SC2086  # overrides are separate key=value words
out=$(cli study --config "$config" $overrides --print-out-dir)

if run_stage 0; then
    log_stage 0 "study" "$config" "$out/RESULTS.md"
    # shellcheck disable=SC2086
    cli study --config "$config" $overrides
fi
if run_stage 1 && [ -n "$publish" ]; then
    log_stage 1 "publish" "$out" "$publish"
    mkdir -p "$publish/inspect"
    cp "$out"/RESULTS.md "$out"/results.csv "$out"/curves.csv "$out"/results.json "$publish/"
    cp "$out"/*.png "$publish/"
    cp "$out"/inspect/*.png "$out"/inspect/*.csv "$publish/inspect/" 2>/dev/null || true
fi
