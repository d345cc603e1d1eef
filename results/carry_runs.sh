#!/usr/bin/env bash
# Carries the unfinished runs between machines through the repository
# (results/dear_cpu/unfinished/). Environment: RUNS CARRY (launch/table_jobs.py).
#
#   bash results/carry_runs.sh pack     # workers stopped; commit what it writes
#   bash results/carry_runs.sh unpack   # on the next machine, before run_table
cd "$(dirname "$0")/.." || exit
PYTHONPATH=. exec python -m launch.table_jobs carry_runs --from_env "$@"
