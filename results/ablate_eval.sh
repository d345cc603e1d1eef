#!/usr/bin/env bash
# Evaluation-only ablations: the finished dear runs scored again at 64 nodes
# with other solver settings, into results/dear_cpu/ablations/.
# Environment: RUNS CORE SEEDS ALGS DATA OUT SETTINGS (launch/table_jobs.py).
#
#   CORE=0 SEEDS="0" ALGS="bellman_ford mst_prim" bash results/ablate_eval.sh
cd "$(dirname "$0")/.." || exit
PYTHONPATH=. exec python -m launch.table_jobs ablate_eval --from_env "$@"
