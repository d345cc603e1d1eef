#!/usr/bin/env bash
# Scores the finished dear and nar runs of the table (or of the ablation) at
# larger test sizes (default 128 nodes), each into its eval_results.json.
# Environment: RUNS CORE ALGS DATA SIZES EVAL_BATCH (launch/table_jobs.py).
#
#   CORE=0 bash results/eval_table.sh
cd "$(dirname "$0")/.." || exit
PYTHONPATH=. exec python -m launch.table_jobs eval_table --from_env "$@"
