#!/usr/bin/env bash
# Trains (or resumes) the runs of launch/sweeps/dear_longer.py in two legs,
# to 5,000 steps (kept as results.5000.json) and on to 15,000.
# Environment: RUNS CORE SEEDS ALGS DATA SWEEP SHORT (launch/table_jobs.py).
#
#   CORE=0 ALGS=strongly_connected_components SEEDS=0 bash results/run_longer.sh
cd "$(dirname "$0")/.." || exit
PYTHONPATH=. exec python -m launch.table_jobs run_longer --from_env "$@"
