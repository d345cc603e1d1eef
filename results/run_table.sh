#!/usr/bin/env bash
# Trains (or resumes) the runs of the results table on one core: the sweep
# worker on launch/sweeps/dear_cpu.py. Environment: RUNS CORE SEEDS MODELS
# ALGS DATA DONE DRY_RUN (launch/table_jobs.py says what each does).
#
#   CORE=1 bash results/run_table.sh   # one worker per core; rerun to resume
cd "$(dirname "$0")/.." || exit
PYTHONPATH=. exec python -m launch.table_jobs run_table --from_env "$@"
